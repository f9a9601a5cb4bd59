//! The ledger's rules, case by case, and its invariants over random sequences of operations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const TIMEOUT: Duration = Duration::from_millis(50);

fn caps(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn ledger(nodes: &[(&str, &[(&str, f64)])], now: Instant) -> Ledger {
    let mut l = Ledger::new(TIMEOUT);
    for (n, c) in nodes {
        l.set_capacity(n, &caps(c), now).unwrap();
    }
    l
}

fn req(id: &str, specs: Vec<ResourceSpec>) -> AllocationRequest {
    AllocationRequest::new(id, "tester", specs)
}

fn granted(o: Result<Outcome, AllocError>) -> Grant {
    match o {
        Ok(Outcome::Granted(g)) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn agg(l: &Ledger, r: &str, now: Instant) -> Aggregate {
    l.status(now).aggregate_utilization[r].clone()
}

#[test]
fn splits_greedily_from_the_most_free_node() {
    let t = Instant::now();
    let mut l = ledger(
        &[
            ("a", &[("cpu", 4.0)]),
            ("b", &[("cpu", 8.0)]),
            ("c", &[("cpu", 8.0)]),
        ],
        t,
    );
    // Fits on one node: the most free, ties by id.
    let g = granted(l.allocate(&req("x", vec![ResourceSpec::new("cpu", 6.0)]), t));
    assert_eq!(g.portions.len(), 1);
    assert_eq!(
        (g.portions[0].node_id.as_str(), g.portions[0].amount),
        ("b", 6.0)
    );
    // Free now a 4, b 2, c 8: 11 takes c 8 then a 3.
    let g = granted(l.allocate(&req("y", vec![ResourceSpec::new("CPU", 11.0)]), t));
    let got: Vec<(&str, f64)> = g
        .portions
        .iter()
        .map(|p| (p.node_id.as_str(), p.amount))
        .collect();
    assert_eq!(got, [("a", 3.0), ("c", 8.0)]);
    let a = agg(&l, "cpu", t);
    assert_eq!(
        (a.total, a.allocated, a.available_capacity),
        (20.0, 17.0, 3.0)
    );
    assert_eq!(a.utilization_percent, 85.0);
    assert!(l.audit().is_empty(), "{:?}", l.audit());
}

#[test]
fn refusal_names_what_was_short_and_changes_nothing() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0), ("memory", 100.0)])], t);
    granted(l.allocate(&req("x", vec![ResourceSpec::new("cpu", 3.0)]), t));
    let before = l.status(t);
    let r = req(
        "y",
        vec![
            ResourceSpec::new("memory", 50.0),
            ResourceSpec::new("cpu", 2.0),
        ],
    );
    let Err(AllocError::Insufficient { shortages }) = l.allocate(&r, t) else {
        panic!("expected insufficient")
    };
    assert_eq!(
        shortages,
        [Shortage {
            resource: "cpu".into(),
            node_id: None,
            requested: 2.0,
            available: 1.0,
            total: 4.0
        }]
    );
    assert_eq!(l.status(t), before);
}

#[test]
fn pinned_amounts_take_their_node_first() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)]), ("b", &[("cpu", 2.0)])], t);
    // Unpinned alone would take a; with the pinned amount on a, the rest goes to b.
    let r = req(
        "x",
        vec![
            ResourceSpec::new("cpu", 2.0),
            ResourceSpec::new("cpu", 4.0).on("a"),
        ],
    );
    let g = granted(l.allocate(&r, t));
    let got: Vec<(&str, f64)> = g
        .portions
        .iter()
        .map(|p| (p.node_id.as_str(), p.amount))
        .collect();
    assert_eq!(got, [("a", 4.0), ("b", 2.0)]);
    let Err(AllocError::NeverFits { shortages }) =
        l.allocate(&req("y", vec![ResourceSpec::new("cpu", 1.0).on("zz")]), t)
    else {
        panic!("unknown node never fits")
    };
    assert_eq!(shortages[0].node_id.as_deref(), Some("zz"));
}

