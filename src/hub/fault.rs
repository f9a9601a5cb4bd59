//! A seeded fault injector: a simulated duplex link between two [`Session`]s on a virtual clock.
//!
//! Time advances in fixed ticks ([`FaultLink::step`]); nothing sleeps. Every frame a session
//! transmits is postcard-encoded, then dropped, delayed (latency, plus a random extra delay when
//! reordered) or duplicated according to [`FaultConfig`], and decoded on arrival, so the wire
//! types are proven serialisable. A cut disconnects both sides and loses every frame in flight;
//! after `reconnect_after` the sides either resume (each with the other's `ack_hwm`, as a
//! handshake would carry it) or, with probability `restart`, both start a new session.
//! Everything is drawn from one seeded [`Xoshiro256PlusPlus`] (portable and reproducible, and
//! unlike `StdRng` cheap in debug builds, where the property tests run), so a seed replays the
//! same run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::LinkFrame;
use super::session::Session;

/// Most frames one side may transmit in one tick (a bound on every loop).
const MAX_FRAMES_PER_TICK: usize = 100_000;

/// Per-frame decisions use 21-bit lanes of one random draw.
const LANE_MASK: u64 = (1 << 21) - 1;

/// The lane value below which an event of probability `p` happens (resolution 2^-21).
fn lane_threshold(p: f64) -> u64 {
    (p.clamp(0.0, 1.0) * (LANE_MASK + 1) as f64) as u64
}

/// Fault probabilities and timings; probabilities are per frame except `cut` (per tick).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// The virtual time step.
    pub tick: Duration,
    /// One-way latency (at least one tick).
    pub latency: Duration,
    /// Probability a frame is lost.
    pub drop: f64,
    /// Probability a frame arrives twice (the copy with its own random extra delay).
    pub duplicate: f64,
    /// Probability a frame is delayed by a random extra of 1 tick to `reorder_max_extra`.
    pub reorder: f64,
    /// The largest extra delay of a reordered or duplicated frame.
    pub reorder_max_extra: Duration,
    /// Probability per tick that the connection is cut while up.
    pub cut: f64,
    /// How long a cut lasts.
    pub reconnect_after: Duration,
    /// Probability that a reconnection is a restart (new session) rather than a resume.
    pub restart: f64,
    /// When set, both sides send their `ack_frame` this often, like a heartbeat.
    pub heartbeat: Option<Duration>,
}

impl FaultConfig {
    /// A perfect link: 1 ms ticks, 5 ms latency, no faults, no heartbeat.
    pub fn perfect() -> Self {
        Self {
            tick: Duration::from_millis(1),
            latency: Duration::from_millis(5),
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_max_extra: Duration::ZERO,
            cut: 0.0,
            reconnect_after: Duration::from_millis(20),
            restart: 0.0,
            heartbeat: None,
        }
    }

    /// Every fault enabled: 5% drops, 3% duplicates, 10% reordered by up to 15 ms, a cut every
    /// ~200 ticks lasting 20 ms, half of them restarts, a 50 ms heartbeat.
    pub fn lossy() -> Self {
        Self {
            drop: 0.05,
            duplicate: 0.03,
            reorder: 0.1,
            reorder_max_extra: Duration::from_millis(15),
            cut: 0.005,
            restart: 0.5,
            heartbeat: Some(Duration::from_millis(50)),
            ..Self::perfect()
        }
    }
}

/// What the fault injector did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultStats {
    /// Virtual ticks run.
    pub ticks: u64,
    /// Frames the sessions transmitted.
    pub frames: u64,
    /// Encoded bytes the sessions transmitted.
    pub bytes: u64,
    /// Frames lost by `drop`.
    pub dropped: u64,
    /// Extra copies injected.
    pub duplicated: u64,
    /// Frames given an extra delay.
    pub reordered: u64,
    /// Connection cuts.
    pub cuts: u64,
    /// Reconnections that resumed the session.
    pub resumes: u64,
    /// Reconnections that restarted the session.
    pub restarts: u64,
    /// Frames (and copies) in flight lost to a cut.
    pub lost_in_cut: u64,
}

/// One end of the simulated link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The `a` session.
    A,
    /// The `b` session.
    B,
}

