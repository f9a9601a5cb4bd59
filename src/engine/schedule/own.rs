//! The arrivals one node owns, computed without walking anybody else's, so that a node's cost
//! per arrival does not grow with the size of its cluster.
//!
//! - `uniform`: arrival `n` sits where the plan's integral reaches `n`. A share period owns the
//!   numbers whose time falls in it (converted once to a range of numbers); in it the node owns
//!   the numbers whose residue modulo the owner list is its own, so its k-th own number is
//!   computed directly, and a shard steps from one of its arrivals to the next by the number
//!   of shards.
//! - `poisson`: time is cut into blocks of [`POISSON_BLOCK`]. Block `j` holds `N_j ~
//!   Poisson(Λ_j)` arrivals (`Λ_j` the plan's integral over the block), drawn from a generator
//!   seeded by `(seed, j)`: every node draws the same count, numbers them after the earlier
//!   blocks' and takes those the period in force at the block's start gives it. It then draws
//!   that many times for itself, each with density proportional to the rate inside the
//!   block, sorted. Given `N_j`, a Poisson process's points are independent draws of that
//!   density, so the union over the nodes is the planned Poisson process, and the numbers
//!   add up to `Σ N_j` exactly. A re-split thus takes effect at the first block boundary at
//!   or after its period's start.
//!
//! A node's own arrivals are numbered in order (its own index); its shard `s` of `S` takes
//! own indices `s, s + S, ...`. A Poisson shard draws only its own times (seeded by
//! `(seed, j, slot, shard)`). The share table is read again whenever it changes.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Poisson};

use super::{Arrivals, RatePlan};
use crate::engine::share::{NodeShare, ShareTable};

/// The span of time over which every node draws the same Poisson arrival count.
pub const POISSON_BLOCK: Duration = Duration::from_millis(100);

/// Whose arrivals an iterator yields, and how they are dealt to a node's shards.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    /// A cluster node's share (its slot and live table); `None` standalone: every arrival.
    pub share: Option<&'a NodeShare>,
    /// This shard and the node's number of shards: the shard takes own arrivals
    /// `shard, shard + shards, ...`.
    pub shard: usize,
    pub shards: usize,
}

impl Part<'_> {
    /// Every arrival, one shard.
    pub const WHOLE: Part<'static> = Part {
        share: None,
        shard: 0,
        shards: 1,
    };
}

/// The plan's cumulative count against time. `ends[i]` is the count planned up to the end of
/// segment `i`, summed in order, as uniform arrival times have always been computed.
struct Curve<'a> {
    plan: &'a RatePlan,
    ends: Vec<f64>,
}

impl<'a> Curve<'a> {
    fn new(plan: &'a RatePlan) -> Curve<'a> {
        let mut acc = 0.0;
        let ends = plan
            .segments
            .iter()
            .map(|s| {
                acc += s.area();
                acc
            })
            .collect();
        Curve { plan, ends }
    }

    fn before(&self, seg: usize) -> f64 {
        if seg == 0 { 0.0 } else { self.ends[seg - 1] }
    }

    /// Where the count reaches `x`, looking from segment `*seg` on (a cursor that only moves
    /// forward); `None` past the plan's end.
    fn time(&self, x: f64, seg: &mut usize) -> Option<Duration> {
        if *seg > 0 && x < self.before(*seg) {
            *seg = self.ends.partition_point(|&e| e <= x);
        }
        while *seg < self.ends.len() && x >= self.ends[*seg] {
            *seg += 1;
        }
        let s = self.plan.segments.get(*seg)?;
        let at = s.start + Duration::from_secs_f64(s.time_of(x - self.before(*seg)));
        // Rounding can land exactly on the segment end; keep arrivals inside it.
        Some(at.min(s.start + s.duration - Duration::from_nanos(1)))
    }

    /// [`Curve::time`] from anywhere.
    fn time_at(&self, x: f64) -> Option<Duration> {
        let mut seg = self.ends.partition_point(|&e| e <= x);
        self.time(x, &mut seg)
    }

    /// The count planned in `[0, t)`, with a forward-only segment cursor.
    fn count_at(&self, t: Duration, seg: &mut usize) -> f64 {
        let segs = &self.plan.segments;
        while *seg < segs.len() && t >= segs[*seg].start + segs[*seg].duration {
            *seg += 1;
        }
        match segs.get(*seg) {
            Some(s) if t > s.start => self.before(*seg) + s.area_until((t - s.start).as_secs_f64()),
            _ => self.before(*seg),
        }
    }

    /// The first uniform arrival number (below `count`) planned at or after `from`.
    fn first_at(&self, from: Duration, count: u64) -> u64 {
        let guess = self.count_at(from, &mut 0).ceil().clamp(0.0, count as f64) as u64;
        let at = |n: u64| self.time_at(n as f64).unwrap_or(Duration::MAX);
        let mut n = guess;
        while n > 0 && at(n - 1) >= from {
            n -= 1;
        }
        while n < count && at(n) < from {
            n += 1;
        }
        n
    }
}

/// The arrival numbers one slot owns under one owner list: `n` with `n % m` in `res`.
#[derive(Debug, Clone)]
struct Residues {
    m: u64,
    res: Vec<u64>,
}

impl Residues {
    fn of(owners: &[u16], slot: u16) -> Residues {
        Residues {
            m: owners.len().max(1) as u64,
            res: (0..owners.len() as u64)
                .filter(|&r| owners[r as usize] == slot)
                .collect(),
        }
    }