#[test]
fn larger_than_the_pool_is_refused_even_with_queue() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)])], t);
    let mut r = req("x", vec![ResourceSpec::new("cpu", 5.0)]);
    r.queue = true;
    assert!(matches!(
        l.allocate(&r, t),
        Err(AllocError::NeverFits { .. })
    ));
    let r = req("g", vec![ResourceSpec::new("gpu", 1.0)]);
    assert!(matches!(
        l.allocate(&r, t),
        Err(AllocError::NeverFits { .. })
    ));
    assert!(l.is_empty());
}

#[test]
fn validation_names_each_field() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)])], t);
    let mut r = AllocationRequest::new(
        "",
        " ",
        vec![
            ResourceSpec::new("cpu", 1.0),
            ResourceSpec::new("cpu", -1.0),
            ResourceSpec::new("memory", f64::NAN),
            ResourceSpec::new("bad name!", 1.0),
            ResourceSpec::new("cpu", 1e-9),
        ],
    );
    r.resources[0].unit = Some("parsecs".into());
    let Err(AllocError::Invalid(e)) = l.allocate(&r, t) else {
        panic!("expected invalid")
    };
    let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "allocation_id",
            "requester_id",
            "resources[0].unit",
            "resources[1].amount",
            "resources[2].amount",
            "resources[3].resource",
            "resources[4].amount",
        ]
    );
    let Err(AllocError::Invalid(e)) = l.allocate(&req("x", vec![]), t) else {
        panic!("expected invalid")
    };
    assert_eq!(e.0[0].field, "resources");
    let bad = caps(&[("cpu", -1.0), ("gpu", f64::INFINITY)]);
    let e = l.set_capacity("a", &bad, t).unwrap_err();
    assert_eq!(e.0.len(), 2);
    assert_eq!(l.status(t).nodes[0].capacity["cpu"], 4.0);
}

#[test]
fn units_convert_to_the_base_unit() {
    let t = Instant::now();
    let gib = 1024.0 * 1024.0 * 1024.0;
    let mut l = ledger(
        &[("a", &[("memory", 8.0 * gib), ("cpu", 2.0), ("gpu", 2.0)])],
        t,
    );
    let mut mem = ResourceSpec::new("Memory", 2.0);
    mem.unit = Some("GiB".into());
    let mut cpu = ResourceSpec::new("cpu", 500.0);
    cpu.unit = Some("millicores".into());
    let mut gpu = ResourceSpec::new("GPU", 1.0);
    gpu.unit = Some("cards".into());
    granted(l.allocate(&req("x", vec![mem, cpu, gpu]), t));
    let s = l.status(t);
    assert_eq!(s.aggregate_utilization["memory"].allocated, 2.0 * gib);
    assert_eq!(s.aggregate_utilization["cpu"].allocated, 0.5);
    assert_eq!(s.aggregate_utilization["gpu"].allocated, 1.0);
}

#[test]
fn duplicates_are_refused_granted_or_waiting() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)])], t);
    granted(l.allocate(&req("x", vec![ResourceSpec::new("cpu", 4.0)]), t));
    let mut w = req("w", vec![ResourceSpec::new("cpu", 1.0)]);
    w.queue = true;
    assert_eq!(l.allocate(&w, t), Ok(Outcome::Queued { position: 0 }));
    for id in ["x", "w"] {
        let r = req(id, vec![ResourceSpec::new("cpu", 1.0)]);
        assert_eq!(l.allocate(&r, t), Err(AllocError::Duplicate(id.into())));
    }
}

