//! One shard of a load task, run on a load worker's thread: the arrival loop (open model) or the
//! user loops (closed model), recording into a one-second [`Window`] that a ticker hands to
//! the collector every second.
//!
//! Open model: each arrival starts at its planned time whatever the responses do. Latency is
//! measured from the planned start (coordinated-omission corrected) and, beside it, from the
//! actual send. `concurrent_users` caps requests in flight; an arrival that finds the cap full
//! waits (its wait shows in its corrected latency) and counts as a late start, as does every
//! arrival whose time came while the loop was waiting for the cap. An arrival still without a
//! slot at the run's end (the plan's duration; the drain after it only lets requests already
//! sent finish) is not sent: `sent` counts requests handed to the target, so it equals what
//! the target receives.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::{Message, Recipient};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::spawn_local;
use tokio::time::sleep_until;

use crate::allowlist::Allowlist;
use crate::engine::flow::CompiledFlow;
use crate::engine::flow::run::{FlowRunner, NodeFlow, User, deal_index};
use crate::engine::http::HttpSender;
use crate::engine::schedule::{Model, Part, RatePlan};
use crate::engine::share::NodeShare;
use crate::engine::target::Traffic;
use crate::settings::LoadSettings;
use crate::stats::request::RequestNames;
use crate::stats::{Window, latencies};

/// Workers for a node or a run: the configured number, else one per available core.
pub fn worker_count(settings: &LoadSettings) -> usize {
    settings
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Everything a worker needs to run its share of a task.
#[derive(Clone)]
pub struct ShardSpec {
    pub task_id: usize,
    pub task: Arc<Traffic>,
    /// This shard's index and the number of shards: the shard takes arrivals
    /// `shard, shard + shards, ...` (open model) or its share of the users (closed).
    pub shard: usize,
    pub shards: usize,
    /// The users (closed model) or the in-flight cap (open model) of this shard
    /// (`UserSplit::shard_users`).
    pub users: usize,
    /// The common start of every shard of the task.
    pub start: Instant,
    /// How long in-flight requests may finish after the planned end.
    pub drain: Duration,
    pub allowlist: Allowlist,
    /// The least number of pooled connections per worker, when the task does not say.
    pub pool_size: usize,
    /// The sockets this shard may open: its part of the task's `connections`
    /// (`UserSplit::shard_connections`); `None`: its users, at least `pool_size`.
    pub connections: Option<usize>,
    pub sink: Recipient<WindowReport>,
    /// Turns true when the run is interrupted: start no more requests.
    pub stop: watch::Receiver<bool>,
    /// On a cluster node: which of the task's arrivals are this node's, and its lease.
    pub share: Option<Arc<NodeShare>>,
    /// A flow's state shared by the task's shards on this node (`before`'s captures, the
    /// closed model's turns); `None` without a flow.
    pub node_flow: Option<Arc<NodeFlow>>,
}

/// From a worker: one second of one shard; `last` on the shard's final window.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WindowReport {
    pub task_id: usize,
    pub shard: usize,
    pub window: Window,
    pub last: bool,
}

type Current = Rc<RefCell<Window>>;

/// The run's stop signal as this shard sees it: a plain flag read on every arrival, and a
/// local notification for whoever waits. One task per shard watches the run-wide channel,
/// so the request loops never touch state shared across threads.
#[derive(Clone)]
struct LocalStop(Rc<(Cell<bool>, Notify)>);

impl LocalStop {
    fn watch(mut run_stop: watch::Receiver<bool>) -> LocalStop {
        let stop = LocalStop(Rc::new((Cell::new(false), Notify::new())));
        let local = stop.clone();
        spawn_local(async move {
            // Only an explicit stop counts: a closed channel (no one can stop the run any
            // more) lets the shard run to its end.
            if run_stop.wait_for(|stopped| *stopped).await.is_ok() {
                local.0.0.set(true);
                local.0.1.notify_waiters();
            }
        });
        stop
    }

    fn is_set(&self) -> bool {
        self.0.0.get()
    }

