//! The working state of one [`place`](super::place) call: the healthy nodes in `node_id` order
//! with capabilities as bit sets and the resources scenarios ask for as dense rows, so choosing
//! a node for a scenario is a scan of cheap integer and float comparisons.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::unhealthy::listing;
use super::{NodeState, Scenario, Weights, record_score, region};

/// A requirement counts when it is positive (or NaN, which then fits nowhere).
pub(super) fn needed(amount: f64) -> bool {
    amount > 0.0 || amount.is_nan()
}

/// A listed capacity; missing, negative or NaN is none.
pub(super) fn capacity_of(listed: Option<f64>) -> f64 {
    match listed {
        Some(x) if x > 0.0 => x,
        _ => 0.0,
    }
}

/// A reservation; a NaN one fills the node (a broken ledger must not let work in).
pub(super) fn allocated_of(listed: Option<f64>) -> f64 {
    match listed {
        Some(x) if x.is_nan() => f64::INFINITY,
        Some(x) => x.max(0.0),
        None => 0.0,
    }
}

/// The comparable load of a node: utilization, then tasks, then the seeded tie rank.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadKey {
    util: f64,
    tasks: u64,
    tie: u64,
}

/// A strategy's preference, lowest first: an integer rank, a float rank, then the load.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key(pub u64, pub f64, pub LoadKey);

impl Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.0
            .cmp(&other.0)
            .then(self.1.total_cmp(&other.1))
            .then(self.2.util.total_cmp(&other.2.util))
            .then(self.2.tasks.cmp(&other.2.tasks))
            .then(self.2.tie.cmp(&other.2.tie))
    }
}

/// One scenario's needs, translated to the table's indices.
pub(super) struct Need {
    caps: Vec<u64>,
    amounts: Vec<(usize, f64)>,
    location: Option<u32>,
    region: Option<u32>,
}

struct Cand<'a> {
    node: &'a NodeState,
    cap_count: u64,
    util: f64,
    tasks: u64,
    tie: u64,
    health: f64,
    record: f64,
    location: u32,
    region: u32,
    /// Sum over the listed resources of `clamp(free / capacity, 0, 1)`, and their number.
    free_sum: f64,
    free_n: u32,
}

const NO_PLACE: u32 = u32::MAX;

pub(super) struct Table<'a> {
    cands: Vec<Cand<'a>>,
    /// The nodes left out for their health, in node id order.
    sick: Vec<&'a NodeState>,
    /// Capability names some scenario requires, to their bit in a node's row.
    cap_index: HashMap<&'a str, usize>,
    words: usize,
    have: Vec<u64>,
    /// Resource names some scenario requires; column `r` of `used` and `cap` is `res[r]`.
    res: Vec<&'a str>,
    res_index: HashMap<&'a str, usize>,
    used: Vec<f64>,
    cap: Vec<f64>,
    places: HashMap<&'a str, u32>,
    most_tasks: u64,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: a fixed, portable bijection.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn free_part(cap: f64, used: f64) -> f64 {
    ((cap - used) / cap).clamp(0.0, 1.0)
}

