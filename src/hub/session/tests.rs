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
