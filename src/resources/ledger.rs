//! [`Ledger`]: the pool's state and the rules of the module doc, over plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{
    Aggregate, AllocError, AllocationRequest, AllocationState, AllocationView, Confirmed, Effects,
    EndReason, Ended, Grant, MAX_QUEUED, Needs, NodeUsage, Outcome, PoolStatus, Portion,
    QueuedView, Released, Shortage, Units, UnknownAllocation, from_units, validate,
    validate_capacity,
};
use crate::validate::FieldErrors;

#[derive(Debug, Clone, Default)]
struct Node {
    capacity: BTreeMap<String, Units>,
    /// Only resources with something allocated.
    allocated: BTreeMap<String, Units>,
}

impl Node {
    fn free(&self, resource: &str) -> Units {
        let cap = self.capacity.get(resource).copied().unwrap_or(0);
        cap.saturating_sub(self.allocated.get(resource).copied().unwrap_or(0))
    }
}

/// A granted allocation.
#[derive(Debug, Clone)]
struct Held {
    requester_id: String,
    priority: i32,
    /// (node, resource) → amount; every amount > 0.
    portions: BTreeMap<(String, String), Units>,
    confirmed: bool,
    granted_at: Instant,
    /// While unconfirmed: when it is released (`None`: beyond what an `Instant` holds).
    deadline: Option<Instant>,
}

/// A waiting request.
#[derive(Debug, Clone)]
struct Waiting {
    request: AllocationRequest,
    needs: Needs,
    enqueued_at: Instant,
    deadline: Option<Instant>,
    /// Arrival order.
    seq: u64,
}

/// Which amounts a fit is checked against.
#[derive(Clone, Copy, PartialEq)]
enum Basis {
    /// What is free now.
    Free,
    /// The capacity (could it ever fit).
    Capacity,
}

/// The resource pool: nodes' capacities, grants, the queue and their deadlines.
#[derive(Debug, Clone)]
pub struct Ledger {
    allocation_timeout: Duration,
    nodes: BTreeMap<String, Node>,
    held: BTreeMap<String, Held>,
    /// In order: priority descending, then arrival.
    queue: Vec<Waiting>,
    /// (deadline, allocation id) of unconfirmed grants and of waiting requests.
    deadlines: BTreeSet<(Instant, String)>,
    /// Requests queued so far.
    arrivals: u64,
    /// Per resource, the sums over the nodes (kept as they change, so a fit is checked
    /// without walking the nodes).
    totals: BTreeMap<String, Total>,
}

/// One resource summed over the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Total {
    capacity: Units,
    /// The sum of each node's free amount (a node over its capacity adds 0).
    free: Units,
}

impl Ledger {
    /// An empty pool whose unconfirmed grants and waiting requests last `allocation_timeout`.
    pub fn new(allocation_timeout: Duration) -> Self {
        Ledger {
            allocation_timeout,
            nodes: BTreeMap::new(),
            held: BTreeMap::new(),
            queue: Vec::new(),
            deadlines: BTreeSet::new(),
            arrivals: 0,
            totals: BTreeMap::new(),
        }
    }

    pub fn allocation_timeout(&self) -> Duration {
        self.allocation_timeout
    }

    /// Sets a node's capacity (its totals; a resource left out has none). Existing grants stay
    /// when it shrinks. Waiting requests it makes impossible are dropped; the queue is served.
    pub fn set_capacity(
        &mut self,
        node_id: &str,
        capacity: &BTreeMap<String, f64>,
        now: Instant,
    ) -> Result<Effects, FieldErrors> {
        let capacity = validate_capacity(node_id, capacity)?;
        self.uncount(node_id);
        self.nodes.entry(node_id.to_string()).or_default().capacity = capacity;
        self.count(node_id);
        Ok(self.settle(now, true))
    }

