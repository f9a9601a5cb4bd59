//! Runs a flow: one iteration of one virtual user, step by step, on a shard's thread. A
//! request step renders its parts from the user's variables, sends them with
//! [`HttpSender::send_parts`], keeps the response's cookies in the user's jar, takes its
//! captures and runs its checks, and records the request under its name. A capture that finds
//! nothing ends the iteration there; a failed check fails the request (kind `check`) and the
//! iteration goes on. The iteration itself is recorded under [`ITERATION`], a group under its
//! name, neither counting as a request.
//!
//! Rows of the data sources are dealt by a *deal index*: an open model's arrival number
//! (arrivals are numbered cluster-wide, each owned by one node), a closed model's turn number
//! from a counter each node interleaves with the others ([`deal_index`]). `unique` hands row
//! `d` to deal index `d` and nothing past the last row.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::compiled::{CompiledFlow, CompiledRequest, CompiledStep};
use super::{ITEM, LoopTimes, Order, Response, Vars, capture};
use crate::engine::http::{HttpSender, Parts, Reply};
use crate::stats::request::{ITERATION, RequestNames};
use crate::stats::{ErrorKind, Outcome, Window, latencies};

/// What the shards of one task on one node share: the captures of `before` (run once per
/// node, by whichever shard comes first) and the closed model's turn counter.
#[derive(Debug, Default)]
pub struct NodeFlow {
    before: OnceCell<Vars>,
    turns: AtomicU64,
}

impl NodeFlow {
    /// The next closed-model turn of this node.
    pub fn next_turn(&self) -> u64 {
        self.turns.fetch_add(1, Ordering::Relaxed)
    }
}

/// The cluster-wide deal index of a node's `turn`-th closed-model turn: node `slot` of
/// `nodes` takes every `nodes`-th index, so no two nodes take the same one.
pub fn deal_index(turn: u64, slot: u16, nodes: usize) -> u64 {
    turn * nodes.max(1) as u64 + u64::from(slot)
}

/// A flow compiled on a shard, with what it needs to run.
pub struct FlowRunner {
    flow: CompiledFlow,
    sender: Rc<HttpSender>,
    names: Rc<RequestNames>,
    window: Rc<RefCell<Window>>,
    node: String,
    /// Slots of the groups and of the iteration row.
    groups: BTreeMap<String, usize>,
    iteration_slot: usize,
    /// The fewest rows of a `unique` source: deal indexes from there on get no row.
    unique_rows: Option<u64>,
    seed: u64,
}

/// One virtual user: its variables and its cookies, kept across its iterations.
#[derive(Debug, Default)]
pub struct User {
    pub vars: Vars,
    /// Cookies by host.
    jar: BTreeMap<String, Jar>,
    /// Its failed requests, ever: an iteration or a group failed when this grew meanwhile.
    failed: u64,
}

/// How a run of steps ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    /// A capture found nothing (or a request could not be rendered): the iteration stops.
    Broken,
}

impl FlowRunner {
    pub fn new(
        flow: CompiledFlow,
        sender: Rc<HttpSender>,
        names: Rc<RequestNames>,
        window: Rc<RefCell<Window>>,
        node: &str,
        seed: u64,
    ) -> FlowRunner {
        // The task's names hold the groups (method GROUP) and the iterations (FLOW); a name
        // past the cap counts under `(other)`, as every name does.
        let slots_of = |method: &str| -> BTreeMap<String, usize> {
            let named = names.names.iter().enumerate();
            named
                .filter(|(_, n)| n.method == method)
                .map(|(slot, n)| (n.name.clone(), slot))
                .collect()
        };
        let groups = slots_of("GROUP");
        let iteration_slot = slots_of("FLOW")
            .get(ITERATION)
            .copied()
            .unwrap_or(crate::stats::request::MAX_NAMES);
        let unique_rows = flow
            .data
            .iter()
            .filter(|d| d.order == Order::Unique)
            .map(|d| d.rows.len() as u64)
            .min();
        FlowRunner {
            iteration_slot,
            groups,
            unique_rows,
            flow,
            sender,
            names,
            window,
            node: node.to_string(),
            seed,
        }
    }

