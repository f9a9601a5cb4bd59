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
mod tests {
    use super::*;

    type Peer = Session<u64, u64>;

    const R: Duration = Duration::from_millis(30);
    const ALO: Delivery = Delivery::AtLeastOnce;
    const EXACTLY: Delivery = Delivery::ExactlyOnce;

    fn pair() -> (Peer, Peer, Instant) {
        let mut config = SessionConfig::default();
        (
            config.outbox_capacity,
            config.retransmit_after,
            config.reorder_window,
        ) = (8, R, 4);
        let new = || Session::new(config.clone());
        (new(), new(), Instant::now())
    }

    fn reliable(attempts: u32, deadline_ms: u32) -> Delivery {
        Delivery::Reliable {
            attempts,
            deadline_ms,
        }
    }

    fn send_all(a: &mut Peer, bodies: impl IntoIterator<Item = u64>, mode: Delivery, now: Instant) {
        for body in bodies {
            a.send(body, mode, now).unwrap();
        }
    }

    /// Everything `from` transmits at `now`.
    fn drain(from: &mut Peer, now: Instant) -> Vec<LinkFrame<u64>> {
        std::iter::from_fn(|| from.poll_transmit(now))
            .take(100)
            .collect()
    }

    fn feed(to: &mut Peer, frames: impl IntoIterator<Item = LinkFrame<u64>>, now: Instant) {
        frames.into_iter().for_each(|frame| to.on_frame(frame, now));
    }

    /// Moves everything `from` transmits at `now` into `to`.
    fn pump(from: &mut Peer, to: &mut Peer, now: Instant) {
        feed(to, drain(from, now), now);
    }

    fn data(seq: u64, delivery: Delivery) -> LinkFrame<u64> {
        LinkFrame::Data(DataFrame {
            seq,
            id: seq,
            epoch: 0,
            delivery,
            body: seq * 10,
        })
    }

    fn ack(ack: u64, sack: Vec<(u64, u64)>, skipped: Vec<u64>, settled: u64) -> LinkFrame<u64> {
        LinkFrame::Ack {
            ack,
            sack,
            skipped,
            settled,
        }
    }

    fn cancel(seq: u64, id: u64) -> LinkFrame<u64> {
        LinkFrame::Cancel { seq, id, epoch: 0 }
    }

    fn bodies(peer: &mut Peer) -> Vec<u64> {
        std::iter::from_fn(|| peer.poll_deliver())
            .map(|d| d.body)
            .collect()
    }

    /// `(seq, id)` of the data frames.
    fn seqs(frames: &[LinkFrame<u64>]) -> Vec<(u64, u64)> {
        let data = frames.iter().filter_map(|frame| match frame {
            LinkFrame::Data(data) => Some((data.seq, data.id)),
            _ => None,
        });
        data.collect()
    }

    #[test]
    fn acks_trim_the_outbox() {
        let (mut a, mut b, now) = pair();
        send_all(&mut a, 0..3, ALO, now);
        pump(&mut a, &mut b, now);
        assert_eq!((a.outbox_len(), bodies(&mut b)), (3, vec![0, 1, 2]));
        let acks = drain(&mut b, now);
        assert_eq!(acks, vec![ack(3, vec![], vec![], 0)]);
        feed(&mut a, acks, now);
        assert_eq!((a.outbox_len(), a.stats().acked, a.is_idle()), (0, 3, true));
    }

    #[test]
    fn a_full_outbox_gives_the_message_back() {
        let (mut a, _, now) = pair();
        send_all(&mut a, 0..8, EXACTLY, now);
        let refused = a.send(99, ALO, now).unwrap_err();
        assert_eq!((refused.body, refused.delivery), (99, ALO));
        let fire_and_forget = a.send(7, Delivery::FireAndForget, now);
        assert_eq!(fire_and_forget, Ok(9), "fire-and-forget is not refused");
        assert_eq!(a.stats().sent, 9);
    }

    #[test]
    fn fire_and_forget_is_dropped_and_counted_while_disconnected() {
        let (mut a, mut b, now) = pair();
        a.send(1, Delivery::FireAndForget, now).unwrap();
        a.on_disconnect();
        a.send(2, Delivery::FireAndForget, now).unwrap();
        assert_eq!(a.stats().fire_and_forget_dropped, 2);
        a.resume(0);
        a.send(3, Delivery::FireAndForget, now).unwrap();
        let frames = drain(&mut a, now);
        assert_eq!(seqs(&frames[1..]), vec![(0, 3)]); // after the resume's ack
        feed(&mut b, frames, now);
        assert_eq!(bodies(&mut b), vec![3]);
        assert_eq!(drain(&mut b, now), vec![], "unsequenced frames need no ack");
    }

