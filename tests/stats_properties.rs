//! Properties of the pieces that add up a task's figures (issue 14 item 5):
//!
//! - `Window::merge` is associative and commutative, and the merged counts are the sums;
//! - a `TaskAccumulator` fed the same windows in any order (per shard in index order, shards
//!   interleaved at random) ends with the same totals and timeline, whose points add up to
//!   the totals, and is done once every shard sent its last window;
//! - re-splitting a `ShareTable` after a loss: every arrival is owned exactly once before and
//!   after, nothing before the loss changes owner, and the lost slot owns nothing after it.

use std::time::Duration;

use mcp_testing::engine::share::ShareTable;
use mcp_testing::stats::{ErrorKind, Outcome, TaskAccumulator, Window};
use proptest::prelude::*;

/// A window of second `index` with these counts; every completed request has latency
/// `latency_ms` and fails (connect) when `fail` says.
fn window(index: u64, (sent, ok, failed, late, latency_ms): (u64, u64, u64, u64, u64)) -> Window {
    let mut w = Window::new(index);
    w.sent = sent;
    w.late_starts = late;
    for i in 0..ok + failed {
        let outcome = Outcome {
            status: (i < ok).then_some(200),
            error: (i >= ok).then_some(ErrorKind::Connect),
            bytes: 10,
            slow: false,
            handshake: None,
            ..Outcome::default()
        };
        let latency = Duration::from_millis(latency_ms + i);
        // Three request names, so the per-request windows merge under the same properties.
        w.record_request((i % 3) as usize, &outcome, latency, latency);
    }
    w
}

/// What a window's merge should preserve, comparable: its counts (sent, completed, late,
/// errors, connect errors, bytes, histogram counts, max and median), and its status codes.
/// Each request name's figures: completed, errors, recorded, median.
type ByName = Vec<(u64, u64, u64, u64)>;

/// The figures compared, each request name's included.
fn figures(w: &Window) -> ([u64; 9], Vec<(u16, u64)>, ByName) {
    let counts = [
        w.sent,
        w.completed,
        w.late_starts,
        w.errors.total,
        w.errors.connect,
        w.bytes,
        w.corrected.len(),
        w.corrected.max(),
        w.uncorrected.value_at_quantile(0.5),
    ];
    let requests = w
        .requests
        .iter()
        .flatten()
        .map(|r| {
            (
                r.completed,
                r.errors.total,
                r.corrected.len(),
                r.uncorrected.value_at_quantile(0.5),
            )
        })
        .collect();
    (
        counts,
        w.status_codes.iter().map(|(c, n)| (*c, *n)).collect(),
        requests,
    )
}

fn counts() -> impl Strategy<Value = (u64, u64, u64, u64, u64)> {
    (0u64..50, 0u64..20, 0u64..5, 0u64..5, 1u64..2_000)
}

fn merged(a: &Window, b: &Window) -> Window {
    let mut m = a.clone();
    m.merge(b);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn window_merge_is_associative_and_commutative(a in counts(), b in counts(), c in counts()) {
        let (a, b, c) = (window(0, a), window(0, b), window(0, c));
        prop_assert_eq!(figures(&merged(&a, &b)), figures(&merged(&b, &a)));
        let left = merged(&merged(&a, &b), &c);
        let right = merged(&a, &merged(&b, &c));
        prop_assert_eq!(figures(&left), figures(&right));
        // Totals add up.
        prop_assert_eq!(left.sent, a.sent + b.sent + c.sent);
        prop_assert_eq!(left.completed, a.completed + b.completed + c.completed);
        prop_assert_eq!(left.errors.total, a.errors.total + b.errors.total + c.errors.total);
        prop_assert_eq!(left.corrected.len(), left.completed);
        prop_assert_eq!(left.status_codes.values().sum::<u64>() + left.errors.total, left.completed);
        let by_name = left.requests.iter().flatten();
        prop_assert_eq!(by_name.map(|r| r.completed).sum::<u64>(), left.completed);
    }

    #[test]
    fn the_accumulator_adds_up_whatever_the_order(
        shards in proptest::collection::vec(proptest::collection::vec(counts(), 1..6), 1..4),
        interleave in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let planned = |_: u64| 1.0;
        let run = |order: &[usize]| {
            let mut acc = TaskAccumulator::new(shards.len(), Box::new(planned));
            let mut next = vec![0usize; shards.len()];
            for &s in order {
                let i = next[s];
                next[s] += 1;
                let last = next[s] == shards[s].len();
                prop_assert!(!acc.is_done());
                acc.add(s, window(i as u64, shards[s][i]), last);
            }
            prop_assert!(acc.is_done());
            Ok(acc)
        };
        // In shard order, then interleaved as the indexes say.
        let in_order: Vec<usize> =
            (0..shards.len()).flat_map(|s| std::iter::repeat_n(s, shards[s].len())).collect();
        let mut pending: Vec<usize> = in_order.clone();
        let mut shuffled = Vec::new();
        for ix in &interleave {
            if pending.is_empty() {
                break;
            }
            shuffled.push(pending.remove(ix.index(pending.len())));
        }
        shuffled.extend(pending);
        // Within a shard the windows go in index order whatever the pick: only the shards
        // interleave.
        let a = run(&in_order)?;
        let b = run(&shuffled)?;
        prop_assert_eq!(figures(a.total()), figures(b.total()));
        prop_assert_eq!(a.timeline(), b.timeline());
        prop_assert_eq!(a.shard_totals(), b.shard_totals());
        let sent: u64 = shards.iter().flatten().map(|c| c.0).sum();
        let completed: u64 = shards.iter().flatten().map(|c| c.1 + c.2).sum();
        prop_assert_eq!(a.total().sent, sent);
        prop_assert_eq!(a.total().completed, completed);
        prop_assert_eq!(a.timeline().iter().map(|p| p.sent).sum::<u64>(), sent);
        prop_assert_eq!(a.timeline().iter().map(|p| p.completed).sum::<u64>(), completed);
        prop_assert_eq!(a.shard_totals().iter().map(|t| t.sent).sum::<u64>(), sent);
        let longest = shards.iter().map(Vec::len).max().unwrap_or(0);
        prop_assert_eq!(a.timeline().len(), longest);
    }

    #[test]
    fn every_arrival_is_owned_once_before_and_after_a_loss(
        n in 1usize..7,
        lost in 0u16..7,
        at_ms in 0u64..5_000,
        arrivals in proptest::collection::vec(0u64..10_000, 1..300),
    ) {
        let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let before = ShareTable::equal(nodes.clone());
        let lost = lost % n as u16;
        let mut after = before.clone();
        let reshared = after.without(lost, at_ms);
        prop_assert_eq!(reshared, n > 1);
        for (k, &t) in arrivals.iter().enumerate() {
            let offset = Duration::from_millis(t);
            let (old, new) = (before.owner(k as u64, offset), after.owner(k as u64, offset));
            // One owner, a real slot, on both sides.
            prop_assert!((old as usize) < n && (new as usize) < n);
            if t < at_ms || !reshared {
                prop_assert_eq!(old, new, "arrival {} at {} ms changed owner", k, t);
            } else {
                prop_assert_ne!(new, lost, "the lost slot owns arrival {} at {} ms", k, t);
            }
        }
        // Counted over the slots, every arrival once.
        let offsets = arrivals.iter().map(|&t| Duration::from_millis(t));
        prop_assert_eq!(after.counts(offsets).iter().sum::<u64>(), arrivals.len() as u64);
    }
}