/// `8`, `0.5`, `1.333`: short numbers for reasons.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.is_finite() {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        x.to_string()
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bit per capability and a column per resource the scenarios ask for (resource names in
/// column order).
#[allow(clippy::type_complexity)]
fn columns(scenarios: &[Scenario]) -> (HashMap<&str, usize>, Vec<&str>, HashMap<&str, usize>) {
    let mut cap_index = HashMap::new();
    let mut res = Vec::new();
    let mut res_index = HashMap::new();
    for s in scenarios {
        for c in &s.required_capabilities {
            let next = cap_index.len();
            cap_index.entry(c.as_str()).or_insert(next);
        }
        for (r, amount) in &s.resource_requirements {
            if needed(*amount) {
                res_index.entry(r.as_str()).or_insert_with(|| {
                    res.push(r.as_str());
                    res.len() - 1
                });
            }
        }
    }
    (cap_index, res, res_index)
}

/// The healthy nodes' indexes in node id order, and the unhealthy ones; the first entry of an
/// id counts.
fn live_order(nodes: &[NodeState]) -> (Vec<usize>, Vec<&NodeState>) {
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by(|&a, &b| nodes[a].node_id.cmp(&nodes[b].node_id).then(a.cmp(&b)));
    order.dedup_by(|b, a| nodes[*a].node_id == nodes[*b].node_id);
    let (live, sick): (Vec<usize>, Vec<usize>) = order.into_iter().partition(|&i| nodes[i].healthy);
    (live, sick.into_iter().map(|i| &nodes[i]).collect())
}

/// A node's health score as a fraction (0 when unknown).
fn health_of(node: &NodeState) -> f64 {
    if node.health_score.is_nan() {
        0.0
    } else {
        (node.health_score / 100.0).clamp(0.0, 1.0)
    }
}

impl<'a> Table<'a> {
    pub(super) fn new(scenarios: &'a [Scenario], nodes: &'a [NodeState], seed: u64) -> Self {
        let (cap_index, res, res_index) = columns(scenarios);
        let (order, sick) = live_order(nodes);

        let words = cap_index.len().div_ceil(64);
        let mut have = vec![0u64; order.len() * words];
        let mut used = vec![0.0; order.len() * res.len()];
        let mut cap = vec![0.0; order.len() * res.len()];
        let mut places = HashMap::new();
        let mut cands = Vec::with_capacity(order.len());
        for (pos, &i) in order.iter().enumerate() {
            let node = &nodes[i];
            for c in &node.capabilities {
                if let Some(&bit) = cap_index.get(c.as_str()) {
                    have[pos * words + bit / 64] |= 1 << (bit % 64);
                }
            }
            let (mut util, mut free_sum, mut free_n) = (0.0f64, 0.0, 0u32);
            for (r, listed) in &node.capacity {
                let c = capacity_of(Some(*listed));
                let u = allocated_of(node.allocated.get(r).copied());
                if let Some(&col) = res_index.get(r.as_str()) {
                    cap[pos * res.len() + col] = c;
                }
                if c > 0.0 {
                    util = util.max(u / c);
                    free_sum += free_part(c, u);
                    free_n += 1;
                }
            }
            for (r, listed) in &node.allocated {
                if let Some(&col) = res_index.get(r.as_str()) {
                    used[pos * res.len() + col] = allocated_of(Some(*listed));
                }
            }
            let mut place_id = |p: &'a str| {
                if p.is_empty() {
                    return NO_PLACE;
                }
                let next = places.len() as u32;
                *places.entry(p).or_insert(next)
            };
            let location = place_id(&node.location);
            let region = place_id(region(&node.location));
            cands.push(Cand {
                node,
                cap_count: node.capabilities.len() as u64,
                util,
                tasks: u64::from(node.active_tasks),
                tie: mix(seed ^ mix(pos as u64)),
                health: health_of(node),
                record: record_score(&node.record),
                location,
                region,
                free_sum,
                free_n,
            });
        }
        let most_tasks = cands.iter().map(|c| c.tasks).max().unwrap_or(0);
        Table {
            cands,
            sick,
            cap_index,
            words,
            have,
            res,
            res_index,
            used,
            cap,
            places,
            most_tasks,
        }
    }

    pub(super) fn start_offset(&self, seed: u64) -> usize {
        if self.cands.is_empty() {
            0
        } else {
            (mix(seed) % self.cands.len() as u64) as usize
        }
    }

    pub(super) fn need(&self, s: &Scenario, request_location: Option<&str>) -> Need {
        let mut caps = vec![0u64; self.words];
        for c in &s.required_capabilities {
            let bit = self.cap_index[c.as_str()];
            caps[bit / 64] |= 1 << (bit % 64);
        }
        let amounts = s
            .resource_requirements
            .iter()
            .filter(|(_, a)| needed(**a))
            .map(|(r, a)| (self.res_index[r.as_str()], *a))
            .collect();
        let preferred = s
            .preferred_location
            .as_deref()
            .or(request_location)
            .filter(|p| !p.is_empty());
        Need {
            caps,
            amounts,
            location: preferred.and_then(|p| self.places.get(p).copied()),
            region: preferred.and_then(|p| self.places.get(region(p)).copied()),
        }
    }

    pub(super) fn node_id(&self, c: usize) -> &'a str {
        &self.cands[c].node.node_id
    }

    fn has_caps(&self, c: usize, need: &Need) -> bool {
        let row = &self.have[c * self.words..(c + 1) * self.words];
        need.caps.iter().zip(row).all(|(n, h)| n & !h == 0)
    }

    fn fits(&self, c: usize, need: &Need) -> bool {
        let base = c * self.res.len();
        self.has_caps(c, need)
            && need
                .amounts
                .iter()
                .all(|&(r, a)| self.used[base + r] + a <= self.cap[base + r])
    }

    /// The lowest-keyed node the scenario fits on.
    pub(super) fn pick(&self, need: &Need, key: impl Fn(&Self, usize) -> Key) -> Option<usize> {
        let mut best: Option<(usize, Key)> = None;
        for c in 0..self.cands.len() {
            if !self.fits(c, need) {
                continue;
            }
            let k = key(self, c);
            if best.is_none_or(|(_, b)| k.cmp(&b) == Ordering::Less) {
                best = Some((c, k));
            }
        }
        best.map(|(c, _)| c)
    }

    /// The first node from `cursor` on (cyclically) the scenario fits on; the cursor moves past it.
    pub(super) fn next_from(&self, cursor: &mut usize, need: &Need) -> Option<usize> {
        let n = self.cands.len();
        let found = (0..n)
            .map(|k| (*cursor + k) % n)
            .find(|&c| self.fits(c, need))?;
        *cursor = (found + 1) % n;
        Some(found)
    }

    pub(super) fn load_key(&self, c: usize) -> LoadKey {
        let cand = &self.cands[c];
        LoadKey {
            util: cand.util,
            tasks: cand.tasks,
            tie: cand.tie,
        }
    }

    pub(super) fn cap_count(&self, c: usize) -> u64 {
        self.cands[c].cap_count
    }

    /// 2 for the preferred location, 1 for its region, else 0.
    pub(super) fn locality_rank(&self, c: usize, need: &Need) -> u64 {
        let cand = &self.cands[c];
        if need.location == Some(cand.location) {
            2
        } else if need.region == Some(cand.region) {
            1
        } else {
            0
        }
    }

    pub(super) fn weighted_score(&self, c: usize, need: &Need, w: &Weights) -> f64 {
        let cand = &self.cands[c];
        let free = if cand.free_n == 0 {
            1.0
        } else {
            cand.free_sum / f64::from(cand.free_n)
        };
        let task_load = cand.tasks as f64 / (self.most_tasks as f64 + 1.0);
        let load = cand.util.max(task_load).clamp(0.0, 1.0);
        let locality = self.locality_rank(c, need) as f64 / 2.0;
        w.capacity * free
            + w.load * (1.0 - load)
            + w.health * cand.health
            + w.locality * locality
            + w.performance * cand.record
    }

    pub(super) fn adaptive_value(&self, c: usize) -> f64 {
        let cand = &self.cands[c];
        cand.record.max(0.01) / (1.0 + cand.tasks as f64)
    }

    /// Books the scenario onto node `c`.
    pub(super) fn commit(&mut self, c: usize, need: &Need) {
        let base = c * self.res.len();
        let cand = &mut self.cands[c];
        for &(r, a) in &need.amounts {
            let cap = self.cap[base + r];
            let before = self.used[base + r];
            let after = before + a;
            self.used[base + r] = after;
            if cap > 0.0 {
                cand.util = cand.util.max(after / cap);
                cand.free_sum += free_part(cap, after) - free_part(cap, before);
            }
        }
        cand.tasks += 1;
        self.most_tasks = self.most_tasks.max(cand.tasks);
    }

    /// Why a scenario fits on no node now.
    pub(super) fn diagnose(&self, s: &Scenario, need: &Need) -> String {
        let mut wanted: Vec<&str> = s.required_capabilities.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if self.cands.is_empty() {
            let left_out: Vec<_> = self.sick.iter().map(|&n| (n, None)).collect();
            if left_out.is_empty() {
                return "no healthy node: no node is connected".to_string();
            }
            return format!("no healthy node: {}", listing(&left_out));
        }
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| {
                let bit = self.cap_index[c];
                (0..self.cands.len())
                    .all(|n| self.have[n * self.words + bit / 64] & (1 << (bit % 64)) == 0)
            })
            .collect();
        match missing.len() {
            0 => {}
            1 => {
                let text = format!("capability {} on no healthy node", quoted(&missing));
                return self.with_holders(text, &missing, Some("it"));
            }
            _ => {
                let text = format!("capabilities {} on no healthy node", quoted(&missing));
                return self.with_holders(text, &missing, None);
            }
        }
        let capable: Vec<usize> = (0..self.cands.len())
            .filter(|&c| self.has_caps(c, need))
            .collect();
        if capable.is_empty() {
            let text = format!(
                "no healthy node has all of the capabilities {}",
                quoted(&wanted)
            );
            let holders: Vec<_> = self
                .sick
                .iter()
                .filter(|n| wanted.iter().all(|c| n.capabilities.contains(*c)))
                .map(|&n| (n, Some("them".to_string())))
                .collect();
            return with_listing(text, &holders);
        }
        let width = self.res.len();
        let short: Vec<String> = need
            .amounts
            .iter()
            .filter_map(|&(r, a)| {
                let most_free = capable
                    .iter()
                    .map(|&c| self.cap[c * width + r] - self.used[c * width + r])
                    .fold(f64::NEG_INFINITY, f64::max)
                    .max(0.0);
                (a > most_free || a.is_nan()).then(|| {
                    format!(
                        "resource {:?} short: needed {}, most free {}",
                        self.res[r],
                        num(a),
                        num(most_free)
                    )
                })
            })
            .collect();
        if !short.is_empty() {
            return short.join("; ");
        }
        let all: Vec<String> = need
            .amounts
            .iter()
            .map(|&(r, a)| format!("{} {}", self.res[r], num(a)))
            .collect();
        format!(
            "no single node has room for all of {} at once",
            all.join(", ")
        )
    }

    /// `text`, then the unhealthy nodes that have some of `caps` (each with what it has: `it`
    /// when given, else the ones of `caps` it has) and why they are left out.
    fn with_holders(&self, text: String, caps: &[&str], it: Option<&str>) -> String {
        let holders: Vec<_> = self
            .sick
            .iter()
            .filter_map(|&n| {
                let has: Vec<&str> = caps
                    .iter()
                    .copied()
                    .filter(|c| n.capabilities.contains(*c))
                    .collect();
                (!has.is_empty())
                    .then(|| (n, Some(it.map_or_else(|| quoted(&has), str::to_string))))
            })
            .collect();
        with_listing(text, &holders)
    }
}

/// `text`, and `: <the nodes>` when there are any.
fn with_listing(text: String, nodes: &[(&NodeState, Option<String>)]) -> String {
    if nodes.is_empty() {
        text
    } else {
        format!("{text}: {}", listing(nodes))
    }
}