#[test]
fn unconfirmed_grants_and_waiting_requests_expire_confirmed_do_not() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)])], t);
    granted(l.allocate(&req("u", vec![ResourceSpec::new("cpu", 2.0)]), t));
    let c = granted(l.allocate(&req("c", vec![ResourceSpec::new("cpu", 2.0)]), t));
    assert!(!c.confirmed);
    assert_eq!(l.confirm("c"), Ok(Confirmed::Granted));
    let mut w = req("w", vec![ResourceSpec::new("cpu", 3.0)]);
    w.queue = true;
    let t1 = t + Duration::from_millis(10);
    assert_eq!(l.allocate(&w, t1), Ok(Outcome::Queued { position: 0 }));
    assert_eq!(l.next_deadline(), Some(t + TIMEOUT));
    // Just before the deadline nothing happens.
    assert!(l.expire(t + TIMEOUT - Duration::from_nanos(1)).is_empty());
    let e = l.expire(t + TIMEOUT);
    assert_eq!(e.ended.len(), 1);
    assert_eq!(
        (e.ended[0].allocation_id.as_str(), &e.ended[0].reason),
        ("u", &EndReason::Expired)
    );
    // 2 of 4 free: the waiting 3 still waits, then times out itself.
    assert!(e.granted.is_empty());
    let e = l.expire(t1 + TIMEOUT);
    assert_eq!(e.ended[0].reason, EndReason::QueueTimeout);
    assert_eq!(l.len(), (1, 0));
    assert_eq!(l.next_deadline(), None);
    assert!(l.expire(t + TIMEOUT * 100).is_empty());
    assert!(l.get("c", t).is_some());
}

#[test]
fn a_request_granted_from_the_queue_gets_a_fresh_timeout() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)])], t);
    granted(l.allocate(&req("x", vec![ResourceSpec::new("cpu", 4.0)]), t));
    l.confirm("x").unwrap();
    let mut w = req("w", vec![ResourceSpec::new("cpu", 4.0)]);
    w.queue = true;
    l.allocate(&w, t).unwrap();
    let t1 = t + Duration::from_millis(40);
    let (released, effects) = l.deallocate("x", t1).unwrap();
    assert!(matches!(released, Released::Grant(g) if g.allocation_id == "x"));
    assert_eq!(effects.granted.len(), 1);
    assert_eq!(effects.granted[0].granted_at, t1);
    assert_eq!(l.next_deadline(), Some(t1 + TIMEOUT));
}

#[test]
fn confirming_a_waiting_request_grants_it_confirmed() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 1.0)])], t);
    granted(l.allocate(&req("x", vec![ResourceSpec::new("cpu", 1.0)]), t));
    let mut w = req("w", vec![ResourceSpec::new("cpu", 1.0)]);
    w.queue = true;
    l.allocate(&w, t).unwrap();
    assert_eq!(l.confirm("w"), Ok(Confirmed::Queued));
    let (_, effects) = l.deallocate("x", t).unwrap();
    assert!(effects.granted[0].confirmed);
    assert_eq!(l.next_deadline(), None);
    assert_eq!(l.confirm("nope"), Err(UnknownAllocation("nope".into())));
    assert!(l.deallocate("nope", t).is_err());
}

#[test]
fn priority_queues_without_preemption() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)])], t);
    let mut low = req("low", vec![ResourceSpec::new("cpu", 4.0)]);
    low.priority = -1;
    granted(l.allocate(&low, t));
    // A higher priority does not take a grant back.
    let mut high = req("high", vec![ResourceSpec::new("cpu", 4.0)]);
    high.priority = 10;
    assert!(matches!(
        l.allocate(&high, t),
        Err(AllocError::Insufficient { .. })
    ));
    let mut queued = |id: &str, p: i32, cpu: f64| {
        let mut r = req(id, vec![ResourceSpec::new("cpu", cpu)]);
        r.priority = p;
        r.queue = true;
        l.allocate(&r, t).unwrap()
    };
    assert_eq!(queued("p0-first", 0, 1.0), Outcome::Queued { position: 0 });
    assert_eq!(queued("p5", 5, 4.0), Outcome::Queued { position: 0 });
    assert_eq!(queued("p0-second", 0, 1.0), Outcome::Queued { position: 2 });
    assert_eq!(queued("p5-small", 5, 1.0), Outcome::Queued { position: 1 });
    let order: Vec<String> = l
        .status(t)
        .queued
        .into_iter()
        .map(|q| q.allocation_id)
        .collect();
    assert_eq!(order, ["p5", "p5-small", "p0-first", "p0-second"]);
    // Fits, but a waiting request of equal priority comes first.
    assert!(
        l.set_capacity("b", &caps(&[("cpu", 1.0)]), t)
            .unwrap()
            .granted
            .is_empty()
    );
    let mut r = req("eq", vec![ResourceSpec::new("cpu", 1.0)]);
    r.priority = 5;
    assert_eq!(l.allocate(&r, t), Err(AllocError::Blocked { ahead: 2 }));
    // Higher than every waiting request, and it fits: granted at once.
    let mut r = req("top", vec![ResourceSpec::new("cpu", 1.0)]);
    r.priority = 6;
    granted(l.allocate(&r, t));
    // Freeing 4 serves p5 (4); p5-small then does not fit and everything behind it waits.
    let (_, effects) = l.deallocate("low", t).unwrap();
    let ids: Vec<&str> = effects
        .granted
        .iter()
        .map(|g| g.allocation_id.as_str())
        .collect();
    assert_eq!(ids, ["p5"]);
    let (_, effects) = l.deallocate("top", t).unwrap();
    let ids: Vec<&str> = effects
        .granted
        .iter()
        .map(|g| g.allocation_id.as_str())
        .collect();
    assert_eq!(ids, ["p5-small"]);
    let (_, effects) = l.deallocate("p5", t).unwrap();
    let ids: Vec<&str> = effects
        .granted
        .iter()
        .map(|g| g.allocation_id.as_str())
        .collect();
    assert_eq!(ids, ["p0-first", "p0-second"]);
    assert!(l.audit().is_empty(), "{:?}", l.audit());
}