    #[test]
    fn unacked_frames_are_retransmitted_after_the_timeout_only() {
        let (mut a, _, now) = pair();
        a.send(5, ALO, now).unwrap();
        assert_eq!(seqs(&drain(&mut a, now)), vec![(1, 1)]);
        assert_eq!(a.poll_timeout(), Some(now + R));
        assert!(drain(&mut a, now + R - Duration::from_millis(1)).is_empty());
        assert_eq!(seqs(&drain(&mut a, now + R)), vec![(1, 1)]);
        assert!(drain(&mut a, now + R + R / 2).is_empty());
        assert_eq!(seqs(&drain(&mut a, now + R * 2)), vec![(1, 1)]);
        assert_eq!(a.stats().retransmitted, 2);
    }

    #[test]
    fn selectively_acked_frames_are_not_retransmitted() {
        let (mut a, mut b, now) = pair();
        send_all(&mut a, 0..4, ALO, now);
        let frames = drain(&mut a, now);
        feed(&mut b, [1, 3].map(|index| frames[index].clone()), now);
        let acks = drain(&mut b, now);
        assert_eq!(acks, vec![ack(0, vec![(2, 2), (4, 4)], vec![], 0)]);
        feed(&mut a, acks, now);
        assert_eq!(seqs(&drain(&mut a, now + R)), vec![(1, 1), (3, 3)]);
        assert_eq!(a.stats().retransmitted, 2);
    }

    #[test]
    fn resume_resends_exactly_what_the_peer_misses() {
        let (mut a, mut b, now) = pair();
        send_all(&mut a, 0..6, ALO, now);
        let frames = drain(&mut a, now);
        feed(&mut b, [0, 1, 2, 5].map(|index| frames[index].clone()), now);
        pump(&mut b, &mut a, now); // ack 3, holding 6
        feed(&mut b, [frames[3].clone()], now); // its ack is lost in the cut
        a.on_disconnect();
        b.on_disconnect();
        assert_eq!(
            drain(&mut a, now + R),
            vec![],
            "nothing goes out while down"
        );
        a.resume(b.ack_hwm());
        b.resume(a.ack_hwm());
        let frames = drain(&mut a, now);
        assert_eq!(frames[0], ack(0, vec![], vec![], 4));
        assert_eq!(seqs(&frames), vec![(5, 5)]);
        let SessionStats {
            outbox_len,
            acked,
            retransmitted,
            ..
        } = a.stats();
        assert_eq!((outbox_len, acked, retransmitted), (2, 4, 1));
        feed(&mut b, frames, now);
        assert_eq!(bodies(&mut b), vec![0, 1, 2, 3, 4, 5]);
        pump(&mut b, &mut a, now);
        assert_eq!(a.outbox_len(), 0);
    }

    #[test]
    fn restart_renumbers_the_unacked_in_order() {
        let (mut a, _, now) = pair();
        a.set_epoch(7);
        send_all(&mut a, 0..5, ALO, now);
        drain(&mut a, now);
        a.on_frame(ack(2, vec![], vec![], 0), now);
        a.set_epoch(8);
        a.on_disconnect();
        a.restart();
        let frames = drain(&mut a, now);
        assert_eq!(seqs(&frames), vec![(1, 3), (2, 4), (3, 5)]);
        let epoch_kept = |frame: &_| matches!(frame, LinkFrame::Data(d) if d.epoch == 7);
        assert!(frames.iter().all(epoch_kept));
        a.send(9, ALO, now).unwrap();
        assert_eq!(seqs(&drain(&mut a, now)), vec![(4, 6)]);
    }

    #[test]
    fn out_of_order_frames_are_buffered_within_the_window() {
        let (_, mut b, now) = pair();
        feed(&mut b, [data(3, ALO), data(2, ALO), data(6, ALO)], now);
        assert_eq!((b.recv_hwm(), b.stats().out_of_window_dropped), (0, 1));
        assert!(bodies(&mut b).is_empty());
        b.on_frame(data(1, ALO), now);
        assert_eq!(bodies(&mut b), vec![10, 20, 30]);
        feed(&mut b, [data(2, ALO), data(5, ALO), data(5, ALO)], now);
        assert_eq!((b.recv_hwm(), b.stats().duplicates_dropped), (3, 2));
        b.on_frame(data(4, ALO), now);
        assert_eq!((bodies(&mut b), b.stats().delivered), (vec![40, 50], 5));
    }

