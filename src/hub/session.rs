//! The sans-IO session of one link endpoint: sequencing, the bounded outbox, cumulative acks,
//! retransmission, the reorder buffer, deduplication and the reliable give-up protocol.
//!
//! A [`Session<Out, In>`] owns both directions of one endpoint: it sends `Out` bodies and
//! receives the peer's `In` bodies (the peer owns a `Session<In, Out>`). It does no IO and reads
//! no clock: every time-dependent method takes `now`, and frames go in through
//! [`Session::on_frame`] and come out of [`Session::poll_transmit`]. A transport encodes the
//! [`LinkFrame`]s (postcard) and must not hand a frame of an old connection to the session
//! after [`Session::resume`] or [`Session::restart`].
//!
//! The rules it implements (sequencing, acks, deduplication, the reliable give-up rule, the
//! connection lifecycle) are written down in the [module doc of the link](super).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The wire and value types live in the parent module; re-exported for `session::` paths.
pub use super::{
    DataFrame, Delivered, Delivery, Failed, Full, GiveUp, LinkFrame, MAX_SACK_RANGES,
    SessionConfig, SessionStats,
};

struct Entry<M> {
    frame: DataFrame<M>,
    queued_at: Instant,
    transmissions: u32,
    /// Bumped on every transmission, so stale retransmission timers are recognised.
    generation: u32,
    giving_up: Option<GiveUp>,
}

#[derive(Clone, Copy)]
struct Timer {
    due: Instant,
    seq: u64,
    generation: u32,
}

enum Slot<M> {
    Data(DataFrame<M>),
    Cancel { id: u64, epoch: u64 },
}

/// One endpoint of a link: sends `Out`, receives `In`. See the module doc.
pub struct Session<Out, In> {
    config: SessionConfig,
    epoch: u64,
    connected: bool,
    last_heard: Option<Instant>,
    ack_due: bool,
    stats: SessionStats,
    // Sending.
    next_id: u64,
    next_seq: u64,
    /// Unsettled sequenced messages, sorted by seq.
    outbox: VecDeque<Entry<Out>>,
    /// Seqs to transmit now (new messages, or everything after a resume/restart).
    send_queue: VecDeque<u64>,
    /// Retransmission checks in due order (stale ones skipped by generation).
    timers: VecDeque<Timer>,
    unsequenced: VecDeque<DataFrame<Out>>,
    failed: VecDeque<Failed<Out>>,
    /// The peer's latest selective ack (and its cumulative ack): those are not retransmitted.
    peer_sack: Vec<(u64, u64)>,
    peer_sack_ack: u64,
    // Receiving.
    recv_hwm: u64,
    /// Slot `i` holds seq `recv_hwm + 1 + i`.
    reorder: VecDeque<Option<Slot<In>>>,
    /// The filled slots of `reorder` as sorted, disjoint, non-adjacent inclusive seq ranges.
    buffered: Vec<(u64, u64)>,
    /// Accepted exactly-once seqs awaiting `confirm`, with their ids.
    unconfirmed: BTreeMap<u64, u64>,
    /// Skipped seqs the peer has not settled yet.
    skips: BTreeSet<u64>,
    ready: VecDeque<Delivered<In>>,
    /// Remembered `(epoch, id)` of exactly-once and reliable deliveries, sorted.
    dedup: VecDeque<(u64, u64)>,
}

