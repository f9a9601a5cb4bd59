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

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The wire and value types live in the parent module; re-exported for `session::` paths.
pub use super::{DataFrame, Delivered, Delivery, Failed, Full, GiveUp, LinkFrame, SessionStats};

/// Limits and timers of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Maximum unsettled sequenced messages (and queued fire-and-forget frames).
    pub outbox_capacity: usize,
    /// Retransmit a frame that stayed unacked this long.
    pub retransmit_after: Duration,
    /// How far beyond the next expected seq out-of-order frames are buffered.
    pub reorder_window: usize,
    /// Exactly-once/reliable ids remembered across sessions (raised to `outbox_capacity`).
    pub dedup_capacity: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            outbox_capacity: 1024,
            retransmit_after: Duration::from_secs(1),
            reorder_window: 1024,
            dedup_capacity: 16 * 1024,
        }
    }
}

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
    // Receiving.
    recv_hwm: u64,
    /// Slot `i` holds seq `recv_hwm + 1 + i`.
    reorder: VecDeque<Option<Slot<In>>>,
    /// Accepted exactly-once seqs awaiting `confirm`, with their ids.
    unconfirmed: BTreeMap<u64, u64>,
    /// Skipped seqs the peer has not settled yet.
    skips: BTreeSet<u64>,
    ready: VecDeque<Delivered<In>>,
    dedup: HashSet<(u64, u64)>,
    dedup_order: VecDeque<(u64, u64)>,
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
            recv_hwm: 0,
            reorder: VecDeque::new(),
            unconfirmed: BTreeMap::new(),
            skips: BTreeSet::new(),
            ready: VecDeque::new(),
            dedup: HashSet::new(),
            dedup_order: VecDeque::new(),
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
                skipped,
                settled,
            } => {
                self.settle(ack, &skipped);
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
        self.unconfirmed
            .keys()
            .next()
            .map_or(self.recv_hwm, |&seq| seq - 1)
    }

    /// Transport lost: nothing is transmitted or received until `resume` or `restart`.
    pub fn on_disconnect(&mut self) {
        self.connected = false;
        self.stats.fire_and_forget_dropped += self.unsequenced.len() as u64;
        self.unsequenced.clear();
    }

    /// Same session on a new transport: settles the outbox up to the peer's `ack_hwm` from the
    /// handshake (cancelled entries wait for the peer's answer) and retransmits the rest in
    /// order. Receive state is kept.
    pub fn resume(&mut self, peer_ack: u64) {
        self.connected = true;
        let before = self.outbox.len();
        self.outbox
            .retain(|entry| entry.frame.seq > peer_ack || entry.giving_up.is_some());
        self.stats.acked += (before - self.outbox.len()) as u64;
        self.requeue();
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
        self.requeue();
        self.recv_hwm = 0;
        self.reorder.clear();
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
        let first = self.outbox.front()?.frame.seq;
        let guess = usize::try_from(seq.checked_sub(first)?).ok()?;
        if self
            .outbox
            .get(guess)
            .is_some_and(|entry| entry.frame.seq == seq)
        {
            return Some(guess);
        }
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

    fn requeue(&mut self) {
        self.timers.clear();
        self.send_queue = self.outbox.iter().map(|entry| entry.frame.seq).collect();
    }

    fn settled(&self) -> u64 {
        self.outbox
            .front()
            .map_or(self.next_seq, |entry| entry.frame.seq)
            - 1
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
            debug_assert!(
                entry.giving_up.is_some(),
                "peer skipped a seq that was not cancelled"
            );
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
            (None, _) | (Some(Slot::Data(_)), false) => *place = Some(slot),
            _ => self.stats.duplicates_dropped += u64::from(is_data),
        }
        while matches!(self.reorder.front(), Some(Some(_))) {
            let Some(Some(slot)) = self.reorder.pop_front() else {
                break;
            };
            self.recv_hwm += 1;
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
                if !self.dedup.contains(&(epoch, id)) {
                    self.skips.insert(seq);
                    self.stats.skipped += 1;
                }
            }
        }
    }

    /// Remembers an id; false when it was already known.
    fn remember(&mut self, key: (u64, u64)) -> bool {
        if !self.dedup.insert(key) {
            return false;
        }
        self.dedup_order.push_back(key);
        let capacity = self.config.dedup_capacity.max(self.config.outbox_capacity);
        while self.dedup_order.len() > capacity {
            if let Some(old) = self.dedup_order.pop_front() {
                self.dedup.remove(&old);
            }
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
        let config = SessionConfig {
            outbox_capacity: 8,
            retransmit_after: R,
            reorder_window: 4,
            ..Default::default()
        };
        (
            Session::new(config.clone()),
            Session::new(config),
            Instant::now(),
        )
    }

    fn reliable(attempts: u32, deadline_ms: u32) -> Delivery {
        Delivery::Reliable {
            attempts,
            deadline_ms,
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

    fn ack(ack: u64, skipped: Vec<u64>, settled: u64) -> LinkFrame<u64> {
        LinkFrame::Ack {
            ack,
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
        for body in 0..3 {
            a.send(body, ALO, now).unwrap();
        }
        pump(&mut a, &mut b, now);
        assert_eq!((a.outbox_len(), bodies(&mut b)), (3, vec![0, 1, 2]));
        let acks = drain(&mut b, now);
        assert_eq!(acks, vec![ack(3, vec![], 0)]);
        feed(&mut a, acks, now);
        assert_eq!((a.outbox_len(), a.stats().acked, a.is_idle()), (0, 3, true));
    }

    #[test]
    fn a_full_outbox_gives_the_message_back() {
        let (mut a, _, now) = pair();
        for body in 0..8 {
            a.send(body, EXACTLY, now).unwrap();
        }
        let refused = a.send(99, ALO, now).unwrap_err();
        assert_eq!(
            refused,
            Full {
                body: 99,
                delivery: ALO
            }
        );
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
        assert!(
            drain(&mut b, now).is_empty(),
            "unsequenced frames need no ack"
        );
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
    fn resume_resends_exactly_what_the_peer_misses() {
        let (mut a, mut b, now) = pair();
        for body in 0..5 {
            a.send(body, ALO, now).unwrap();
        }
        feed(&mut b, drain(&mut a, now).into_iter().take(3), now);
        a.on_disconnect();
        b.on_disconnect();
        assert!(
            drain(&mut a, now + R).is_empty(),
            "nothing goes out while disconnected"
        );
        a.resume(b.ack_hwm());
        b.resume(a.ack_hwm());
        let frames = drain(&mut a, now);
        assert_eq!(frames[0], ack(0, vec![], 3));
        assert_eq!(seqs(&frames), vec![(4, 4), (5, 5)]);
        let stats = a.stats();
        assert_eq!(
            (stats.outbox_len, stats.acked, stats.retransmitted),
            (2, 3, 2)
        );
        feed(&mut b, frames, now);
        assert_eq!(bodies(&mut b), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn restart_renumbers_the_unacked_in_order() {
        let (mut a, _, now) = pair();
        a.set_epoch(7);
        for body in 0..5 {
            a.send(body, ALO, now).unwrap();
        }
        drain(&mut a, now);
        a.on_frame(ack(2, vec![], 0), now);
        a.set_epoch(8);
        a.on_disconnect();
        a.restart();
        let frames = drain(&mut a, now);
        assert_eq!(seqs(&frames), vec![(1, 3), (2, 4), (3, 5)]);
        assert!(
            frames
                .iter()
                .all(|frame| matches!(frame, LinkFrame::Data(d) if d.epoch == 7))
        );
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
        assert_eq!(b.ack_frame(), ack(0, vec![], 0));
        let first = b.poll_deliver().unwrap();
        assert!(!b.confirm(first.seq, 2), "the id must match");
        assert!(b.confirm(first.seq, first.id));
        assert!(!b.confirm(first.seq, first.id), "confirmed once");
        assert_eq!(drain(&mut b, now), vec![ack(2, vec![], 0)]);
    }

    #[test]
    fn exactly_once_survives_a_restart_without_a_second_delivery() {
        let (mut a, mut b, now) = pair();
        for body in 1..=2 {
            a.send(body, EXACTLY, now).unwrap();
        }
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
        assert!(
            a.poll_failed().is_none(),
            "no failure before the peer answers"
        );
        feed(&mut b, frames, later);
        assert_eq!(bodies(&mut b), vec![2], "FIFO continues across the skip");
        let acks = drain(&mut b, later);
        assert_eq!(acks, vec![ack(2, vec![1], 0)]);
        feed(&mut a, acks, later);
        let failed = a.poll_failed().unwrap();
        assert_eq!(
            (failed.id, failed.body, failed.reason),
            (1, 1, GiveUp::Attempts)
        );
        assert!(a.poll_failed().is_none());
        assert_eq!(
            (a.stats().failed, a.stats().acked, b.stats().skipped),
            (1, 1, 1)
        );
        // The sender's settled point lets the receiver forget the skip record.
        pump(&mut a, &mut b, later);
        assert_eq!(b.ack_frame(), ack(2, vec![], 0));
    }

    #[test]
    fn a_cancel_after_delivery_is_answered_as_delivered() {
        let (mut a, mut b, now) = pair();
        a.send(1, reliable(100, 10), now).unwrap();
        pump(&mut a, &mut b, now);
        drain(&mut b, now); // the ack is lost
        let frames = drain(&mut a, now + R);
        assert_eq!(frames, vec![cancel(1, 1)]);
        feed(&mut b, frames, now + R);
        pump(&mut b, &mut a, now + R);
        assert!(a.poll_failed().is_none());
        assert_eq!(
            (a.stats().acked, a.stats().failed, bodies(&mut b)),
            (1, 0, vec![1])
        );
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
        let failed = a.poll_failed().unwrap();
        assert_eq!(
            (failed.body, failed.reason, failed.transmissions),
            (20, GiveUp::Deadline, 1)
        );
    }

    #[test]
    fn a_reliable_message_delivered_before_a_restart_is_not_reported_failed() {
        let (mut a, mut b, now) = pair();
        a.send(1, reliable(1, 10_000), now).unwrap();
        pump(&mut a, &mut b, now);
        drain(&mut b, now); // the ack is lost
        a.restart();
        b.restart();
        let frames = drain(&mut a, now + R);
        assert_eq!(frames, vec![cancel(1, 1)]);
        feed(&mut b, frames, now + R);
        pump(&mut b, &mut a, now + R);
        assert!(a.poll_failed().is_none());
        assert_eq!((a.stats().acked, bodies(&mut b)), (1, vec![1]));
    }
}