    /// Resolves when the stop is set (at once if it already is).
    async fn wait(&self) {
        // No await between the check and creating the notification: it cannot be missed.
        if !self.is_set() {
            self.0.1.notified().await;
        }
    }
}

/// Sleeps until `at`; `false` if the run was interrupted first.
async fn sleep_or_stop(at: Instant, stop: &LocalStop) -> bool {
    if stop.is_set() {
        return false;
    }
    tokio::select! {
        _ = sleep_until(at.into()) => true,
        _ = stop.wait() => false,
    }
}

/// The timer rounds deadlines up to the next millisecond; waking this much before an arrival
/// and sending then keeps the schedule within the timer's resolution instead of always late.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// A shard starting later than this after its task's start skips the arrivals already past.
const LATE_JOIN: Duration = Duration::from_secs(1);

/// How often a closed-model user whose node lost its lease looks whether it is back.
const LEASE_POLL: Duration = Duration::from_millis(50);

mod closed;
use closed::run_closed;

/// Runs the shard to its end and sends its last window.
pub async fn run_shard(spec: ShardSpec) {
    let task = spec.task.clone();
    let users = spec.users;
    let node = spec.share.as_ref().map(|s| s.node_id.as_str());
    let sender = HttpSender::new(
        &task,
        spec.allowlist.clone(),
        spec.connections.unwrap_or(users.max(spec.pool_size)),
        node,
    );
    let window: Current = Rc::new(RefCell::new(Window::new(0)));
    let names = Rc::new(task.request_names());
    let flow = flow_runner(&spec, &sender, &names, &window).await;

    let (stop_tx, stop_rx) = oneshot::channel();
    let ticker = spawn_local(tick(spec.clone(), window.clone(), stop_rx));
    let run = Run {
        sender: sender.clone(),
        names,
        window: window.clone(),
        flow,
    };
    match task.model {
        // A flow that does not compile sends nothing (its targets alone are no plan).
        _ if task.flow.is_some() && run.flow.is_none() => {}
        Model::Open => run_open(&spec, users, &run).await,
        Model::Closed => run_closed(&spec, users, &run).await,
    }
    let _ = stop_tx.send(());
    let _ = ticker.await;
    let last = window.replace(Window::new(0));
    if spec
        .sink
        .send(WindowReport {
            task_id: spec.task_id,
            shard: spec.shard,
            window: last,
            last: true,
        })
        .await
        .is_err()
    {
        tracing::warn!(
            task = spec.task_id,
            shard = spec.shard,
            "collector gone; final window lost"
        );
    }
}

/// What a shard's request loops share.
#[derive(Clone)]
struct Run {
    sender: Rc<HttpSender>,
    names: Rc<RequestNames>,
    window: Current,
    /// A flow and what its shards share on the node.
    flow: Option<(Rc<FlowRunner>, Arc<NodeFlow>)>,
}

impl Run {
    /// A unique data source used up at deal index `d`: counted; this arrival and the later
    /// ones get no row.
    fn out_of_rows(&self, d: u64) -> bool {
        let out = self
            .flow
            .as_ref()
            .is_some_and(|(flow, _)| !flow.has_rows(d));
        self.window.borrow_mut().data_exhausted += u64::from(out);
        out
    }

    /// An open-model arrival about to start (a flow counts its requests as it sends them).
    fn count_arrival(&self, late: bool) {
        let mut w = self.window.borrow_mut();
        w.sent += u64::from(self.flow.is_none());
        w.late_starts += u64::from(late);
    }

    /// One turn of a closed-model user: a flow's iteration (its rows by the node's next
    /// turn, `deal` being the node's slot and the nodes' count), or request `n`. `false`
    /// when the user stops: a unique data source ran out.
    async fn closed_turn(
        &self,
        user: &mut Option<User>,
        iteration: &mut u64,
        n: u64,
        deadline: Instant,
        deal: (u16, usize),
    ) -> bool {
        if let (Some((flow, node_flow)), Some(user)) = (&self.flow, user) {
            let d = deal_index(node_flow.next_turn(), deal.0, deal.1);
            if self.out_of_rows(d) {
                return false;
            }
            flow.iteration(user, *iteration, d, Instant::now(), deadline)
                .await;
            *iteration += 1;
            return true;
        }
        self.window.borrow_mut().sent += 1;
        let sent = Instant::now();
        let target = self.sender.pick(n);
        let outcome = self.sender.send(target, deadline).await;
        let (_, latency) = latencies(sent, sent, Instant::now());
        // No schedule in a closed model: both figures are the response time.
        self.window.borrow_mut().record_request(
            self.names.slot(target),
            &outcome,
            latency,
            latency,
        );
        true
    }
}