    fn all() -> Residues {
        Residues { m: 1, res: vec![0] }
    }

    /// How many own numbers lie below `x`.
    fn rank(&self, x: u64) -> u64 {
        let r = x % self.m;
        (x / self.m) * self.res.len() as u64 + self.res.partition_point(|&o| o < r) as u64
    }

    /// The own number of rank `rank` (there must be own numbers).
    fn nth(&self, rank: u64) -> u64 {
        let len = self.res.len() as u64;
        (rank / len) * self.m + self.res[(rank % len) as usize]
    }
}

/// The periods of `table` as `slot` sees them (from when, which numbers), or the whole task.
fn periods(table: Option<(&ShareTable, u16)>) -> Vec<(Duration, Residues)> {
    match table {
        None => vec![(Duration::ZERO, Residues::all())],
        Some((t, slot)) => t
            .periods
            .iter()
            .map(|p| {
                let from = Duration::from_millis(p.from_ms);
                (from, Residues::of(&p.owners, slot))
            })
            .collect(),
    }
}

/// One share period's uniform arrivals: numbers `lo..hi`, the node's own among them have own
/// indices `k_lo..k_lo + count` and ranks from `r_lo`.
struct View {
    res: Residues,
    k_lo: u64,
    r_lo: u64,
    count: u64,
}

struct Uniform {
    views: Vec<View>,
    /// The view the next arrival is looked for in, and the next own index to yield.
    view: usize,
    k: u64,
    seg: usize,
}

struct PoissonState {
    seed: u64,
    slot: u16,
    block: u64,
    /// Arrivals of every node in the earlier blocks, and this node's among them.
    n0: u64,
    own: u64,
    /// The count planned before the block, and the integral's segment cursor.
    x0: f64,
    xseg: usize,
    tseg: usize,
    periods: Vec<(Duration, Residues)>,
    draws: Vec<u64>,
    ready: Vec<(u64, Duration)>,
    next: usize,
}

enum Kind {
    Uniform(Uniform),
    Poisson(Box<PoissonState>),
}

/// The arrivals of one shard of one node, in time order: `(number, offset from the start)`.
pub struct OwnArrivals<'a> {
    curve: Curve<'a>,
    part: Part<'a>,
    version: u64,
    kind: Kind,
}

impl RatePlan {
    /// The arrivals `part` owns: its numbers in the task's global sequence and their offsets.
    pub fn own_arrivals<'a>(
        &'a self,
        mode: Arrivals,
        seed: u64,
        part: Part<'a>,
    ) -> OwnArrivals<'a> {
        let part = Part {
            shards: part.shards.max(1),
            ..part
        };
        debug_assert!(
            part.shard < part.shards,
            "shard {} of {}",
            part.shard,
            part.shards
        );
        let kind = match mode {
            Arrivals::Uniform => Kind::Uniform(Uniform {
                views: Vec::new(),
                view: 0,
                k: part.shard as u64,
                seg: 0,
            }),
            Arrivals::Poisson => Kind::Poisson(Box::new(PoissonState {
                seed,
                slot: part.share.map_or(0, |s| s.slot),
                block: 0,
                n0: 0,
                own: 0,
                x0: 0.0,
                xseg: 0,
                tseg: 0,
                periods: Vec::new(),
                draws: Vec::new(),
                ready: Vec::new(),
                next: 0,
            })),
        };
        let mut own = OwnArrivals {
            curve: Curve::new(self),
            part,
            version: part.share.map_or(0, NodeShare::version),
            kind,
        };
        own.read_table();
        own
    }

    /// Arrivals in each [`POISSON_BLOCK`] of a Poisson run with `seed`: the same on every node.
    pub fn poisson_blocks(&self, seed: u64) -> impl Iterator<Item = u64> + '_ {
        let curve = Curve::new(self);
        let end = self.duration();
        let (mut x0, mut seg) = (0.0, 0);
        (0u64..)
            .map(move |j| (j, block_start(j)))
            .take_while(move |&(_, a)| a < end)
            .map(move |(j, a)| {
                let x1 = curve.count_at((a + POISSON_BLOCK).min(end), &mut seg);
                let n = block_count(seed, j, x1 - x0);
                x0 = x1;
                n
            })
    }
}

