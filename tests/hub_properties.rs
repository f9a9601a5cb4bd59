//! Properties of the cluster link under faults: for each delivery mode, 256 seeds × 10,000
//! messages from `a` to `b` over a simulated link that drops, duplicates and reorders frames
//! and cuts the connection (half of the reconnections restart the session), on a virtual clock.
//!
//! - sequenced modes deliver FIFO: ids strictly increase per session (across sessions too for
//!   exactly-once and reliable, which never deliver twice);
//! - at-least-once delivers every message, exactly-once every message exactly once (the
//!   application confirms about half of them a tick late, so the ack waits for it);
//! - reliable delivers or reports failed every message, never both;
//! - fire-and-forget never transmits a message twice, and every message is delivered, counted
//!   as dropped by the session, or lost on the simulated wire;
//! - every run quiesces (empty outbox, nothing in flight) within a bounded number of ticks.
//!
//! Seeds are spread over the available cores; a failing assertion names its seed.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_testing::hub::{
    Delivery, FaultConfig, FaultLink, FaultStats, GiveUp, LinkFrame, Observed, Session,
    SessionConfig, SessionStats,
};

const SEEDS: u64 = 256;
const MESSAGES: usize = 10_000;
/// Messages offered per tick (the outbox may refuse some: backpressure).
const SENDS_PER_TICK: usize = 16;
/// A run that has not quiesced after this many ticks fails.
const MAX_TICKS: u64 = 100_000;

fn session_config() -> SessionConfig {
    SessionConfig {
        outbox_capacity: 256,
        retransmit_after: Duration::from_millis(30),
        // A little smaller than the outbox, so a stalled window overflows it.
        reorder_window: 240,
        dedup_capacity: 256,
    }
}

/// What one seeded run did, per message index (the body; its id is index + 1).
struct Run {
    seed: u64,
    delivered: Vec<u32>,
    failed: Vec<Option<GiveUp>>,
    /// Data frames `a` transmitted per message, before faults.
    transmitted: Vec<u32>,
    sender: SessionStats,
    receiver: SessionStats,
    faults: FaultStats,
}

fn simulate(seed: u64, mode: fn(usize) -> Delivery) -> Run {
    let (a, b) = (
        Session::new(session_config()),
        Session::new(session_config()),
    );
    let mut link: FaultLink<u64, u64> = FaultLink::new(a, b, FaultConfig::lossy(), seed);
    let mut run = Run {
        seed,
        delivered: vec![0; MESSAGES],
        failed: vec![None; MESSAGES],
        transmitted: vec![0; MESSAGES],
        sender: SessionStats::default(),
        receiver: SessionStats::default(),
        faults: FaultStats::default(),
    };
    // Exactly-once confirmations the application makes one tick late.
    let mut late_confirms = Vec::new();
    let mut last_id = 0;
    let mut restarts = 0;
    let mut next = 0;
    let mut quiesced = false;
    for _ in 0..MAX_TICKS {
        let now = link.now();
        for _ in 0..SENDS_PER_TICK {
            if next == MESSAGES {
                break;
            }
            match link.a.send(next as u64, mode(next), now) {
                Ok(id) => assert_eq!(id, next as u64 + 1, "seed {seed}: ids are sequential"),
                Err(full) => {
                    assert_eq!(full.body, next as u64, "seed {seed}: the refused message");
                    break;
                }
            }
            next += 1;
        }
        link.step_observed(|frame| {
            if let Observed::FromA(LinkFrame::Data(data)) = frame {
                run.transmitted[data.id as usize - 1] += 1;
            }
        });
        for (seq, id) in late_confirms.drain(..) {
            link.b.confirm(seq, id); // false when a restart came in between
        }
        if link.stats().restarts != restarts {
            restarts = link.stats().restarts;
            if mode(0) == Delivery::AtLeastOnce {
                last_id = 0; // at-least-once is FIFO per session only
            }
        }
        while let Some(delivered) = link.b.poll_deliver() {
            let index = delivered.body as usize;
            assert_eq!(delivered.id, delivered.body + 1, "seed {seed}: id and body");
            assert_eq!(
                delivered.delivery,
                mode(index),
                "seed {seed}: delivery mode"
            );
            if delivered.delivery.is_sequenced() {
                assert!(
                    delivered.id > last_id,
                    "seed {seed}: FIFO broken at id {}",
                    delivered.id
                );
                last_id = delivered.id;
            }
            run.delivered[index] += 1;
            if delivered.delivery == Delivery::ExactlyOnce {
                // The application confirms about half of them a tick late.
                let late = (delivered.id ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63 == 1;
                if !late {
                    assert!(
                        link.b.confirm(delivered.seq, delivered.id),
                        "seed {seed}: confirm"
                    );
                } else {
                    late_confirms.push((delivered.seq, delivered.id));
                }
            }
        }
        while let Some(failed) = link.a.poll_failed() {
            let index = failed.body as usize;
            assert!(
                run.failed[index].is_none(),
                "seed {seed}: message {index} failed twice"
            );
            run.failed[index] = Some(failed.reason);
        }
        if next == MESSAGES && link.a.is_idle() && link.in_flight() == 0 && late_confirms.is_empty()
        {
            quiesced = true;
            break;
        }
    }
    assert!(
        quiesced,
        "seed {seed}: no quiescence within {MAX_TICKS} ticks"
    );
    run.sender = link.a.stats();
    run.receiver = link.b.stats();
    run.faults = link.stats().clone();
    assert_eq!(run.sender.sent, MESSAGES as u64, "seed {seed}: sent");
    run
}

/// Every seed of one mode, spread over the available cores.
fn all_seeds(mode: fn(usize) -> Delivery) -> Vec<Run> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8) as u64;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                let seeds = (first..SEEDS).step_by(threads as usize);
                scope.spawn(move || seeds.map(|seed| simulate(seed, mode)).collect::<Vec<_>>())
            })
            .collect();
        let runs = workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a seed failed"));
        runs.collect()
    })
}