#[test]
fn shrinking_keeps_grants_but_grants_nothing_new_there() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 8.0)]), ("b", &[("cpu", 2.0)])], t);
    granted(l.allocate(&req("x", vec![ResourceSpec::new("cpu", 6.0).on("a")]), t));
    l.set_capacity("a", &caps(&[("cpu", 4.0)]), t).unwrap();
    assert_eq!(l.len(), (1, 0));
    let a = agg(&l, "cpu", t);
    assert_eq!(
        (a.total, a.allocated, a.available_capacity),
        (6.0, 6.0, 2.0)
    );
    assert_eq!(a.utilization_percent, 100.0);
    let g = granted(l.allocate(&req("y", vec![ResourceSpec::new("cpu", 2.0)]), t));
    assert_eq!(g.portions[0].node_id, "b");
    assert!(matches!(
        l.allocate(&req("z", vec![ResourceSpec::new("cpu", 0.5)]), t),
        Err(AllocError::Insufficient { .. })
    ));
    // A waiting request the smaller pool can never hold is dropped.
    let mut w = req("w", vec![ResourceSpec::new("cpu", 5.0)]);
    w.queue = true;
    l.allocate(&w, t).unwrap();
    let e = l.set_capacity("a", &caps(&[("cpu", 2.0)]), t).unwrap();
    assert!(matches!(e.ended[0].reason, EndReason::NeverFits { .. }));
    assert!(l.audit().is_empty(), "{:?}", l.audit());
}

#[test]
fn removing_a_node_releases_its_grants_whole() {
    let t = Instant::now();
    let mut l = ledger(&[("a", &[("cpu", 4.0)]), ("b", &[("cpu", 4.0)])], t);
    granted(l.allocate(&req("both", vec![ResourceSpec::new("cpu", 6.0)]), t));
    granted(l.allocate(&req("on-b", vec![ResourceSpec::new("cpu", 1.0).on("b")]), t));
    let mut w = req("w", vec![ResourceSpec::new("cpu", 3.0)]);
    w.queue = true;
    l.allocate(&w, t).unwrap();
    let e = l.remove_node("a", t);
    assert_eq!(e.ended.len(), 1);
    assert_eq!(e.ended[0].allocation_id, "both");
    assert_eq!(
        e.ended[0].reason,
        EndReason::NodeRemoved {
            node_id: "a".into()
        }
    );
    // The whole of "both" came back, so the waiting 3 fits on b.
    assert_eq!(e.granted.len(), 1);
    let a = agg(&l, "cpu", t);
    assert_eq!((a.total, a.allocated), (4.0, 4.0));
    assert!(l.remove_node("a", t).is_empty());
    assert!(l.audit().is_empty(), "{:?}", l.audit());
}

// ---- invariants over random sequences ----

const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const RES: [&str; 3] = ["cpu", "memory", "gpu"];

