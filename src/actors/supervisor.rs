//! `RootSupervisor`: the top of a process's supervision tree (DESIGN §2). Owns one factory per
//! child; when a child stops without being asked to (a panic drops an actix actor but leaves
//! its arbiter running, and actix's own `Supervisor` does not restart after a panic), it builds
//! a fresh one from the factory. At most [`MAX_RESTARTS`] restarts per child within
//! [`RESTART_WINDOW`]; one more escalates (the process exits non-zero). Children say they
//! stopped with `ChildExited` from their `stopped()`. Takes: `ChildExited`, `Shutdown`,
//! `GetSupervisorView`.
//!
//! ```text
//! orchestrator process                 node process
//!   RootSupervisor                       RootSupervisor
//!   ├── Store (SyncArbiter)              └── NodeAgent
//!   ├── EventBus                               └── WorkerPool → LoadWorker ×N
//!   └── Orchestrator
//!         └── NodeProxy ×N
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

pub const MAX_RESTARTS: usize = 3;
pub const RESTART_WINDOW: Duration = Duration::from_secs(10);

/// Why a child stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// Its handler panicked, or it stopped itself without saying why.
    Unexpected,
    /// It gave up on purpose, saying why.
    Failed(String),
}

/// From a child's `stopped()`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    pub name: &'static str,
    pub reason: ExitReason,
}

/// Stop supervising: the process is shutting down, exits are expected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

#[derive(Message)]
#[rtype(result = "SupervisorView")]
pub struct GetSupervisorView;

#[derive(Debug, Clone, Serialize)]
pub struct SupervisorView {
    /// Restarts per child since the process started.
    pub restarts: BTreeMap<&'static str, u64>,
    /// The last exit reason per child.
    pub last_exit: BTreeMap<&'static str, ExitReason>,
}

/// Builds (and starts) a child; gets the supervisor's address to report its exit to.
pub type Factory = Box<dyn Fn(Recipient<ChildExited>)>;

/// What happens when a child exceeds its restarts: gets the child's name and last exit.
pub type Escalation = Box<dyn Fn(&'static str, &ExitReason)>;

struct Child {
    factory: Factory,
    recent: VecDeque<Instant>,
    total: u64,
    last_exit: Option<ExitReason>,
}

pub struct RootSupervisor {
    children: BTreeMap<&'static str, Child>,
    shutting_down: bool,
    escalate: Escalation,
    /// Its own address: the root lives as long as the system, whoever holds a handle.
    _me: Option<Addr<RootSupervisor>>,
}

impl RootSupervisor {
    /// `escalate` runs when a child exceeds its restarts (the process default: stop the
    /// system with exit code 1).
    pub fn new(escalate: Escalation) -> RootSupervisor {
        RootSupervisor {
            children: BTreeMap::new(),
            shutting_down: false,
            escalate,
            _me: None,
        }
    }

    /// Escalation for a process: log and exit non-zero.
    pub fn exit_process() -> Escalation {
        Box::new(|name, reason| {
            tracing::error!(
                child = name,
                ?reason,
                "restart limit reached; stopping the process"
            );
            System::current().stop_with_code(1);
        })
    }

    /// Adds a child; it is started when the supervisor starts.
    pub fn child(mut self, name: &'static str, factory: Factory) -> RootSupervisor {
        self.children.insert(
            name,
            Child {
                factory,
                recent: VecDeque::new(),
                total: 0,
                last_exit: None,
            },
        );
        self
    }
}

impl RootSupervisor {
    /// Starts the supervisor and, before returning, every child (so their addresses are
    /// known as soon as this returns).
    pub fn launch(self) -> Addr<RootSupervisor> {
        RootSupervisor::create(move |ctx| {
            let mut this = self;
            let me = ctx.address().recipient();
            for child in this.children.values() {
                (child.factory)(me.clone());
            }
            this._me = Some(ctx.address());
            this
        })
    }
}

impl Actor for RootSupervisor {
    type Context = Context<Self>;
}

impl Handler<ChildExited> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let Some(child) = self.children.get_mut(msg.name) else {
            return;
        };
        let now = Instant::now();
        while child
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            child.recent.pop_front();
        }
        child.last_exit = Some(msg.reason.clone());
        if child.recent.len() >= MAX_RESTARTS {
            self.shutting_down = true;
            (self.escalate)(msg.name, &msg.reason);
            return;
        }
        child.recent.push_back(now);
        child.total += 1;
        tracing::warn!(child = msg.name, reason = ?msg.reason, restarts = child.total, "restarting child");
        (child.factory)(ctx.address().recipient());
    }
}

impl Handler<Shutdown> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _ctx: &mut Context<Self>) {
        self.shutting_down = true;
    }
}

impl Handler<GetSupervisorView> for RootSupervisor {
    type Result = MessageResult<GetSupervisorView>;

    fn handle(&mut self, _: GetSupervisorView, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(SupervisorView {
            restarts: self.children.iter().map(|(n, c)| (*n, c.total)).collect(),
            last_exit: self
                .children
                .iter()
                .filter_map(|(n, c)| c.last_exit.clone().map(|r| (*n, r)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A child that panics on `Boom` and reports its exit.
    struct Fragile {
        supervisor: Recipient<ChildExited>,
        generation: Arc<Mutex<Vec<Addr<Fragile>>>>,
    }
    impl Actor for Fragile {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            self.generation.lock().unwrap().push(ctx.address());
        }
        fn stopped(&mut self, _: &mut Context<Self>) {
            self.supervisor.do_send(ChildExited {
                name: "fragile",
                reason: ExitReason::Unexpected,
            });
        }
    }
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Boom;
    impl Handler<Boom> for Fragile {
        type Result = ();
        fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
            panic!("boom (expected in this test)");
        }
    }

    async fn wait_for(cond: impl Fn() -> bool) -> bool {
        for _ in 0..200 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    #[actix_rt::test]
    async fn restarts_from_the_factory_then_escalates() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let escalated = Arc::new(Mutex::new(None));
        let (s, e) = (started.clone(), escalated.clone());
        let sup = RootSupervisor::new(Box::new(move |name, reason| {
            *e.lock().unwrap() = Some((name, reason.clone()));
        }))
        .child(
            "fragile",
            Box::new(move |me| {
                Fragile {
                    supervisor: me,
                    generation: s.clone(),
                }
                .start();
            }),
        )
        .launch();
        assert!(wait_for(|| started.lock().unwrap().len() == 1).await);
        for n in 1..=MAX_RESTARTS {
            let current = started.lock().unwrap().last().unwrap().clone();
            current.do_send(Boom);
            assert!(
                wait_for(|| started.lock().unwrap().len() == n + 1).await,
                "restart {n} happened"
            );
            assert!(!current.connected(), "the panicked one is gone");
        }
        let view = sup.send(GetSupervisorView).await.unwrap();
        assert_eq!(view.restarts["fragile"], MAX_RESTARTS as u64);
        assert!(escalated.lock().unwrap().is_none());
        // One more within the window escalates instead of restarting.
        started.lock().unwrap().last().unwrap().do_send(Boom);
        assert!(wait_for(|| escalated.lock().unwrap().is_some()).await);
        assert_eq!(started.lock().unwrap().len(), MAX_RESTARTS + 1);
        assert_eq!(
            *escalated.lock().unwrap(),
            Some(("fragile", ExitReason::Unexpected))
        );
    }
}