/// Sums of a counter over all runs.
fn total(runs: &[Run], counter: impl Fn(&Run) -> u64) -> u64 {
    runs.iter().map(counter).sum()
}

/// The faults really happened, so the properties were tested under them.
fn assert_faults_exercised(runs: &[Run]) {
    assert_eq!(runs.len(), SEEDS as usize);
    let counts = BTreeMap::from([
        ("dropped", total(runs, |r| r.faults.dropped)),
        ("duplicated", total(runs, |r| r.faults.duplicated)),
        ("reordered", total(runs, |r| r.faults.reordered)),
        ("resumes", total(runs, |r| r.faults.resumes)),
        ("restarts", total(runs, |r| r.faults.restarts)),
        ("lost_in_cut", total(runs, |r| r.faults.lost_in_cut)),
    ]);
    assert!(
        counts.values().all(|&count| count > 0),
        "faults not exercised: {counts:?}"
    );
    let cuts = total(runs, |r| r.faults.cuts);
    assert!(cuts >= SEEDS, "only {cuts} cuts over {SEEDS} seeds");
}

/// Sequenced modes: the outbox settled every message once, under retransmission and
/// out-of-window drops.
fn assert_sequenced_accounting(runs: &[Run]) {
    for run in runs {
        let (seed, sender) = (run.seed, &run.sender);
        assert_eq!(
            sender.acked + sender.failed,
            MESSAGES as u64,
            "seed {seed}: settled"
        );
        assert_eq!(sender.outbox_len, 0, "seed {seed}: outbox");
        assert_eq!(sender.fire_and_forget_dropped, 0, "seed {seed}");
    }
    assert!(total(runs, |r| r.sender.retransmitted) > 0);
    assert!(total(runs, |r| r.receiver.duplicates_dropped) > 0);
    assert!(total(runs, |r| r.receiver.out_of_window_dropped) > 0);
}

#[test]
fn at_least_once_delivers_every_message_in_order() {
    let runs = all_seeds(|_| Delivery::AtLeastOnce);
    assert_faults_exercised(&runs);
    assert_sequenced_accounting(&runs);
    for run in &runs {
        let missing = run.delivered.iter().position(|&count| count == 0);
        assert_eq!(missing, None, "seed {}: message never delivered", run.seed);
        assert_eq!(run.sender.failed, 0, "seed {}", run.seed);
    }
    let redelivered: u32 = runs.iter().flat_map(|r| &r.delivered).map(|&c| c - 1).sum();
    println!("at-least-once: {redelivered} redeliveries after restarts");
}