/// A frame as a session transmitted it, before any fault.
#[derive(Debug)]
pub enum Observed<'a, A, B> {
    /// Transmitted by `a`.
    FromA(&'a LinkFrame<A>),
    /// Transmitted by `b`.
    FromB(&'a LinkFrame<B>),
}

struct Flight {
    from: Side,
    bytes: Vec<u8>,
}

/// Two sessions joined by a faulty simulated link; `a` sends `A` and receives `B`.
pub struct FaultLink<A, B> {
    /// The `a` end.
    pub a: Session<A, B>,
    /// The `b` end.
    pub b: Session<B, A>,
    config: FaultConfig,
    rng: Xoshiro256PlusPlus,
    start: Instant,
    tick: u64,
    tick_nanos: u64,
    /// Bucket `i` arrives at tick `tick + 1 + i`.
    buckets: VecDeque<Vec<Flight>>,
    in_flight: usize,
    reconnect_at: Option<u64>,
    stats: FaultStats,
}

impl<A, B> FaultLink<A, B>
where
    A: Clone + Serialize + DeserializeOwned,
    B: Clone + Serialize + DeserializeOwned,
{
    /// Joins two connected sessions; the virtual clock starts at the current instant.
    pub fn new(a: Session<A, B>, b: Session<B, A>, config: FaultConfig, seed: u64) -> Self {
        let tick_nanos = u64::try_from(config.tick.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            a,
            b,
            config,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            start: Instant::now(),
            tick: 0,
            tick_nanos,
            buckets: VecDeque::new(),
            in_flight: 0,
            reconnect_at: None,
            stats: FaultStats::default(),
        }
    }

    /// The virtual now.
    pub fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.tick_nanos.saturating_mul(self.tick))
    }

    /// Frames (and copies) currently in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the simulated connection is up.
    pub fn is_connected(&self) -> bool {
        self.reconnect_at.is_none()
    }

    /// What the injector did so far.
    pub fn stats(&self) -> &FaultStats {
        &self.stats
    }

    /// Advances one tick; see [`FaultLink::step_observed`].
    pub fn step(&mut self) {
        self.step_observed(|_| {});
    }

    /// Advances one tick: delivers the frames due, reconnects or cuts, then lets both sides
    /// transmit (heartbeat acks first), showing each transmitted frame to `observe`.
    ///
    /// # Panics
    /// When a frame does not survive the postcard round trip.
    pub fn step_observed(&mut self, mut observe: impl FnMut(Observed<'_, A, B>)) {
        self.tick += 1;
        self.stats.ticks += 1;
        let now = self.now();
        if let Some(arrivals) = self.buckets.pop_front() {
            self.in_flight -= arrivals.len();
            for flight in arrivals {
                self.arrive(flight, now);
            }
        }
        if self.reconnect_at.is_some_and(|at| self.tick >= at) {
            self.reconnect();
        }
        if self.is_connected()
            && self.config.cut > 0.0
            && self.rng.random::<f64>() < self.config.cut
        {
            self.cut();
        }
        if !self.is_connected() {
            return;
        }
        let heartbeat = self.config.heartbeat.map(|every| self.ticks(every).max(1));
        if heartbeat.is_some_and(|every| self.tick.is_multiple_of(every)) {
            let frame = self.a.ack_frame();
            observe(Observed::FromA(&frame));
            self.transmit(Side::A, &frame);
            let frame = self.b.ack_frame();
            observe(Observed::FromB(&frame));
            self.transmit(Side::B, &frame);
        }
        for _ in 0..MAX_FRAMES_PER_TICK {
            let Some(frame) = self.a.poll_transmit(now) else {
                break;
            };
            observe(Observed::FromA(&frame));
            self.transmit(Side::A, &frame);
        }
        for _ in 0..MAX_FRAMES_PER_TICK {
            let Some(frame) = self.b.poll_transmit(now) else {
                break;
            };
            observe(Observed::FromB(&frame));
            self.transmit(Side::B, &frame);
        }
    }

    /// Cuts the connection now: both sides disconnect, frames in flight are lost, and the
    /// reconnection follows after `reconnect_after`.
    pub fn cut(&mut self) {
        self.a.on_disconnect();
        self.b.on_disconnect();
        self.stats.cuts += 1;
        self.stats.lost_in_cut += self.in_flight as u64;
        self.buckets.clear();
        self.in_flight = 0;
        self.reconnect_at = Some(self.tick + self.ticks(self.config.reconnect_after).max(1));
    }

    fn reconnect(&mut self) {
        self.reconnect_at = None;
        if self.rng.random::<f64>() < self.config.restart {
            self.stats.restarts += 1;
            self.a.restart();
            self.b.restart();
        } else {
            self.stats.resumes += 1;
            let (a_ack, b_ack) = (self.a.ack_hwm(), self.b.ack_hwm());
            self.a.resume(b_ack);
            self.b.resume(a_ack);
        }
    }

    fn ticks(&self, duration: Duration) -> u64 {
        u64::try_from(duration.as_nanos() / u128::from(self.tick_nanos)).unwrap_or(u64::MAX)
    }

    fn transmit<M: Serialize>(&mut self, from: Side, frame: &LinkFrame<M>) {
        let bytes = postcard::to_allocvec(frame).expect("link frames encode with postcard");
        self.stats.frames += 1;
        self.stats.bytes += bytes.len() as u64;
        // One draw decides drop, reorder and duplicate (21 bits each); the extras draw again.
        let draw: u64 = self.rng.random();
        let lane = |index: u32| (draw >> (21 * index)) & LANE_MASK;
        if lane(0) < lane_threshold(self.config.drop) {
            self.stats.dropped += 1;
            return;
        }
        let extra = self.ticks(self.config.reorder_max_extra).max(1);
        let mut delay = self.ticks(self.config.latency).max(1);
        if lane(1) < lane_threshold(self.config.reorder) {
            self.stats.reordered += 1;
            delay += self.rng.random_range(1..=extra);
        }
        if lane(2) < lane_threshold(self.config.duplicate) {
            self.stats.duplicated += 1;
            let copy_delay = delay + self.rng.random_range(0..=extra);
            self.schedule(
                copy_delay,
                Flight {
                    from,
                    bytes: bytes.clone(),
                },
            );
        }
        self.schedule(delay, Flight { from, bytes });
    }

    fn schedule(&mut self, delay: u64, flight: Flight) {
        let index = usize::try_from(delay - 1).expect("delay fits in memory");
        if self.buckets.len() <= index {
            self.buckets.resize_with(index + 1, Vec::new);
        }
        self.buckets[index].push(flight);
        self.in_flight += 1;
    }

    fn arrive(&mut self, flight: Flight, now: Instant) {
        match flight.from {
            Side::A => {
                let frame: LinkFrame<A> =
                    postcard::from_bytes(&flight.bytes).expect("link frames decode with postcard");
                self.b.on_frame(frame, now);
            }
            Side::B => {
                let frame: LinkFrame<B> =
                    postcard::from_bytes(&flight.bytes).expect("link frames decode with postcard");
                self.a.on_frame(frame, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Delivery, SessionConfig};

    type Link = FaultLink<u64, u64>;

    fn link(config: FaultConfig, seed: u64) -> Link {
        let session = || Session::new(SessionConfig::default());
        FaultLink::new(session(), session(), config, seed)
    }

    /// Sends `count` at-least-once messages, then steps until `a` is idle; returns the bodies.
    fn run(link: &mut Link, count: u64) -> Vec<u64> {
        let mut delivered = Vec::new();
        let mut next = 0;
        for _ in 0..10_000 {
            while next < count && link.a.send(next, Delivery::AtLeastOnce, link.now()).is_ok() {
                next += 1;
            }
            link.step();
            delivered.extend(std::iter::from_fn(|| link.b.poll_deliver()).map(|d| d.body));
            if next == count && link.a.is_idle() && link.in_flight() == 0 {
                break;
            }
        }
        delivered
    }

    #[test]
    fn a_perfect_link_delivers_everything_in_order() {
        let mut link = link(FaultConfig::perfect(), 1);
        assert_eq!(run(&mut link, 50), (0..50).collect::<Vec<_>>());
        let stats = link.stats();
        assert!(stats.frames >= 51 && stats.bytes > 0, "{stats:?}");
        assert_eq!((stats.dropped, stats.duplicated, stats.cuts), (0, 0, 0));
        assert_eq!(link.a.stats().retransmitted, 0);
    }

    #[test]
    fn a_cut_loses_the_frames_in_flight_and_reconnects() {
        let config = FaultConfig {
            restart: 1.0,
            ..FaultConfig::perfect()
        };
        let mut link = link(config, 2);
        for body in 0..5 {
            link.a
                .send(body, Delivery::AtLeastOnce, link.now())
                .unwrap();
        }
        link.step();
        assert_eq!(link.in_flight(), 5);
        link.cut();
        assert!(!link.is_connected() && !link.a.is_connected() && !link.b.is_connected());
        assert_eq!((link.in_flight(), link.stats().lost_in_cut), (0, 5));
        for _ in 0..20 {
            link.step();
        }
        assert!(link.is_connected() && link.a.is_connected());
        assert_eq!(link.stats().restarts, 1);
        assert_eq!(run(&mut link, 0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_seed_replays_the_same_run() {
        let replay = |seed| {
            let mut link = link(FaultConfig::lossy(), seed);
            let delivered = run(&mut link, 2_000);
            (
                delivered,
                link.stats().clone(),
                link.a.stats(),
                link.b.stats(),
            )
        };
        let first = replay(7);
        assert_eq!(first, replay(7));
        assert_ne!(first.1, replay(8).1, "another seed, other faults");
        assert!(first.1.dropped > 0 && first.1.reordered > 0 && first.1.duplicated > 0);
    }
}