    /// Whether deal index `d` has its rows (`false` once a `unique` source is used up).
    pub fn has_rows(&self, d: u64) -> bool {
        self.unique_rows.is_none_or(|rows| d < rows)
    }

    /// A new user numbered `vu`, seeing the node's `before` captures.
    pub async fn user(&self, vu: u64, node_flow: &NodeFlow, deadline: Instant) -> User {
        let base = node_flow
            .before
            .get_or_init(|| async {
                let mut user = User::default();
                user.vars.set_str("node", &self.node);
                if !self.flow.before.is_empty() {
                    let _ = self
                        .steps(&self.flow.before, &mut user, None, deadline)
                        .await;
                }
                user.vars
            })
            .await;
        let mut user = User {
            vars: base.clone(),
            ..User::default()
        };
        user.vars.set_u64("vu", vu);
        user
    }

    /// Runs iteration `iteration` of `user`, planned for `planned`, its rows taken by deal
    /// index `d`. The iteration's latency runs from `planned` (corrected) and from its first
    /// send (uncorrected); it fails when one of its requests failed.
    pub async fn iteration(
        &self,
        user: &mut User,
        iteration: u64,
        d: u64,
        planned: Instant,
        deadline: Instant,
    ) {
        user.vars.set_u64("iteration", iteration);
        for source in &self.flow.data {
            let len = source.rows.len() as u64;
            let row = match source.order {
                Order::Sequence | Order::Unique => d % len,
                Order::Random => random_row(self.seed, d, source.name.as_str()) % len,
            };
            user.vars.set_row(source, row as usize);
        }
        self.window.borrow_mut().iterations += 1;
        let mut first = Some(planned);
        let started = Instant::now();
        let before = user.failed;
        let end = self
            .steps(&self.flow.steps, user, Some(&mut first), deadline)
            .await;
        let failed = user.failed > before || end == End::Broken;
        let (corrected, uncorrected) = latencies(planned, started, Instant::now());
        let outcome = Outcome {
            error: failed.then_some(ErrorKind::Check),
            reason: failed.then(|| "a request of the iteration failed".into()),
            ..Outcome::default()
        };
        self.window.borrow_mut().record_aside(
            self.iteration_slot,
            &outcome,
            corrected,
            uncorrected,
        );
    }

    fn steps<'a>(
        &'a self,
        steps: &'a [CompiledStep],
        user: &'a mut User,
        mut first: Option<&'a mut Option<Instant>>,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = End> + 'a>> {
        Box::pin(async move {
            for step in steps {
                if Instant::now() >= deadline {
                    return End::Done;
                }
                let end = match step {
                    CompiledStep::Request(r) => {
                        let planned = first.as_deref_mut().and_then(Option::take);
                        self.request(r, user, planned, deadline).await
                    }
                    CompiledStep::Think(d) => {
                        let until = (Instant::now() + *d).min(deadline);
                        tokio::time::sleep_until(until.into()).await;
                        End::Done
                    }
                    CompiledStep::Loop { times, steps } => {
                        let mut end = End::Done;
                        match times {
                            LoopTimes::Count(n) => {
                                for _ in 0..*n {
                                    end = self
                                        .steps(steps, user, first.as_deref_mut(), deadline)
                                        .await;
                                    if end == End::Broken {
                                        break;
                                    }
                                }
                            }
                            LoopTimes::Over(items) => {
                                for item in items {
                                    user.vars.set_str(ITEM, item);
                                    end = self
                                        .steps(steps, user, first.as_deref_mut(), deadline)
                                        .await;
                                    if end == End::Broken {
                                        break;
                                    }
                                }
                                user.vars.remove(ITEM);
                            }
                        }
                        end
                    }
                    CompiledStep::Group { name, steps } => {
                        let started = Instant::now();
                        let before = user.failed;
                        let end = self
                            .steps(steps, user, first.as_deref_mut(), deadline)
                            .await;
                        let failed = user.failed > before || end == End::Broken;
                        self.record_group(name, started.elapsed(), failed);
                        end
                    }
                };
                if end == End::Broken {
                    return End::Broken;
                }
            }
            End::Done
        })
    }