#[test]
fn exactly_once_applies_every_message_exactly_once() {
    let runs = all_seeds(|_| Delivery::ExactlyOnce);
    assert_faults_exercised(&runs);
    assert_sequenced_accounting(&runs);
    for run in &runs {
        let wrong = run.delivered.iter().position(|&count| count != 1);
        assert_eq!(
            wrong, None,
            "seed {}: message applied not exactly once",
            run.seed
        );
        assert_eq!(run.receiver.delivered, MESSAGES as u64, "seed {}", run.seed);
    }
}

#[test]
fn reliable_delivers_or_reports_failed_never_both() {
    // Even messages may fail on attempts, odd ones on the deadline.
    let runs = all_seeds(|index| match index % 2 {
        0 => Delivery::Reliable {
            attempts: 2,
            deadline_ms: 60_000,
        },
        _ => Delivery::Reliable {
            attempts: 1_000,
            deadline_ms: 60,
        },
    });
    assert_faults_exercised(&runs);
    assert_sequenced_accounting(&runs);
    let mut reasons = BTreeMap::<_, u64>::new();
    for run in &runs {
        for (index, (&delivered, failed)) in run.delivered.iter().zip(&run.failed).enumerate() {
            let outcome = (delivered, failed.is_some());
            assert!(
                outcome == (1, false) || outcome == (0, true),
                "seed {}: message {index} delivered {delivered} times, failed {failed:?}",
                run.seed
            );
            if let Some(reason) = failed {
                assert_eq!(
                    *reason == GiveUp::Attempts,
                    index % 2 == 0,
                    "seed {}",
                    run.seed
                );
                *reasons.entry(format!("{reason:?}")).or_default() += 1;
            }
        }
        let failed = run.failed.iter().flatten().count() as u64;
        assert_eq!(
            run.sender.failed, failed,
            "seed {}: reported failures",
            run.seed
        );
        assert_eq!(
            run.receiver.delivered + failed,
            MESSAGES as u64,
            "seed {}",
            run.seed
        );
    }
    assert_eq!(reasons.len(), 2, "both give-up reasons occur: {reasons:?}");
    println!(
        "reliable: failures {reasons:?} of {}",
        SEEDS * MESSAGES as u64
    );
}

#[test]
fn fire_and_forget_never_retransmits_and_accounts_for_every_message() {
    let runs = all_seeds(|_| Delivery::FireAndForget);
    assert_faults_exercised(&runs);
    for run in &runs {
        let seed = run.seed;
        assert_eq!(run.sender.retransmitted, 0, "seed {seed}");
        assert!(
            run.transmitted.iter().all(|&count| count <= 1),
            "seed {seed}: sent twice"
        );
        let never_sent = run.transmitted.iter().filter(|&&count| count == 0).count() as u64;
        assert_eq!(
            never_sent, run.sender.fire_and_forget_dropped,
            "seed {seed}: drops"
        );
        let mut lost = 0;
        for (&delivered, &transmitted) in run.delivered.iter().zip(&run.transmitted) {
            assert!(
                delivered <= 2 * transmitted,
                "seed {seed}: delivered unsent or thrice"
            );
            lost += u64::from(delivered == 0 && transmitted == 1);
        }
        let wire_losses = run.faults.dropped + run.faults.lost_in_cut;
        assert!(
            lost <= wire_losses,
            "seed {seed}: {lost} lost, {wire_losses} wire losses"
        );
        let copies = run
            .delivered
            .iter()
            .map(|&c| u64::from(c.saturating_sub(1)))
            .sum::<u64>();
        assert!(
            copies <= run.faults.duplicated,
            "seed {seed}: more copies than duplicates"
        );
        assert_eq!(run.sender.outbox_len, 0, "seed {seed}");
    }
    assert!(total(&runs, |r| r.sender.fire_and_forget_dropped) > 0);
}