/// The task's flow compiled for this shard, its `before` steps run (once per node, by the
/// first shard to get here); `None` without a flow.
async fn flow_runner(
    spec: &ShardSpec,
    sender: &Rc<HttpSender>,
    names: &Rc<RequestNames>,
    window: &Current,
) -> Option<(Rc<FlowRunner>, Arc<NodeFlow>)> {
    let flow = spec.task.flow.as_ref()?;
    let compiled = match CompiledFlow::new(flow) {
        Ok(compiled) => compiled,
        Err(why) => {
            tracing::error!(task = spec.task_id, %why, "the flow does not compile; nothing sent");
            return None;
        }
    };
    let node_flow = spec.node_flow.clone().unwrap_or_default();
    let node = spec.share.as_ref().map_or("local", |s| s.node_id.as_str());
    let runner = FlowRunner::new(
        compiled,
        sender.clone(),
        names.clone(),
        window.clone(),
        node,
        spec.task.profile.seed,
    );
    let deadline = spec.start + spec.task.profile.duration + spec.drain;
    let _ = runner.user(0, &node_flow, deadline).await;
    Some((Rc::new(runner), node_flow))
}

/// Every second (aligned on the task's start) hands the current window to the collector.
async fn tick(spec: ShardSpec, window: Current, mut stop: oneshot::Receiver<()>) {
    let mut index = 0u64;
    loop {
        let boundary = spec.start + Duration::from_secs(index + 1);
        tokio::select! {
            _ = sleep_until(boundary.into()) => {}
            _ = &mut stop => return,
        }
        index += 1;
        let full = window.replace(Window::new(index));
        let report = WindowReport {
            task_id: spec.task_id,
            shard: spec.shard,
            window: full,
            last: false,
        };
        // Awaiting the reply keeps a slow collector from being flooded.
        if spec.sink.send(report).await.is_err() {
            tracing::warn!(
                task = spec.task_id,
                shard = spec.shard,
                "collector gone; window lost"
            );
        }
    }
}

async fn run_open(spec: &ShardSpec, cap: usize, run: &Run) {
    let task = &spec.task;
    let base = task.rate_plan();
    let rates = (task.profile.base_rps, task.profile.peak_rps);
    let slots = Arc::new(Semaphore::new(cap));
    let mut open = OpenLoop {
        spec,
        run,
        slots: slots.clone(),
        runners: Runners::new(run, spec.start + base.duration() + spec.drain),
        waited_until: None,
        stop: LocalStop::watch(spec.stop.clone()),
        // A shard that starts well after the task did (its start message came late) skips
        // what is already past rather than sending it in one burst; those count as not sent.
        skip_until: Some(Instant::now())
            .filter(|now| *now > spec.start + LATE_JOIN)
            .unwrap_or(spec.start),
        next: (0, Duration::ZERO),
    };
    // The plan as the task's live changes left it; a new change rebuilds the arrivals from
    // the first one not handled yet (the plan before a change's instant never changes).
    loop {
        // The version first: a table read after it is at least that new.
        let version = spec.share.as_ref().map_or(0, |s| s.version());
        let adjustments = spec
            .share
            .as_ref()
            .map(|s| s.table().adjustments.clone())
            .unwrap_or_default();
        let plan = base.adjusted(rates, &adjustments);
        if !open.arrivals(&plan, (version, adjustments.len())).await {
            break;
        }
    }
    open.runners.close();
    // Every request is bounded by the deadline, so this wait is too.
    let _all = slots.acquire_many(cap as u32).await;
}