    /// One request step. `planned`: the iteration's planned start, for its first request.
    async fn request(
        &self,
        r: &CompiledRequest,
        user: &mut User,
        planned: Option<Instant>,
        deadline: Instant,
    ) -> End {
        let slot = self.names.slot(r.index);
        let rendered = match r.render(&user.vars) {
            Ok(rendered) => rendered,
            Err(e) => {
                // Nothing was sent: a failure of the step, not of the target.
                let outcome = Outcome {
                    error: Some(ErrorKind::Check),
                    reason: Some(format!("not rendered: {e}").into()),
                    ..Outcome::default()
                };
                user.failed += 1;
                self.record(slot, &outcome, Duration::ZERO, Duration::ZERO);
                return End::Broken;
            }
        };
        let mut headers = rendered.headers;
        let host = r.target.url.host_str().unwrap_or_default();
        if self.flow.cookies
            && let Some(line) = user.jar.get_mut(host).and_then(Jar::line)
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        {
            headers.push(("cookie".into(), line.to_string()));
        }
        let parts = Parts {
            path_and_query: rendered.path,
            headers,
            body: rendered.body.map(Bytes::from),
        };
        self.window.borrow_mut().sent += 1;
        let sent = Instant::now();
        let (mut outcome, reply) = self
            .sender
            .send_parts(r.index, &parts, r.keep(self.flow.cookies), deadline)
            .await;
        let done = Instant::now();
        let end = match &reply {
            Some(reply) => self.judge(r, user, host, &mut outcome, reply, done - sent),
            // No response: nothing to capture from.
            None if !r.captures.is_empty() => End::Broken,
            None => End::Done,
        };
        let (corrected, uncorrected) = latencies(planned.unwrap_or(sent), sent, done);
        user.failed += u64::from(outcome.error.is_some());
        self.record(slot, &outcome, corrected, uncorrected);
        end
    }

    /// Takes the reply's cookies, captures and checks into `user` and `outcome`: a request
    /// without a status check fails on a status of 400 or more; a failed check fails it
    /// (kind `check`, its message the first failure's); a capture that finds nothing fails
    /// it and breaks the iteration.
    fn judge(
        &self,
        r: &CompiledRequest,
        user: &mut User,
        host: &str,
        outcome: &mut Outcome,
        reply: &Reply,
        elapsed: Duration,
    ) -> End {
        if self.flow.cookies && reply.header("set-cookie").is_some() {
            let jar = match user.jar.get_mut(host) {
                Some(jar) => jar,
                None => user.jar.entry(host.to_string()).or_default(),
            };
            jar.keep(&reply.headers);
        }
        if outcome.error.is_none() && !r.judges_status() && reply.status >= 400 {
            outcome.error = Some(ErrorKind::Status);
        }
        // A failed capture or check says more than the status alone.
        let replaceable = |o: &Outcome| matches!(o.error, None | Some(ErrorKind::Status));
        let response = Response::new(reply.status, &reply.headers, &reply.body);
        let mut end = End::Done;
        for c in &r.captures {
            match capture(c, &response) {
                Some(value) => user.vars.set_str(&c.var, &value),
                None => {
                    end = End::Broken;
                    if replaceable(outcome) {
                        outcome.error = Some(ErrorKind::Check);
                        outcome.reason =
                            Some(format!("capture {}: nothing at {}", c.var, c.describe()).into());
                    }
                }
            }
        }
        let failures = r.failed_checks(&response, elapsed, &user.vars);
        outcome.checks_failed = failures.len() as u32;
        if let Some(first) = failures.first()
            && replaceable(outcome)
        {
            outcome.error = Some(ErrorKind::Check);
            outcome.reason = Some(first.to_string().into());
        }
        end
    }

    /// A group ran, in `took`; it failed when a request of it did.
    fn record_group(&self, name: &str, took: Duration, failed: bool) {
        let outcome = Outcome {
            error: failed.then_some(ErrorKind::Check),
            reason: failed.then(|| "a request of the group failed".into()),
            ..Outcome::default()
        };
        let slot = self
            .groups
            .get(name)
            .copied()
            .unwrap_or(crate::stats::request::MAX_NAMES);
        self.window
            .borrow_mut()
            .record_aside(slot, &outcome, took, took);
    }