#[derive(Debug, Clone)]
enum Op {
    SetCapacity {
        node: usize,
        amounts: [u8; 3],
    },
    Allocate {
        id: u8,
        priority: i8,
        queue: bool,
        confirm: bool,
        specs: Vec<(usize, u16, Option<usize>)>,
    },
    Confirm(u8),
    Deallocate(u8),
    Advance(u8),
    RemoveNode(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let spec = (
        0..RES.len(),
        1u16..80,
        prop::option::weighted(0.2, 0..NODES.len()),
    );
    prop_oneof![
        2 => (0..NODES.len(), prop::array::uniform3(0u8..16))
            .prop_map(|(node, amounts)| Op::SetCapacity { node, amounts }),
        6 => (0u8..24, -2i8..3, any::<bool>(), prop::bool::weighted(0.3),
              prop::collection::vec(spec, 1..4))
            .prop_map(|(id, priority, queue, confirm, specs)| Op::Allocate {
                id, priority, queue, confirm, specs
            }),
        2 => (0u8..24).prop_map(Op::Confirm),
        3 => (0u8..24).prop_map(Op::Deallocate),
        2 => (0u8..40).prop_map(Op::Advance),
        1 => (0..NODES.len()).prop_map(Op::RemoveNode),
    ]
}

/// (node, resource) → (capacity, allocated).
fn usage(s: &PoolStatus) -> BTreeMap<(String, String), (f64, f64)> {
    let mut out = BTreeMap::new();
    for n in &s.nodes {
        for r in n.capacity.keys().chain(n.allocated.keys()) {
            let c = n.capacity.get(r).copied().unwrap_or(0.0);
            let a = n.allocated.get(r).copied().unwrap_or(0.0);
            out.insert((n.node_id.clone(), r.clone()), (c, a));
        }
    }
    out
}

/// Queue order key: priority descending, then arrival.
fn key(priority: i32, arrival: u64) -> (i32, u64) {
    (-priority, arrival)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_pool_keeps_its_rules(ops in prop::collection::vec(op(), 1..120)) {
        let start = Instant::now();
        let mut now = start;
        let mut l = Ledger::new(TIMEOUT);
        let mut arrival: BTreeMap<String, u64> = BTreeMap::new();
        let mut next_arrival = 0u64;
        let mut confirmed: BTreeSet<String> = BTreeSet::new();
        for op in ops {
            let before = l.status(now);
            let waiting_before: BTreeMap<String, i32> =
                before.queued.iter().map(|q| (q.allocation_id.clone(), q.priority)).collect();
            // Grants of this step with their queue key.
            let mut new_grants: Vec<(Grant, (i32, u64))> = Vec::new();
            let mut effects = Effects::default();
            match op {
                Op::SetCapacity { node, amounts } => {
                    let c = RES.iter().zip(amounts).map(|(r, a)| (r.to_string(), a as f64 / 2.0)).collect();
                    effects = l.set_capacity(NODES[node], &c, now).unwrap();
                }
                Op::Allocate { id, priority, queue, confirm, specs } => {
                    let id = format!("a{id}");
                    let resources = specs.iter().map(|&(r, amount, node)| ResourceSpec {
                        resource: RES[r].into(),
                        amount: amount as f64 / 8.0,
                        unit: None,
                        node_id: node.map(|n| NODES[n].to_string()),
                    }).collect();
                    let r = AllocationRequest {
                        allocation_id: id.clone(), requester_id: "p".into(), resources,
                        priority: priority.into(), queue, confirm,
                    };
                    next_arrival += 1;
                    match l.allocate(&r, now) {
                        Ok(Outcome::Granted(g)) => {
                            // Exactly what was asked, per resource.
                            let mut asked: BTreeMap<&str, Units> = BTreeMap::new();
                            for s in &r.resources {
                                *asked.entry(&s.resource).or_default() += to_units(s.amount);
                            }
                            let mut got: BTreeMap<&str, Units> = BTreeMap::new();
                            for p in &g.portions {
                                *got.entry(&p.resource).or_default() += to_units(p.amount);
                            }
                            prop_assert_eq!(asked, got);
                            if confirm { confirmed.insert(id.clone()); }
                            new_grants.push((g, key(priority.into(), u64::MAX)));
                        }
                        Ok(Outcome::Queued { position }) => {
                            prop_assert!(queue);
                            arrival.insert(id.clone(), next_arrival);
                            let after = l.status(now);
                            prop_assert_eq!(&after.queued[position].allocation_id, &id);
                        }
                        Err(e) => {
                            // All-or-nothing: a refusal changes nothing.
                            prop_assert_eq!(&l.status(now), &before, "{}", e);
                            if let AllocError::Blocked { .. } = e { prop_assert!(!queue); }
                        }
                    }
                }
                Op::Confirm(id) => {
                    let id = format!("a{id}");
                    if l.confirm(&id) == Ok(Confirmed::Granted) { confirmed.insert(id); }
                }
                Op::Deallocate(id) => {
                    let id = format!("a{id}");
                    if let Ok((_, e)) = l.deallocate(&id, now) {
                        confirmed.remove(&id);
                        effects = e;
                    }
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms.into());
                    effects = l.expire(now);
                    // Nothing unconfirmed or waiting outlives its timeout.
                    for a in l.status(now).allocations {
                        prop_assert!(a.confirmed || a.expires_in_ms.unwrap() > 0, "{:?}", a);
                    }
                    for q in l.status(now).queued {
                        prop_assert!(q.expires_in_ms > 0, "{:?}", q);
                    }
                }
                Op::RemoveNode(n) => effects = l.remove_node(NODES[n], now),
            }
            for e in &effects.ended {
                if e.reason == EndReason::Expired || e.reason == EndReason::QueueTimeout {
                    prop_assert!(!confirmed.contains(&e.allocation_id));
                }
                confirmed.remove(&e.allocation_id);
            }
            for g in effects.granted {
                prop_assert!(waiting_before.contains_key(&g.allocation_id));
                let k = key(g.priority, arrival[&g.allocation_id]);
                if g.confirmed { confirmed.insert(g.allocation_id.clone()); }
                new_grants.push((g, k));
            }
            let after = l.status(now);
            prop_assert!(l.audit().is_empty(), "{:?}", l.audit());
            // No oversubscription: an amount that grew is within capacity; one over capacity
            // (after a shrink) did not grow.
            let (u0, u1) = (usage(&before), usage(&after));
            for (k, &(cap, alloc)) in &u1 {
                let was = u0.get(k).map_or(0.0, |x| x.1);
                prop_assert!(alloc <= was || alloc <= cap, "{:?}: {} > {} (was {})", k, alloc, cap, was);
            }
            // No grant jumps a request that still waits with higher or equal priority and
            // earlier arrival.
            for (g, gk) in &new_grants {
                for q in &after.queued {
                    if waiting_before.contains_key(&q.allocation_id) {
                        let qk = key(q.priority, arrival[&q.allocation_id]);
                        prop_assert!(qk > *gk, "{} granted before waiting {}", g.allocation_id, q.allocation_id);
                    }
                }
            }
            // Confirmed allocations stay until deallocated or their node leaves.
            let held: BTreeSet<&String> = after.allocations.iter().map(|a| &a.allocation_id).collect();
            for c in &confirmed {
                prop_assert!(held.contains(c), "confirmed {} vanished", c);
            }
            // The queue is in order.
            for w in after.queued.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                prop_assert!(key(a.priority, arrival[&a.allocation_id]) < key(b.priority, arrival[&b.allocation_id]));
            }
        }
        // Releasing everything returns the pool to empty.
        let ids: Vec<String> = l.status(now).allocations.into_iter().map(|a| a.allocation_id)
            .chain(l.status(now).queued.into_iter().map(|q| q.allocation_id)).collect();
        for id in ids {
            // A waiting request may have been granted by an earlier release: either way it goes.
            l.deallocate(&id, now).unwrap();
        }
        prop_assert!(l.is_empty());
        for a in l.status(now).aggregate_utilization.values() {
            prop_assert_eq!(a.allocated, 0.0);
            prop_assert_eq!(a.available_capacity, a.total);
        }
    }
}