impl<Out: Clone, In> Session<Out, In> {
    /// A connected session at epoch 0; ids start at 1.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            epoch: 0,
            connected: true,
            last_heard: None,
            ack_due: false,
            stats: SessionStats::default(),
            next_id: 1,
            next_seq: 1,
            outbox: VecDeque::new(),
            send_queue: VecDeque::new(),
            timers: VecDeque::new(),
            unsequenced: VecDeque::new(),
            failed: VecDeque::new(),
            peer_sack: Vec::new(),
            peer_sack_ack: 0,
            recv_hwm: 0,
            reorder: VecDeque::new(),
            buffered: Vec::new(),
            unconfirmed: BTreeMap::new(),
            skips: BTreeSet::new(),
            ready: VecDeque::new(),
            dedup: VecDeque::new(),
        }
    }

    /// The epoch stamped on newly queued messages.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Stamps later messages with `epoch`; queued ones keep theirs.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// Queues a message and returns its id. A sequenced message is refused with [`Full`] when
    /// the outbox is full; fire-and-forget is never refused, but dropped and counted when the
    /// link is down or its queue is full.
    pub fn send(&mut self, body: Out, delivery: Delivery, now: Instant) -> Result<u64, Full<Out>> {
        if delivery.is_sequenced() && self.outbox.len() >= self.config.outbox_capacity {
            return Err(Full { body, delivery });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.sent += 1;
        let mut frame = DataFrame {
            seq: 0,
            id,
            epoch: self.epoch,
            delivery,
            body,
        };
        if delivery.is_sequenced() {
            frame.seq = self.next_seq;
            self.next_seq += 1;
            self.send_queue.push_back(frame.seq);
            self.outbox.push_back(Entry {
                frame,
                queued_at: now,
                transmissions: 0,
                generation: 0,
                giving_up: None,
            });
        } else if !self.connected || self.unsequenced.len() >= self.config.outbox_capacity {
            self.stats.fire_and_forget_dropped += 1;
        } else {
            self.unsequenced.push_back(frame);
        }
        Ok(id)
    }

    /// The next frame to put on the wire: a due ack first, then due retransmissions and
    /// cancels, then new sequenced frames, then fire-and-forget. `None` while disconnected.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<LinkFrame<Out>> {
        if !self.connected {
            return None;
        }
        if self.ack_due {
            return Some(self.ack_frame());
        }
        while let Some(timer) = self.timers.front().copied() {
            if timer.due > now {
                break;
            }
            self.timers.pop_front();
            if let Some(index) = self.position(timer.seq)
                && self.outbox[index].generation == timer.generation
                && !self.peer_holds(timer.seq)
            {
                return Some(self.transmit(index, now));
            }
        }
        while let Some(seq) = self.send_queue.pop_front() {
            if let Some(index) = self.position(seq) {
                return Some(self.transmit(index, now));
            }
        }
        self.unsequenced.pop_front().map(LinkFrame::Data)
    }

    /// The current ack frame, for piggy-backing on a heartbeat; clears the pending ack.
    pub fn ack_frame(&mut self) -> LinkFrame<Out> {
        self.ack_due = false;
        let ack = self.ack_hwm();
        LinkFrame::Ack {
            ack,
            sack: self.held_ranges(ack),
            skipped: self.skips.range(..=ack).copied().collect(),
            settled: self.settled(),
        }
    }

    /// When the earliest retransmission check is due (possibly a stale, early one).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.front().map(|timer| timer.due)
    }

    /// The next reliable message the peer confirmed it skipped.
    pub fn poll_failed(&mut self) -> Option<Failed<Out>> {
        self.failed.pop_front()
    }

    /// Handles one frame from the peer; ignored while disconnected.
    pub fn on_frame(&mut self, frame: LinkFrame<In>, now: Instant) {
        if !self.connected {
            return;
        }
        self.last_heard = Some(now);
        match frame {
            LinkFrame::Data(data) if data.seq == 0 => self.ready.push_back(data.into()),
            LinkFrame::Data(data) => {
                self.ack_due = true;
                self.receive(data.seq, Slot::Data(data));
            }
            LinkFrame::Cancel { seq, id, epoch } => {
                if seq > 0 {
                    self.ack_due = true;
                    self.receive(seq, Slot::Cancel { id, epoch });
                }
            }
            LinkFrame::Ack {
                ack,
                sack,
                skipped,
                settled,
            } => {
                self.settle(ack, &skipped);
                if ack >= self.peer_sack_ack {
                    self.peer_sack_ack = ack;
                    self.peer_sack = sack;
                }
                self.skips.retain(|&seq| seq > settled);
            }
        }
    }

    /// The next accepted message, sequenced ones strictly in seq order.
    pub fn poll_deliver(&mut self) -> Option<Delivered<In>> {
        let delivered = self.ready.pop_front()?;
        self.stats.delivered += 1;
        Some(delivered)
    }

    /// Confirms that the effect of exactly-once message (`seq`, `id`) of the current session is
    /// durable, letting the ack pass it. Returns false (and changes nothing) for anything else,
    /// e.g. a seq of a session that was restarted since.
    pub fn confirm(&mut self, seq: u64, id: u64) -> bool {
        if self.unconfirmed.get(&seq) != Some(&id) {
            return false;
        }
        self.unconfirmed.remove(&seq);
        self.ack_due = true;
        true
    }

    /// The highest contiguous seq received (delivered or skipped).
    pub fn recv_hwm(&self) -> u64 {
        self.recv_hwm
    }

    /// The cumulative ack: `recv_hwm` held back below the first unconfirmed exactly-once seq.
    /// This is the value a handshake carries for the peer's [`Session::resume`].
    pub fn ack_hwm(&self) -> u64 {
        let first_unconfirmed = self.unconfirmed.first_key_value();
        first_unconfirmed.map_or(self.recv_hwm, |(&seq, _)| seq - 1)
    }

    /// Transport lost: nothing is transmitted or received until `resume` or `restart`.
    pub fn on_disconnect(&mut self) {
        self.connected = false;
        self.stats.fire_and_forget_dropped += self.unsequenced.len() as u64;
        self.unsequenced.clear();
    }

    /// Same session on a new transport: settles the outbox up to the peer's `ack_hwm` from the
    /// handshake (cancelled entries wait for the peer's answer) and retransmits in order what
    /// the peer misses: the rest, except what it reported holding in a selective ack (it keeps
    /// its receive state too).
    pub fn resume(&mut self, peer_ack: u64) {
        self.connected = true;
        let before = self.outbox.len();
        self.outbox
            .retain(|entry| entry.frame.seq > peer_ack || entry.giving_up.is_some());
        self.stats.acked += (before - self.outbox.len()) as u64;
        self.timers.clear();
        let missing = self
            .outbox
            .iter()
            .filter(|entry| entry.frame.seq <= peer_ack || !self.peer_holds(entry.frame.seq));
        self.send_queue = missing.map(|entry| entry.frame.seq).collect();
        self.ack_due = true;
    }

    /// New session with a peer that lost ours: unsettled messages are renumbered from 1 in
    /// order (id, epoch and attempt counts kept) and retransmitted; receive state is reset
    /// except the id memory and undelivered accepted messages. Unconfirmed exactly-once
    /// messages stay remembered by id, so their retransmissions are dropped and acked.
    pub fn restart(&mut self) {
        self.connected = true;
        for (seq, entry) in (1..).zip(self.outbox.iter_mut()) {
            entry.frame.seq = seq;
        }
        self.next_seq = self.outbox.len() as u64 + 1;
        self.peer_sack.clear();
        self.peer_sack_ack = 0;
        self.timers.clear();
        self.send_queue = self.outbox.iter().map(|entry| entry.frame.seq).collect();
        self.recv_hwm = 0;
        self.reorder.clear();
        self.buffered.clear();
        self.unconfirmed.clear();
        self.skips.clear();
        self.ack_due = false;
    }

    /// Whether the transport is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// When the last frame from the peer arrived.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// Unsettled sequenced messages.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Nothing left to send, settle, report or deliver.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty()
            && self.unsequenced.is_empty()
            && self.failed.is_empty()
            && self.ready.is_empty()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            outbox_len: self.outbox.len(),
            ..self.stats.clone()
        }
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.outbox
            .binary_search_by_key(&seq, |entry| entry.frame.seq)
            .ok()
    }

    /// Sends the data, or the cancel once the entry is given up, and arms its timer.
    fn transmit(&mut self, index: usize, now: Instant) -> LinkFrame<Out> {
        let due = now + self.config.retransmit_after;
        let entry = &mut self.outbox[index];
        if entry.giving_up.is_none()
            && let Delivery::Reliable {
                attempts,
                deadline_ms,
            } = entry.frame.delivery
        {
            let deadline = entry.queued_at + Duration::from_millis(u64::from(deadline_ms));
            if now >= deadline {
                entry.giving_up = Some(GiveUp::Deadline);
            } else if entry.transmissions >= attempts {
                entry.giving_up = Some(GiveUp::Attempts);
            }
        }
        entry.generation = entry.generation.wrapping_add(1);
        self.timers.push_back(Timer {
            due,
            seq: entry.frame.seq,
            generation: entry.generation,
        });
        if entry.giving_up.is_some() {
            let DataFrame { seq, id, epoch, .. } = entry.frame;
            return LinkFrame::Cancel { seq, id, epoch };
        }
        if entry.transmissions > 0 {
            self.stats.retransmitted += 1;
        }
        entry.transmissions += 1;
        LinkFrame::Data(entry.frame.clone())
    }

    fn settled(&self) -> u64 {
        let first = self.outbox.front().map(|entry| entry.frame.seq);
        first.unwrap_or(self.next_seq) - 1
    }

    /// Settles every outbox entry up to `ack`: skipped ones fail, the others are acked.
    fn settle(&mut self, ack: u64, skipped: &[u64]) {
        while self
            .outbox
            .front()
            .is_some_and(|entry| entry.frame.seq <= ack)
        {
            let Some(entry) = self.outbox.pop_front() else {
                break;
            };
            if !skipped.contains(&entry.frame.seq) {
                self.stats.acked += 1;
                continue;
            }
            debug_assert!(entry.giving_up.is_some(), "skipped but not cancelled");
            self.stats.failed += 1;
            // Our settled point moved: tell the peer so it can forget the skip record.
            self.ack_due = true;
            self.failed.push_back(Failed {
                id: entry.frame.id,
                epoch: entry.frame.epoch,
                delivery: entry.frame.delivery,
                transmissions: entry.transmissions,
                reason: entry.giving_up.unwrap_or(GiveUp::Attempts),
                body: entry.frame.body,
            });
        }
    }

    /// Whether the peer's latest selective ack says it holds `seq`.
    fn peer_holds(&self, seq: u64) -> bool {
        let mut ranges = self.peer_sack.iter().take(MAX_SACK_RANGES);
        ranges.any(|&(first, last)| first <= seq && seq <= last)
    }

    /// The seqs beyond `ack` held here: received but unconfirmed, then the reorder buffer.
    fn held_ranges(&self, ack: u64) -> Vec<(u64, u64)> {
        let unconfirmed = (self.recv_hwm > ack).then_some((ack + 1, self.recv_hwm));
        let buffered = self.buffered.iter().copied();
        unconfirmed
            .into_iter()
            .chain(buffered)
            .take(MAX_SACK_RANGES)
            .collect()
    }

    /// Adds a newly buffered `seq` to the `buffered` ranges, merging neighbours.
    fn note_buffered(&mut self, seq: u64) {
        let index = self.buffered.partition_point(|&(_, last)| last < seq);
        let joins_previous = index > 0 && self.buffered[index - 1].1 + 1 == seq;
        let joins_next = self
            .buffered
            .get(index)
            .is_some_and(|&(first, _)| first == seq + 1);
        match (joins_previous, joins_next) {
            (true, true) => {
                self.buffered[index - 1].1 = self.buffered[index].1;
                self.buffered.remove(index);
            }
            (true, false) => self.buffered[index - 1].1 = seq,
            (false, true) => self.buffered[index].0 = seq,
            (false, false) => self.buffered.insert(index, (seq, seq)),
        }
    }

    /// Places a data frame or a cancel at its seq and accepts whatever became contiguous.
    fn receive(&mut self, seq: u64, slot: Slot<In>) {
        let is_data = matches!(slot, Slot::Data(_));
        if seq <= self.recv_hwm {
            self.stats.duplicates_dropped += u64::from(is_data);
            return;
        }
        let offset = seq - self.recv_hwm - 1;
        let window = self.config.reorder_window.max(1);
        let Some(offset) = usize::try_from(offset)
            .ok()
            .filter(|&offset| offset < window)
        else {
            self.stats.out_of_window_dropped += u64::from(is_data);
            return;
        };
        if self.reorder.len() <= offset {
            self.reorder.resize_with(offset + 1, || None);
        }
        let place = &mut self.reorder[offset];
        match (&*place, is_data) {
            (None, _) => {
                *place = Some(slot);
                self.note_buffered(seq);
            }
            (Some(Slot::Data(_)), false) => *place = Some(slot),
            _ => self.stats.duplicates_dropped += u64::from(is_data),
        }
        while matches!(self.reorder.front(), Some(Some(_))) {
            let Some(Some(slot)) = self.reorder.pop_front() else {
                break;
            };
            self.recv_hwm += 1;
            // The first buffered range starts at the seq just accepted.
            if let Some(first) = self.buffered.first_mut() {
                first.0 += 1;
                if first.0 > first.1 {
                    self.buffered.remove(0);
                }
            }
            self.accept(self.recv_hwm, slot);
        }
    }

    fn accept(&mut self, seq: u64, slot: Slot<In>) {
        match slot {
            Slot::Data(data) => {
                if data.delivery.dedup_by_id() && !self.remember((data.epoch, data.id)) {
                    self.stats.duplicates_dropped += 1;
                    return;
                }
                if data.delivery == Delivery::ExactlyOnce {
                    self.unconfirmed.insert(seq, data.id);
                }
                self.ready.push_back(data.into());
            }
            Slot::Cancel { id, epoch } => {
                if self.dedup.binary_search(&(epoch, id)).is_err() {
                    self.skips.insert(seq);
                    self.stats.skipped += 1;
                }
            }
        }
    }

    /// Remembers an id; false when it was already known. The memory keeps the largest keys.
    fn remember(&mut self, key: (u64, u64)) -> bool {
        let Err(index) = self.dedup.binary_search(&key) else {
            return false;
        };
        self.dedup.insert(index, key);
        if self.dedup.len() > self.config.dedup_capacity.max(self.config.outbox_capacity) {
            self.dedup.pop_front();
        }
        true
    }
}

#[cfg(test)]
mod tests;
