use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::engine::share::Lease;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn stages(parts: &[(f64, f64)], base: f64) -> RatePlan {
    let mut from = base;
    let mut plan = super::super::PlanBuilder::default();
    for &(d, r) in parts {
        plan.push(secs(d), from, r);
        from = r;
    }
    plan.build()
}

fn share(table: &ShareTable, slot: u16) -> NodeShare {
    NodeShare::new(
        format!("n{slot}"),
        slot,
        table.clone(),
        Arc::new(Lease::expired()),
    )
}

/// One shard of one node: its slot, its shard and its arrivals.
type Shard = (u16, usize, Vec<(u64, Duration)>);

/// Every shard of every node of `table`.
fn all_parts(
    plan: &RatePlan,
    mode: Arrivals,
    seed: u64,
    table: &ShareTable,
    shards: usize,
) -> Vec<Shard> {
    let mut out = Vec::new();
    for slot in 0..table.nodes.len() as u16 {
        let node = share(table, slot);
        for shard in 0..shards {
            let part = Part {
                share: Some(&node),
                shard,
                shards,
            };
            out.push((slot, shard, plan.own_arrivals(mode, seed, part).collect()));
        }
    }
    out
}

/// The global uniform sequence as it was computed before nodes computed only their own:
/// walk the segments, arrival `k` where the running count reaches `k`.
fn walked_uniform(plan: &RatePlan) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut before = 0.0;
    for seg in &plan.segments {
        let area = seg.area();
        while (out.len() as f64) < before + area {
            let tau = seg.time_of(out.len() as f64 - before);
            let at = seg.start + Duration::from_secs_f64(tau);
            out.push(at.min(seg.start + seg.duration - Duration::from_nanos(1)));
        }
        before += area;
    }
    out
}

/// A table of `n` nodes that loses the nodes of `losses` (slot, gap in ms) in turn.
fn table(n: usize, losses: &[(u16, u64)]) -> ShareTable {
    let mut t = ShareTable::equal((0..n).map(|i| format!("n{i}")).collect());
    let mut at = 0;
    for &(slot, gap) in losses {
        at += gap;
        t.without(slot % n as u16, at);
    }
    t
}

fn arb_plan() -> impl Strategy<Value = RatePlan> {
    (
        proptest::collection::vec((0.05f64..4.0, 0.0f64..400.0), 1..5),
        0.0f64..300.0,
    )
        .prop_map(|(parts, base)| stages(&parts, base))
}

fn arb_table() -> impl Strategy<Value = ShareTable> {
    (
        1usize..7,
        proptest::collection::vec((0u16..7, 1u64..3000), 0..4),
    )
        .prop_map(|(n, losses)| table(n, &losses))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    /// Uniform: the shards of the nodes together hold every arrival number once, each at the
    /// time the global sequence gives it and owned by the node the table says.
    #[test]
    fn uniform_parts_partition_the_global_sequence(
        plan in arb_plan(),
        table in arb_table(),
        shards in 1usize..4,
    ) {
        let global = walked_uniform(&plan);
        let planned = plan.planned_requests(Arrivals::Uniform, 0);
        prop_assert!(planned.abs_diff(global.len() as u64) <= 1);
        let mut seen = vec![0u32; planned as usize];
        for (slot, _, own) in all_parts(&plan, Arrivals::Uniform, 0, &table, shards) {
            prop_assert!(own.windows(2).all(|w| w[0].1 <= w[1].1), "out of order");
            for (n, at) in own {
                prop_assert_eq!(at, global[n as usize], "arrival {}", n);
                prop_assert_eq!(table.owner(n, at), slot, "arrival {} at {:?}", n, at);
                seen[n as usize] += 1;
            }
        }
        prop_assert!(seen.iter().all(|&c| c == 1), "{:?}", seen);
    }

    /// Poisson: every number of the planned count has one owner, the node the period in force
    /// at its block's start names; each part is in order and inside the plan; and the same
    /// inputs give the same arrivals.
    #[test]
    fn poisson_parts_hold_the_planned_count_once(
        plan in arb_plan(),
        table in arb_table(),
        shards in 1usize..4,
        seed in any::<u64>(),
    ) {
        let planned = plan.planned_requests(Arrivals::Poisson, seed);
        let parts = all_parts(&plan, Arrivals::Poisson, seed, &table, shards);
        let mut seen = vec![0u32; planned as usize];
        for (slot, _, own) in &parts {
            prop_assert!(own.windows(2).all(|w| w[0].1 <= w[1].1), "out of order");
            for &(n, at) in own {
                prop_assert!(n < planned && at < plan.duration());
                let block = POISSON_BLOCK * (at.as_nanos() / POISSON_BLOCK.as_nanos()) as u32;
                prop_assert_eq!(table.owner(n, block), *slot);
                seen[n as usize] += 1;
            }
        }
        prop_assert!(seen.iter().all(|&c| c == 1));
        prop_assert_eq!(parts, all_parts(&plan, Arrivals::Poisson, seed, &table, shards));
        let whole: Vec<_> = plan.own_arrivals(Arrivals::Poisson, seed, Part::WHOLE).collect();
        prop_assert_eq!(whole.len() as u64, planned);
        prop_assert!(whole.iter().enumerate().all(|(i, &(n, _))| n == i as u64));
    }
}