    #[test]
    fn exactly_once_acks_only_confirmed_effects() {
        let (_, mut b, now) = pair();
        feed(&mut b, [data(1, EXACTLY), data(2, ALO)], now);
        assert_eq!((b.recv_hwm(), b.ack_hwm()), (2, 0));
        let held = ack(0, vec![(1, 2)], vec![], 0);
        assert_eq!(b.ack_frame(), held, "unconfirmed frames are held");
        let first = b.poll_deliver().unwrap();
        assert!(!b.confirm(first.seq, 2), "the id must match");
        assert!(b.confirm(first.seq, first.id));
        assert!(!b.confirm(first.seq, first.id), "confirmed once");
        assert_eq!(drain(&mut b, now), vec![ack(2, vec![], vec![], 0)]);
    }

    #[test]
    fn exactly_once_survives_a_restart_without_a_second_delivery() {
        let (mut a, mut b, now) = pair();
        send_all(&mut a, 1..=2, EXACTLY, now);
        pump(&mut a, &mut b, now);
        while let Some(d) = b.poll_deliver() {
            assert!(b.confirm(d.seq, d.id));
        }
        drain(&mut b, now); // the acks are lost
        a.restart();
        b.restart();
        pump(&mut a, &mut b, now);
        assert!(bodies(&mut b).is_empty());
        assert_eq!((b.stats().duplicates_dropped, b.stats().delivered), (2, 2));
        pump(&mut b, &mut a, now);
        assert_eq!((a.outbox_len(), a.stats().acked), (0, 2));
    }

    #[test]
    fn reliable_gives_up_after_its_attempts_and_reports_once_skipped() {
        let (mut a, mut b, now) = pair();
        a.send(1, reliable(1, 10_000), now).unwrap();
        a.send(2, ALO, now).unwrap();
        let frames = drain(&mut a, now);
        b.on_frame(frames[1].clone(), now); // seq 1 is lost
        assert!(bodies(&mut b).is_empty());
        let later = now + R;
        let frames = drain(&mut a, later);
        assert_eq!(frames[0], cancel(1, 1));
        assert_eq!(a.poll_failed(), None, "no failure before the peer answers");
        feed(&mut b, frames, later);
        assert_eq!(bodies(&mut b), vec![2], "FIFO continues across the skip");
        let acks = drain(&mut b, later);
        assert_eq!(acks, vec![ack(2, vec![], vec![1], 0)]);
        feed(&mut a, acks, later);
        let failed = a.poll_failed().unwrap();
        assert_eq!(
            (failed.id, failed.body, failed.reason),
            (1, 1, GiveUp::Attempts)
        );
        assert_eq!(a.poll_failed(), None);
        let (stats, peer) = (a.stats(), b.stats());
        assert_eq!((stats.failed, stats.acked, peer.skipped), (1, 1, 1));
        // The sender's settled point lets the receiver forget the skip record.
        pump(&mut a, &mut b, later);
        assert_eq!(b.ack_frame(), ack(2, vec![], vec![], 0));
    }

    #[test]
    fn a_cancel_wins_over_buffered_data_and_reports_the_deadline() {
        let (mut a, mut b, now) = pair();
        a.send(10, ALO, now).unwrap();
        a.send(20, reliable(100, 10), now).unwrap();
        let frames = drain(&mut a, now);
        b.on_frame(frames[1].clone(), now); // seq 2 buffered, seq 1 lost
        let frames = drain(&mut a, now + R);
        assert_eq!(frames, vec![data(1, ALO), cancel(2, 2)]);
        feed(&mut b, frames.into_iter().rev(), now + R); // the cancel overtakes seq 1
        assert_eq!(bodies(&mut b), vec![10]);
        pump(&mut b, &mut a, now + R);
        let Failed {
            body,
            reason,
            transmissions,
            ..
        } = a.poll_failed().unwrap();
        assert_eq!((body, reason, transmissions), (20, GiveUp::Deadline, 1));
    }

    #[test]
    fn a_cancel_for_a_delivered_message_is_answered_as_delivered() {
        // In the same session (the ack was lost), or in a new one (known by its id).
        for restart in [false, true] {
            let (mut a, mut b, now) = pair();
            a.send(1, reliable(1, 10_000), now).unwrap();
            pump(&mut a, &mut b, now);
            drain(&mut b, now); // the ack is lost
            if restart {
                a.restart();
                b.restart();
            }
            let frames = drain(&mut a, now + R);
            assert_eq!(frames, vec![cancel(1, 1)]);
            feed(&mut b, frames, now + R);
            pump(&mut b, &mut a, now + R);
            assert_eq!(a.poll_failed(), None);
            assert_eq!(
                (a.stats().acked, bodies(&mut b)),
                (1, vec![1]),
                "restart: {restart}"
            );
        }
    }
}