    fn record(&self, slot: usize, outcome: &Outcome, corrected: Duration, uncorrected: Duration) {
        self.window
            .borrow_mut()
            .record_request(slot, outcome, corrected, uncorrected);
    }
}

/// A row drawn at random for deal index `d`, the same on every run with the same seed.
fn random_row(seed: u64, d: u64, source: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (seed, d, source).hash(&mut h);
    h.finish()
}

/// One host's cookies, and the `cookie` line they make (built again only when they change).
#[derive(Debug, Default)]
struct Jar {
    cookies: BTreeMap<String, String>,
    line: Option<String>,
}

impl Jar {
    /// The `cookie` header's value; `None` when there is no cookie.
    fn line(&mut self) -> Option<&str> {
        if self.cookies.is_empty() {
            return None;
        }
        let cookies = &self.cookies;
        let line = self.line.get_or_insert_with(|| {
            let mut line = String::new();
            for (k, v) in cookies {
                if !line.is_empty() {
                    line.push_str("; ");
                }
                line.push_str(k);
                line.push('=');
                line.push_str(v);
            }
            line
        });
        Some(line.as_str())
    }

    /// Takes a response's `set-cookie` headers.
    fn keep(&mut self, headers: &[(String, String)]) {
        keep_cookies(&mut self.cookies, headers);
        self.line = None;
    }
}

/// Takes the `set-cookie` headers of a response into `jar` (name and value; a cookie set to
/// expire at once is removed; attributes other than `Max-Age` are not kept).
fn keep_cookies(jar: &mut BTreeMap<String, String>, headers: &[(String, String)]) {
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("set-cookie") {
            continue;
        }
        let mut parts = value.split(';');
        let Some((k, v)) = parts.next().and_then(|kv| kv.split_once('=')) else {
            continue;
        };
        let expired = parts.any(|attr| {
            attr.split_once('=').is_some_and(|(a, n)| {
                a.trim().eq_ignore_ascii_case("max-age")
                    && n.trim().parse::<i64>().is_ok_and(|n| n <= 0)
            })
        });
        let k = k.trim().to_string();
        if expired {
            jar.remove(&k);
        } else {
            jar.insert(k, v.trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_kept_replaced_and_expired() {
        let mut jar = BTreeMap::new();
        let h = |v: &str| ("set-cookie".to_string(), v.to_string());
        keep_cookies(
            &mut jar,
            &[
                h("a=1; Path=/; HttpOnly"),
                h("b=2"),
                ("x-other".into(), "c=3".into()),
            ],
        );
        assert_eq!(jar.len(), 2);
        keep_cookies(&mut jar, &[h("a=9"), h("b=; Max-Age=0")]);
        assert_eq!(
            jar.into_iter().collect::<Vec<_>>(),
            [("a".to_string(), "9".to_string())]
        );
    }

    /// The jar's `cookie` line is built once and again only after a change.
    #[test]
    fn the_cookie_line_follows_the_jar() {
        let mut jar = Jar::default();
        assert_eq!(jar.line(), None);
        let h = |v: &str| vec![("set-cookie".to_string(), v.to_string())];
        jar.keep(&h("b=2"));
        jar.keep(&h("a=1"));
        assert_eq!(jar.line(), Some("a=1; b=2"));
        assert_eq!(jar.line(), Some("a=1; b=2"));
        jar.keep(&h("a=; Max-Age=0"));
        assert_eq!(jar.line(), Some("b=2"));
        jar.keep(&h("b=; max-age=-1"));
        assert_eq!(jar.line(), None);
    }

    #[test]
    fn nodes_take_interleaved_deal_indexes() {
        let mut seen = std::collections::BTreeSet::new();
        for slot in 0..3u16 {
            for turn in 0..50 {
                assert!(seen.insert(deal_index(turn, slot, 3)), "taken twice");
            }
        }
        assert_eq!(seen.len(), 150);
        assert_eq!(*seen.last().unwrap(), 149, "no gaps");
    }
}