/// Per-second counts of a Poisson run split over nodes (with a re-split) have the planned
/// mean and a Poisson's dispersion. Fixed seeds: the bounds are many standard errors wide.
#[test]
fn poisson_seconds_are_poisson_whatever_the_split() {
    let plan = RatePlan::constant(100.0, Duration::from_secs(300));
    let table = table(4, &[(2, 150_050)]);
    for seed in [1, 2] {
        let mut per_second = vec![0f64; 300];
        for (_, _, own) in all_parts(&plan, Arrivals::Poisson, seed, &table, 2) {
            for (_, at) in own {
                per_second[at.as_secs() as usize] += 1.0;
            }
        }
        let mean = per_second.iter().sum::<f64>() / 300.0;
        let var = per_second.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / 299.0;
        // Standard errors: of the mean 0.6, of the variance ratio about 0.08.
        assert!((mean - 100.0).abs() < 4.0, "seed {seed}: mean {mean}");
        assert!(
            (var / mean - 1.0).abs() < 0.4,
            "seed {seed}: dispersion {}",
            var / mean
        );
    }
}

/// A node whose table changes while it runs goes on as if it had had the new table from the
/// start, since the change only concerns the future.
#[test]
fn a_re_split_is_read_while_running() {
    let plan = stages(&[(5.0, 300.0), (5.0, 50.0)], 100.0);
    let before = table(3, &[]);
    let after = table(3, &[(1, 4_030)]);
    for mode in Arrivals::ALL {
        for slot in [0u16, 1, 2] {
            let fixed = share(&after, slot);
            let part = |s| Part {
                share: Some(s),
                shard: 1,
                shards: 2,
            };
            let want: Vec<_> = plan.own_arrivals(mode, 9, part(&fixed)).collect();
            let live = share(&before, slot);
            let mut own = plan.own_arrivals(mode, 9, part(&live));
            let mut got: Vec<_> = own.by_ref().take_while(|a| a.1 < secs(3.0)).collect();
            live.set_table(after.clone());
            // take_while consumed one arrival past 3 s: it is the next one wanted.
            got.push(want[got.len()]);
            got.extend(own);
            assert_eq!(got, want, "{mode:?} slot {slot}");
        }
    }
}

#[test]
fn a_node_owning_nothing_gets_nothing_and_ends() {
    let mut t = table(2, &[]);
    t.periods[0].owners = vec![0];
    let node = share(&t, 1);
    let plan = RatePlan::constant(1000.0, secs(2.0));
    for mode in Arrivals::ALL {
        let part = Part {
            share: Some(&node),
            shard: 0,
            shards: 1,
        };
        assert_eq!(plan.own_arrivals(mode, 1, part).count(), 0);
    }
}

#[test]
fn the_block_counts_are_the_plans_and_shared() {
    let plan = RatePlan::constant(1000.0, secs(1.05));
    let blocks: Vec<u64> = plan.poisson_blocks(5).collect();
    // Ten whole blocks and a half one.
    assert_eq!(blocks.len(), 11);
    assert_eq!(blocks, plan.poisson_blocks(5).collect::<Vec<_>>());
    assert_eq!(
        blocks.iter().sum::<u64>(),
        plan.planned_requests(Arrivals::Poisson, 5)
    );
    assert!(
        blocks[..10].iter().all(|&n| (50..150).contains(&n)),
        "{blocks:?}"
    );
}