impl OwnArrivals<'_> {
    /// Reads the share table (again): the periods from the current position on.
    fn read_table(&mut self) {
        let table = self.part.share.map(|s| (s.table(), s.slot));
        let periods = periods(table.as_ref().map(|(t, slot)| (&**t, *slot)));
        match &mut self.kind {
            Kind::Uniform(u) => {
                u.views = uniform_views(&self.curve, periods);
                u.view = 0;
            }
            Kind::Poisson(p) => p.periods = periods,
        }
    }
}

/// The share periods' ranges of uniform arrival numbers, and the own indices in each.
fn uniform_views(curve: &Curve, periods: Vec<(Duration, Residues)>) -> Vec<View> {
    let count = curve.plan.uniform_count();
    let starts: Vec<u64> = periods
        .iter()
        .enumerate()
        .map(|(i, (from, _))| {
            if i == 0 {
                0
            } else {
                curve.first_at(*from, count)
            }
        })
        .collect();
    let mut k_lo = 0;
    periods
        .into_iter()
        .enumerate()
        .map(|(i, (_, res))| {
            let hi = starts.get(i + 1).copied().unwrap_or(count).max(starts[i]);
            let r_lo = res.rank(starts[i]);
            let own = res.rank(hi) - r_lo;
            let view = View {
                res,
                k_lo,
                r_lo,
                count: own,
            };
            k_lo += own;
            view
        })
        .collect()
}

impl Iterator for OwnArrivals<'_> {
    type Item = (u64, Duration);

    fn next(&mut self) -> Option<(u64, Duration)> {
        if let Some(share) = self.part.share {
            let version = share.version();
            if version != self.version {
                self.version = version;
                self.read_table();
            }
        }
        let shards = self.part.shards as u64;
        match &mut self.kind {
            Kind::Uniform(u) => loop {
                let v = u.views.get(u.view)?;
                if let Some(i) = u.k.checked_sub(v.k_lo).filter(|&i| i < v.count) {
                    let n = v.res.nth(v.r_lo + i);
                    u.k += shards;
                    return Some((n, self.curve.time(n as f64, &mut u.seg)?));
                }
                u.view += 1;
            },
            Kind::Poisson(p) => loop {
                if let Some(&item) = p.ready.get(p.next) {
                    p.next += 1;
                    return Some(item);
                }
                if !p.fill(&self.curve, self.part) {
                    return None;
                }
            },
        }
    }
}

impl PoissonState {
    /// Draws the next block's arrivals for this shard; `false` past the plan's end.
    fn fill(&mut self, curve: &Curve, part: Part) -> bool {
        let end = curve.plan.duration();
        let a = block_start(self.block);
        if a >= end {
            return false;
        }
        let b = (a + POISSON_BLOCK).min(end);
        let x1 = curve.count_at(b, &mut self.xseg);
        let lambda = x1 - self.x0;
        let n = block_count(self.seed, self.block, lambda);
        let at = self.periods.partition_point(|(from, _)| *from <= a);
        let res = &self.periods[at.saturating_sub(1)].1;
        let r0 = res.rank(self.n0);
        let owned = res.rank(self.n0 + n) - r0;
        let (shard, shards) = (part.shard as u64, part.shards as u64);
        // This shard's first own index in the block, and how many it takes.
        let first = (shard + shards - self.own % shards) % shards;
        let mine = if first < owned {
            (owned - 1 - first) / shards + 1
        } else {
            0
        };
        let mut rng = StdRng::seed_from_u64(mix(&[self.seed, self.block, self.slot.into(), shard]));
        self.draws.clear();
        self.draws.extend((0..mine).map(|_| rng.random::<u64>()));
        self.draws.sort_unstable();
        self.ready.clear();
        self.next = 0;
        let mut last = a;
        let latest = b - Duration::from_nanos(1);
        for (q, &d) in self.draws.iter().enumerate() {
            let u = (d >> 11) as f64 / (1u64 << 53) as f64;
            let t = curve
                .time(self.x0 + u * lambda, &mut self.tseg)
                .unwrap_or(latest)
                .clamp(last, latest);
            last = t;
            let number = res.nth(r0 + first + q as u64 * shards);
            self.ready.push((number, t));
        }
        self.n0 += n;
        self.own += owned;
        self.x0 = x1;
        self.block += 1;
        true
    }
}

/// Where Poisson block `block` starts.
fn block_start(block: u64) -> Duration {
    Duration::from_nanos((POISSON_BLOCK.as_nanos() as u64).saturating_mul(block))
}

/// Arrivals in Poisson block `block` planned at `lambda`: the same draw on every node.
fn block_count(seed: u64, block: u64, lambda: f64) -> u64 {
    // Also NaN: nothing planned.
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    let mut rng = StdRng::seed_from_u64(mix(&[seed, block, COUNT_TAG]));
    match Poisson::new(lambda) {
        Ok(p) => p.sample(&mut rng) as u64,
        Err(_) => lambda.round() as u64,
    }
}

/// Marks the count's generator apart from any slot's.
const COUNT_TAG: u64 = 0xc0_ffee_c0de;

/// One 64-bit seed from several (splitmix64's finaliser over each in turn).
fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &p| {
        let mut z = (h ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests;