    /// Removes a node. Every grant with a portion on it is released whole and ended; waiting
    /// requests that can no longer fit are dropped; the queue is served. Unknown: no effects.
    pub fn remove_node(&mut self, node_id: &str, now: Instant) -> Effects {
        if !self.nodes.contains_key(node_id) {
            return Effects::default();
        }
        let hit: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.portions.keys().any(|(n, _)| n == node_id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut effects = Effects::default();
        for id in hit {
            let held = self.release(&id).expect("listed above");
            effects.ended.push(Ended {
                allocation_id: id,
                requester_id: held.requester_id,
                reason: EndReason::NodeRemoved {
                    node_id: node_id.to_string(),
                },
            });
        }
        self.uncount(node_id);
        self.nodes.remove(node_id);
        effects.extend(self.settle(now, true));
        effects
    }

    /// Grants a request whole, queues it, or refuses it (and then changes nothing).
    pub fn allocate(
        &mut self,
        req: &AllocationRequest,
        now: Instant,
    ) -> Result<Outcome, AllocError> {
        let (req, needs) = validate(req).map_err(AllocError::Invalid)?;
        let id = &req.allocation_id;
        if self.held.contains_key(id) || self.queue.iter().any(|w| &w.request.allocation_id == id) {
            return Err(AllocError::Duplicate(id.clone()));
        }
        let never = self.shortages(&needs, Basis::Capacity);
        if !never.is_empty() {
            return Err(AllocError::NeverFits { shortages: never });
        }
        // The queue is ordered by priority, so those of higher or equal priority lead it.
        let ahead = self
            .queue
            .partition_point(|w| w.request.priority >= req.priority);
        let short = self.shortages(&needs, Basis::Free);
        if short.is_empty() && ahead == 0 {
            return Ok(Outcome::Granted(self.grant(&req, &needs, now)));
        }
        if !req.queue {
            return Err(if short.is_empty() {
                AllocError::Blocked { ahead }
            } else {
                AllocError::Insufficient { shortages: short }
            });
        }
        if self.queue.len() >= MAX_QUEUED {
            return Err(AllocError::QueueFull { limit: MAX_QUEUED });
        }
        self.arrivals += 1;
        let deadline = now.checked_add(self.allocation_timeout);
        if let Some(d) = deadline {
            self.deadlines.insert((d, id.clone()));
        }
        self.queue.insert(
            ahead,
            Waiting {
                request: req,
                needs,
                enqueued_at: now,
                deadline,
                seq: self.arrivals,
            },
        );
        Ok(Outcome::Queued { position: ahead })
    }

    /// Confirms a grant (it no longer expires), or marks a waiting request to be granted
    /// confirmed.
    pub fn confirm(&mut self, id: &str) -> Result<Confirmed, UnknownAllocation> {
        if let Some(h) = self.held.get_mut(id) {
            h.confirmed = true;
            if let Some(d) = h.deadline.take() {
                self.deadlines.remove(&(d, id.to_string()));
            }
            return Ok(Confirmed::Granted);
        }
        match self
            .queue
            .iter_mut()
            .find(|w| w.request.allocation_id == id)
        {
            Some(w) => {
                w.request.confirm = true;
                Ok(Confirmed::Queued)
            }
            None => Err(UnknownAllocation(id.to_string())),
        }
    }

    /// Releases a grant, or cancels a waiting request; the queue is then served.
    pub fn deallocate(
        &mut self,
        id: &str,
        now: Instant,
    ) -> Result<(Released, Effects), UnknownAllocation> {
        if self.held.contains_key(id) {
            let held = self.release(id).expect("checked");
            let grant = view_grant(id, &held);
            return Ok((Released::Grant(grant), self.settle(now, false)));
        }
        match self.unqueue(id) {
            Some(_) => {
                let released = Released::Queued {
                    allocation_id: id.to_string(),
                };
                Ok((released, self.settle(now, false)))
            }
            None => Err(UnknownAllocation(id.to_string())),
        }
    }

    /// Releases unconfirmed grants and drops waiting requests whose deadline is at or before
    /// `now`; the freed capacity then serves the queue.
    pub fn expire(&mut self, now: Instant) -> Effects {
        let mut effects = Effects::default();
        while let Some((d, _)) = self.deadlines.first()
            && *d <= now
        {
            let (_, id) = self.deadlines.pop_first().expect("just seen");
            if self.held.contains_key(&id) {
                let held = self.release(&id).expect("checked");
                effects.ended.push(Ended {
                    allocation_id: id,
                    requester_id: held.requester_id,
                    reason: EndReason::Expired,
                });
            } else if let Some(w) = self.unqueue(&id) {
                effects.ended.push(Ended {
                    allocation_id: id,
                    requester_id: w.request.requester_id,
                    reason: EndReason::QueueTimeout,
                });
            }
        }
        if !effects.ended.is_empty() {
            effects.extend(self.settle(now, false));
        }
        effects
    }

    /// The earliest deadline of an unconfirmed grant or a waiting request.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// How many grants and waiting requests there are.
    pub fn len(&self) -> (usize, usize) {
        (self.held.len(), self.queue.len())
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.queue.is_empty()
    }

    /// One allocation, granted or waiting.
    pub fn get(&self, id: &str, now: Instant) -> Option<AllocationState> {
        if let Some(h) = self.held.get(id) {
            return Some(AllocationState::Granted(view_held(id, h, now)));
        }
        let pos = self
            .queue
            .iter()
            .position(|w| w.request.allocation_id == id)?;
        Some(AllocationState::Queued(view_waiting(
            pos,
            &self.queue[pos],
            now,
        )))
    }

    /// The pool: per node, per resource, grants and the queue.
    pub fn status(&self, now: Instant) -> PoolStatus {
        let mut agg: BTreeMap<String, (Units, Units, Units)> = BTreeMap::new();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (node_id, node) in &self.nodes {
            for r in node.capacity.keys().chain(node.allocated.keys()) {
                agg.entry(r.clone()).or_default();
            }
            for (r, a) in agg.iter_mut() {
                a.0 += node.capacity.get(r).copied().unwrap_or(0);
                a.1 += node.allocated.get(r).copied().unwrap_or(0);
                a.2 += node.free(r);
            }
            nodes.push(NodeUsage {
                node_id: node_id.clone(),
                capacity: to_f64_map(&node.capacity),
                allocated: to_f64_map(&node.allocated),
            });
        }
        let aggregate_utilization = agg
            .into_iter()
            .map(|(r, (total, allocated, free))| {
                let utilization_percent = match (total, allocated) {
                    (0, 0) => 0.0,
                    (0, _) => 100.0,
                    (t, a) => a as f64 / t as f64 * 100.0,
                };
                let a = Aggregate {
                    total: from_units(total),
                    allocated: from_units(allocated),
                    available_capacity: from_units(free),
                    utilization_percent,
                };
                (r, a)
            })
            .collect();
        PoolStatus {
            nodes,
            aggregate_utilization,
            allocations: self
                .held
                .iter()
                .map(|(id, h)| view_held(id, h, now))
                .collect(),
            queued: self
                .queue
                .iter()
                .enumerate()
                .map(|(i, w)| view_waiting(i, w, now))
                .collect(),
        }
    }

    /// Checks the ledger's own bookkeeping; every inconsistency found, none when sound: each
    /// node's allocated amounts are the sum of the grants' portions on it, portions are on known
    /// nodes, the queue is in order and could fit, deadlines match what is unconfirmed or waits.
    pub fn audit(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut sums: BTreeMap<(String, String), Units> = BTreeMap::new();
        let mut deadlines = BTreeSet::new();
        for (id, h) in &self.held {
            for ((n, r), &a) in &h.portions {
                if a == 0 {
                    problems.push(format!("{id}: empty portion of {r} on {n}"));
                }
                if !self.nodes.contains_key(n) {
                    problems.push(format!("{id}: portion on unknown node {n}"));
                }
                *sums.entry((n.clone(), r.clone())).or_default() += a;
            }
            match (h.confirmed, h.deadline) {
                (true, Some(_)) => problems.push(format!("{id}: confirmed with a deadline")),
                (false, Some(d)) => {
                    deadlines.insert((d, id.clone()));
                }
                _ => {}
            }
        }
        for (n, node) in &self.nodes {
            for (r, &a) in &node.allocated {
                let want = sums.remove(&(n.clone(), r.clone())).unwrap_or(0);
                if a != want || a == 0 {
                    problems.push(format!("{n}/{r}: allocated {a}, portions sum to {want}"));
                }
            }
        }
        for ((n, r), s) in sums {
            problems.push(format!("{n}/{r}: portions sum to {s}, nothing allocated"));
        }
        for (i, w) in self.queue.iter().enumerate() {
            let id = &w.request.allocation_id;
            if i > 0 && self.queue[i - 1].request.priority < w.request.priority {
                problems.push(format!("queue out of priority order at {i} ({id})"));
            }
            if i > 0
                && self.queue[i - 1].request.priority == w.request.priority
                && self.queue[i - 1].seq > w.seq
            {
                problems.push(format!("queue out of arrival order at {i} ({id})"));
            }
            if self.held.contains_key(id) {
                problems.push(format!("{id}: both granted and waiting"));
            }
            if !self.shortages(&w.needs, Basis::Capacity).is_empty() {
                problems.push(format!("{id}: waits but can never fit"));
            }
            if let Some(d) = w.deadline {
                deadlines.insert((d, id.clone()));
            }
        }
        if self
            .queue
            .first()
            .is_some_and(|w| self.shortages(&w.needs, Basis::Free).is_empty())
        {
            problems.push("the queue's head fits but waits".into());
        }
        self.audit_totals(&mut problems);
        if deadlines != self.deadlines {
            problems.push("deadlines do not match the unconfirmed grants and the queue".into());
        }
        problems
    }

    /// The kept totals against the sums of the nodes' capacity and free amounts.
    fn audit_totals(&self, problems: &mut Vec<String>) {
        let mut totals: BTreeMap<String, Total> = BTreeMap::new();
        for node in self.nodes.values() {
            for (r, &cap) in &node.capacity {
                let t = totals.entry(r.clone()).or_default();
                t.capacity += cap;
                t.free += node.free(r);
            }
        }
        totals.retain(|_, t| t.capacity > 0);
        let mut kept = self.totals.clone();
        kept.retain(|_, t| *t != Total::default());
        if totals != kept {
            problems.push(format!(
                "totals {kept:?} differ from the nodes' sums {totals:?}"
            ));
        }
    }

    /// What is short for `needs` against the free amounts or the capacity; empty: it fits.
    fn shortages(&self, needs: &Needs, basis: Basis) -> Vec<Shortage> {
        let amount = |node: &Node, r: &str| match basis {
            Basis::Free => node.free(r),
            Basis::Capacity => node.capacity.get(r).copied().unwrap_or(0),
        };
        let mut out = Vec::new();
        for ((n, r), &want) in &needs.pinned {
            let (avail, total) = self.nodes.get(n).map_or((0, 0), |node| {
                (amount(node, r), node.capacity.get(r).copied().unwrap_or(0))
            });
            if want > avail {
                out.push(shortage(r, Some(n), want, avail, total));
            }
        }
        for (r, &want) in &needs.total {
            let t = self.totals.get(r).copied().unwrap_or_default();
            let avail = match basis {
                Basis::Free => t.free,
                Basis::Capacity => t.capacity,
            };
            let total = t.capacity;
            if want > avail {
                out.push(shortage(r, None, want, avail, total));
            }
        }
        out
    }

    /// Grants a request that fits: pinned amounts on their nodes, the rest greedily from the
    /// node with the most free (ties by node id).
    fn grant(&mut self, req: &AllocationRequest, needs: &Needs, now: Instant) -> Grant {
        let mut portions: BTreeMap<(String, String), Units> = BTreeMap::new();
        for ((n, r), &a) in &needs.pinned {
            assert!(
                self.nodes.contains_key(n),
                "a fitting request names known nodes"
            );
            self.adjust(n, r, |x| *x += a);
            *portions.entry((n.clone(), r.clone())).or_default() += a;
        }
        for (r, &want) in &needs.unpinned {
            let mut free: Vec<(Units, &String)> = self
                .nodes
                .iter()
                .map(|(n, node)| (node.free(r), n))
                .filter(|(f, _)| *f > 0)
                .collect();
            free.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let mut left = want;
            let mut takes = Vec::new();
            for (f, n) in free {
                if left == 0 {
                    break;
                }
                let take = f.min(left);
                left -= take;
                takes.push((n.clone(), take));
            }
            assert_eq!(left, 0, "a fitting request is covered");
            for (n, take) in takes {
                self.adjust(&n, r, |x| *x += take);
                *portions.entry((n, r.clone())).or_default() += take;
            }
        }
        let confirmed = req.confirm;
        let deadline = if confirmed {
            None
        } else {
            now.checked_add(self.allocation_timeout)
        };
        let id = req.allocation_id.clone();
        if let Some(d) = deadline {
            self.deadlines.insert((d, id.clone()));
        }
        let held = Held {
            requester_id: req.requester_id.clone(),
            priority: req.priority,
            portions,
            confirmed,
            granted_at: now,
            deadline,
        };
        let grant = view_grant(&id, &held);
        tracing::debug!(allocation = %id, portions = held.portions.len(), "granted");
        self.held.insert(id, held);
        grant
    }

    /// Takes a grant out, returning its amounts to its nodes.
    fn release(&mut self, id: &str) -> Option<Held> {
        let held = self.held.remove(id)?;
        if let Some(d) = held.deadline {
            self.deadlines.remove(&(d, id.to_string()));
        }
        for ((n, r), &a) in &held.portions {
            self.adjust(n, r, |x| *x -= a);
        }
        Some(held)
    }

    /// Changes what is allocated of `r` on node `n`, keeping the totals.
    fn adjust(&mut self, n: &str, r: &str, f: impl FnOnce(&mut Units)) {
        let Some(node) = self.nodes.get_mut(n) else {
            return;
        };
        let before = node.free(r);
        let x = node.allocated.entry(r.to_string()).or_default();
        f(x);
        if *x == 0 {
            node.allocated.remove(r);
        }
        let after = node.free(r);
        if before != after {
            let t = self.totals.entry(r.to_string()).or_default();
            t.free = t.free - before + after;
        }
    }

    /// Adds a node's capacity and free amounts to the totals.
    fn count(&mut self, n: &str) {
        let Some(node) = self.nodes.get(n) else {
            return;
        };
        for (r, &cap) in &node.capacity {
            let t = self.totals.entry(r.clone()).or_default();
            t.capacity += cap;
            t.free += node.free(r);
        }
    }

    /// Takes a node's capacity and free amounts out of the totals.
    fn uncount(&mut self, n: &str) {
        let Some(node) = self.nodes.get(n) else {
            return;
        };
        for (r, &cap) in &node.capacity {
            if let Some(t) = self.totals.get_mut(r) {
                t.capacity -= cap;
                t.free -= node.free(r);
                if t.capacity == 0 {
                    self.totals.remove(r);
                }
            }
        }
    }

    /// Takes a waiting request out of the queue.
    fn unqueue(&mut self, id: &str) -> Option<Waiting> {
        let pos = self
            .queue
            .iter()
            .position(|w| w.request.allocation_id == id)?;
        let w = self.queue.remove(pos);
        if let Some(d) = w.deadline {
            self.deadlines.remove(&(d, id.to_string()));
        }
        Some(w)
    }

    /// After capacity changed (`shrunk`: it may have) or freed: drops waiting requests that
    /// can never fit, then serves the queue from its head while the head fits.
    fn settle(&mut self, now: Instant, shrunk: bool) -> Effects {
        let mut effects = Effects::default();
        let impossible: Vec<(String, Vec<Shortage>)> = self
            .queue
            .iter()
            .filter(|_| shrunk)
            .filter_map(|w| {
                let s = self.shortages(&w.needs, Basis::Capacity);
                (!s.is_empty()).then(|| (w.request.allocation_id.clone(), s))
            })
            .collect();
        for (id, shortages) in impossible {
            let w = self.unqueue(&id).expect("listed above");
            effects.ended.push(Ended {
                allocation_id: id,
                requester_id: w.request.requester_id,
                reason: EndReason::NeverFits { shortages },
            });
        }
        while let Some(head) = self.queue.first() {
            if !self.shortages(&head.needs, Basis::Free).is_empty() {
                break;
            }
            let w = self.queue.remove(0);
            if let Some(d) = w.deadline {
                self.deadlines.remove(&(d, w.request.allocation_id.clone()));
            }
            effects.granted.push(self.grant(&w.request, &w.needs, now));
        }
        effects
    }
}

fn shortage(r: &str, node: Option<&String>, want: Units, avail: Units, total: Units) -> Shortage {
    Shortage {
        resource: r.to_string(),
        node_id: node.cloned(),
        requested: from_units(want),
        available: from_units(avail),
        total: from_units(total),
    }
}

fn to_f64_map(m: &BTreeMap<String, Units>) -> BTreeMap<String, f64> {
    m.iter().map(|(k, &v)| (k.clone(), from_units(v))).collect()
}

fn portions(held: &Held) -> Vec<Portion> {
    held.portions
        .iter()
        .map(|((n, r), &a)| Portion {
            node_id: n.clone(),
            resource: r.clone(),
            amount: from_units(a),
        })
        .collect()
}

fn view_grant(id: &str, held: &Held) -> Grant {
    Grant {
        allocation_id: id.to_string(),
        requester_id: held.requester_id.clone(),
        priority: held.priority,
        portions: portions(held),
        confirmed: held.confirmed,
        granted_at: held.granted_at,
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn until(deadline: Option<Instant>, now: Instant) -> u64 {
    deadline.map_or(u64::MAX, |d| ms(d.saturating_duration_since(now)))
}

fn view_held(id: &str, h: &Held, now: Instant) -> AllocationView {
    AllocationView {
        allocation_id: id.to_string(),
        requester_id: h.requester_id.clone(),
        priority: h.priority,
        confirmed: h.confirmed,
        portions: portions(h),
        age_ms: ms(now.saturating_duration_since(h.granted_at)),
        expires_in_ms: (!h.confirmed).then(|| until(h.deadline, now)),
    }
}

fn view_waiting(position: usize, w: &Waiting, now: Instant) -> QueuedView {
    QueuedView {
        allocation_id: w.request.allocation_id.clone(),
        requester_id: w.request.requester_id.clone(),
        priority: w.request.priority,
        position,
        resources: w.request.resources.clone(),
        waited_ms: ms(now.saturating_duration_since(w.enqueued_at)),
        expires_in_ms: until(w.deadline, now),
    }
}