/// The open model's arrival loop and what it keeps across changes of the plan.
struct OpenLoop<'a> {
    spec: &'a ShardSpec,
    run: &'a Run,
    slots: Arc<Semaphore>,
    runners: Runners,
    /// When the loop last finished waiting for a slot: arrivals planned before it are late.
    waited_until: Option<Instant>,
    stop: LocalStop,
    skip_until: Instant,
    /// The first arrival not handled yet: its number and planned offset.
    next: (u64, Duration),
}

/// How often a shard waiting for its next arrival looks whether the plan changed.
const PLAN_POLL: Duration = Duration::from_millis(50);

impl OpenLoop<'_> {
    /// Runs `plan`'s arrivals from the first one not handled; `made` is the share table's
    /// version and number of live changes the plan was made from. `true` when the plan
    /// changed and the loop must go on with the new one.
    async fn arrivals(&mut self, plan: &RatePlan, made: (u64, usize)) -> bool {
        let spec = self.spec;
        let task = &spec.task;
        // The run's end: an arrival that has no slot by then is not sent (DESIGN §6); the
        // drain after it is only for the requests already sent.
        let end = spec.start + plan.duration();
        self.runners.set_deadline(end + spec.drain);
        let share = spec.share.as_deref();
        // This shard's arrivals only: this node's (all of them when standalone), dealt in
        // turn to its shards.
        let part = Part {
            share,
            shard: spec.shard,
            shards: spec.shards,
        };
        // Cheap on every arrival: the table is read only when its version moved.
        let seen = Cell::new(made.0);
        let changed = || {
            share.is_some_and(|s| {
                let v = s.version();
                v != seen.get() && {
                    seen.set(v);
                    s.table().adjustments.len() != made.1
                }
            })
        };
        let arrivals = plan.own_arrivals(task.arrivals, task.profile.seed, part);
        for (n, offset) in arrivals {
            if n < self.next.0 || offset < self.next.1 {
                // Handled under the plan before the change (or past when it came).
                continue;
            }
            let planned = spec.start + offset;
            if planned < self.skip_until {
                if let Some(share) = share {
                    share.paused.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            let wake = planned.checked_sub(TIMER_SLACK).unwrap_or(planned);
            // A timer only when there is time to wait, woken now and then to look at the
            // plan; behind schedule, just look at the flag.
            while wake > Instant::now() {
                if changed() {
                    return true;
                }
                if !sleep_or_stop(wake.min(Instant::now() + PLAN_POLL), &self.stop).await {
                    return false;
                }
            }
            if self.stop.is_set() || self.run.out_of_rows(n) {
                return false;
            }
            if changed() {
                return true;
            }
            self.next = (n + 1, offset);
            if !self.send(n, planned, end, share).await {
                return false;
            }
        }
        // The plan may change in its last moments too (a pause, a longer run).
        changed()
    }

    /// Sends arrival `n` once it has a slot; `false` when the run stopped or ended first
    /// (this arrival and the rest are not sent, never "sent and timed out").
    async fn send(
        &mut self,
        n: u64,
        planned: Instant,
        end: Instant,
        share: Option<&NodeShare>,
    ) -> bool {
        let Some((permit, late)) = take_slot(
            &self.slots,
            planned,
            &mut self.waited_until,
            &self.stop,
            end,
        )
        .await
        else {
            return false;
        };
        // Checked with the slot in hand: the wait for it may have outlasted the lease.
        if let Some(share) = share {
            if !share.may_send() {
                share.paused.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            share.sent.fetch_add(1, Ordering::Relaxed);
        }
        self.run.count_arrival(late);
        let target = self.run.sender.pick(n);
        self.runners.start(Request {
            n,
            target,
            slot: self.run.names.slot(target),
            planned,
            permit,
        });
        true
    }
}

/// One open-model arrival with its slot, handed to a runner.
struct Request {
    /// The arrival's number, cluster-wide (a flow's virtual user and deal index).
    n: u64,
    target: usize,
    /// The target's request name.
    slot: usize,
    planned: Instant,
    permit: OwnedSemaphorePermit,
}

/// The open model's request tasks: long-lived, each sending one request after another from a
/// local queue, so nothing is spawned per arrival. A runner is added only when every runner
/// is busy, so there are never more than the requests in flight at once (the cap).
struct Runners {
    shared: Rc<RunnerQueue>,
    sender: Rc<HttpSender>,
    window: Current,
    flow: Option<(Rc<FlowRunner>, Arc<NodeFlow>)>,
}

#[derive(Default)]
struct RunnerQueue {
    queue: RefCell<VecDeque<Request>>,
    /// Runners waiting for a request and not yet claimed by one.
    idle: Cell<usize>,
    wake: Notify,
    closed: Cell<bool>,
    /// Every request ends by then (moved by a live change of the plan).
    deadline: Cell<Option<Instant>>,
}

impl Runners {
    fn new(run: &Run, deadline: Instant) -> Runners {
        let runners = Runners {
            shared: Rc::default(),
            sender: run.sender.clone(),
            window: run.window.clone(),
            flow: run.flow.clone(),
        };
        runners.set_deadline(deadline);
        runners
    }

    fn set_deadline(&self, deadline: Instant) {
        self.shared.deadline.set(Some(deadline));
    }

    /// Sends `request` now: an idle runner takes it, else a new runner does.
    fn start(&self, request: Request) {
        let q = &self.shared;
        q.queue.borrow_mut().push_back(request);
        let idle = q.idle.get();
        if idle > 0 {
            // Claimed here, so a second request before it wakes goes to another runner.
            q.idle.set(idle - 1);
            q.wake.notify_one();
        } else {
            let (q, sender, window) = (q.clone(), self.sender.clone(), self.window.clone());
            let flow = self.flow.clone();
            spawn_local(run_requests(q, sender, window, flow));
        }
    }

    /// No more requests: idle runners end, busy ones after their request.
    fn close(&self) {
        self.shared.closed.set(true);
        self.shared.wake.notify_waiters();
    }
}

/// One runner: takes the next request, or waits to be handed one, until closed.
async fn run_requests(
    q: Rc<RunnerQueue>,
    sender: Rc<HttpSender>,
    window: Current,
    flow: Option<(Rc<FlowRunner>, Arc<NodeFlow>)>,
) {
    loop {
        // The queue's borrow ends here, before any await.
        let next = q.queue.borrow_mut().pop_front();
        let Some(request) = next else {
            if q.closed.get() {
                return;
            }
            q.idle.set(q.idle.get() + 1);
            q.wake.notified().await;
            continue;
        };
        let until = q.deadline.get().unwrap_or(request.planned);
        if let Some((flow, node_flow)) = &flow {
            // An arrival is a new virtual user's one iteration.
            let mut user = flow.user(request.n, node_flow, until).await;
            flow.iteration(&mut user, 0, request.n, request.planned, until)
                .await;
            drop(request.permit);
            continue;
        }
        let sent = Instant::now();
        let outcome = sender.send(request.target, until).await;
        let (corrected, uncorrected) = latencies(request.planned, sent, Instant::now());
        window
            .borrow_mut()
            .record_request(request.slot, &outcome, corrected, uncorrected);
        drop(request.permit);
    }
}

/// A slot in flight for the arrival planned at `planned`, and whether it starts late: at once
/// (late if planned before the loop last finished waiting, `waited_until`), or after waiting
/// for one (late). `None` when stopped or when the run ended first; a slot freed just as the
/// run ended comes too late as well.
async fn take_slot(
    slots: &Arc<Semaphore>,
    planned: Instant,
    waited_until: &mut Option<Instant>,
    stop: &LocalStop,
    end: Instant,
) -> Option<(OwnedSemaphorePermit, bool)> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some((permit, waited_until.is_some_and(|w| planned < w)));
    }
    let permit = tokio::select! {
        permit = slots.clone().acquire_owned() => permit.ok(),
        _ = stop.wait() => None,
        _ = sleep_until(end.into()) => None,
    }?;
    let now = Instant::now();
    if now >= end {
        return None;
    }
    *waited_until = Some(now);
    Some((permit, true))
}
