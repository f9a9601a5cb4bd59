//! [`Link`]: one end of the cluster link as an actor holds it, the same on the node
//! (`NodeAgent`) and on the orchestrator (`NodeProxy`). It owns the [`Session`], the current
//! connection and the pump between them, and the [`LinkTimers`]:
//! - [`Link::attach`] takes a new connection (closing the one it replaces) and gives the
//!   stream of its events, tagged with the connection's generation, for `ctx.add_stream`;
//! - [`Link::on_event`] reads one event: frames of a replaced connection are ignored, a frame
//!   is decoded from its envelope, the end of the connection disconnects the session;
//! - [`Link::receive`] hands a frame to the session, [`Link::poll_deliver`] hands out what it
//!   delivers;
//! - [`Link::flush`] writes what the session has to send, only as many frames as the
//!   connection's queue takes now: the rest stay in the session and [`Link::retry_flush`]
//!   (every [`FLUSH_RETRY`], see [`run_timers`]) tries again, instead of losing them to a full
//!   queue and resending them a retransmission timeout later;
//! - [`Link::send`] refuses a message when the outbox is full; [`Link::queue`] keeps it
//!   waiting, in order, until there is room;
//! - [`Link::heartbeat`] writes the cumulative ack.
//!
//! What the actor decides stays with it: when to connect, what a frame of an old epoch means,
//! and the lease (node) or the death timer (orchestrator, [`LinkTimers::on_silence`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context};
use tokio::sync::mpsc;

use crate::hub::conn::{Conn, ConnEvent, Out, events};
use crate::hub::frame::{self, CLOSE_TOO_BIG, Envelope, WireError};
use crate::hub::{Delivered, Delivery, Full, LinkFrame, Session, SessionConfig, SessionStats};

/// How soon a flush that found the connection's queue full tries again.
pub const FLUSH_RETRY: Duration = Duration::from_millis(5);

/// Link timers and limits, from `communication` and `cluster` settings.
#[derive(Debug, Clone)]
pub struct LinkTimers {
    pub heartbeat: Duration,
    pub lease: Duration,
    pub death: Duration,
    pub max_frame: usize,
    pub outbox: usize,
    /// A node failed or left this long ago is forgotten
    /// (`service_discovery.service_timeout`).
    pub forget: Duration,
}

impl LinkTimers {
    pub fn from_settings(s: &crate::settings::Settings) -> LinkTimers {
        LinkTimers {
            heartbeat: s.communication.heartbeat_interval,
            lease: s.communication.lease_timeout,
            death: s.communication.death_timeout,
            max_frame: s.cluster.max_frame_size,
            outbox: s.cluster.outbox_capacity,
            forget: s.service_discovery.service_timeout,
        }
    }

    /// What the orchestrator's side of a link does after hearing nothing from its node for
    /// `silent`: the death timer's whole decision, kept apart from the clock so that tests
    /// drive it with any durations they like.
    ///
    /// The node is declared failed once it has been silent for longer than the death timeout
    /// D. Heartbeats renew the node's lease only while it has been silent for at most
    /// `D - L - H`: a node whose frames no longer arrive (a one-way failure) then has paused
    /// (its lease L lapsed) by the time its share is given away at D.
    pub fn on_silence(&self, silent: Duration, connected: bool) -> Silence {
        if silent > self.death {
            return Silence::Fail;
        }
        let renewing = self.death.saturating_sub(self.lease + self.heartbeat);
        if connected && silent <= renewing.max(self.heartbeat) {
            Silence::Heartbeat
        } else {
            Silence::Wait
        }
    }

    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            outbox_capacity: self.outbox,
            // A lost frame is sent again after two heartbeats without its ack.
            retransmit_after: self.heartbeat * 2,
            ..SessionConfig::default()
        }
    }
}

/// The death timer's verdict on a silence ([`LinkTimers::on_silence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Send a heartbeat: the cumulative ack, which also renews the node's lease.
    Heartbeat,
    /// Send nothing and wait: the node's lease is left to lapse.
    Wait,
    /// Declare the node failed and fence it with a new epoch.
    Fail,
}

/// What one connection event means for the link ([`Link::on_event`]).
#[derive(Debug)]
pub enum Event<F: Envelope> {
    /// A session frame of the current connection, not yet handed to the session.
    Frame(LinkFrame<F::Msg>),
    /// A frame of the current connection that is no session frame: a handshake frame again
    /// (`Ok`), or one that could not be read.
    Bad(Result<F, WireError>),
    /// The current connection ended; the session is disconnected.
    Closed,
}

/// The WebSocket close code for a bad frame ([`Event::Bad`]): 1009 for one over the cap, else
/// 1002 (protocol error).
pub fn bad_frame_code<F>(bad: &Result<F, WireError>) -> u16 {
    match bad {
        Err(WireError::TooBig { .. }) => CLOSE_TOO_BIG,
        _ => 1002,
    }
}

/// One end of the cluster link: sends `O`'s frames, receives `I`'s.
pub struct Link<O: Envelope, I: Envelope> {
    timers: LinkTimers,
    session: Session<O::Msg, I::Msg>,
    conn: Option<mpsc::Sender<Out>>,
    /// Of the current connection; events of older ones are ignored.
    generation: u64,
    /// The connection's queue was full at the last flush: flush again soon.
    blocked: bool,
    /// Messages waiting for room in the outbox, with their delivery mode ([`Link::queue`]).
    waiting: VecDeque<(O::Msg, Delivery)>,
}

impl<O: Envelope, I: Envelope> Link<O, I>
where
    O::Msg: Clone,
{
    pub fn new(timers: LinkTimers) -> Self {
        Link {
            session: Session::new(timers.session_config()),
            timers,
            conn: None,
            generation: 0,
            blocked: false,
            waiting: VecDeque::new(),
        }
    }

    pub fn timers(&self) -> &LinkTimers {
        &self.timers
    }

    /// The session, for what only its owner decides (resume, restart, epoch, confirm).
    pub fn session(&mut self) -> &mut Session<O::Msg, I::Msg> {
        &mut self.session
    }

    /// A new session in place of the current one (nothing queued for it survives).
    pub fn renew_session(&mut self) {
        self.session = Session::new(self.timers.session_config());
    }

    pub fn stats(&self) -> SessionStats {
        self.session.stats()
    }

    pub fn ack_hwm(&self) -> u64 {
        self.session.ack_hwm()
    }

    /// Whether a connection is attached.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Takes a new connection, closing the one it replaces; the events of the new one are to
    /// be fed to [`Link::on_event`].
    pub fn attach(
        &mut self,
        conn: Conn,
    ) -> impl futures_util::Stream<Item = ConnEvent> + use<O, I> {
        self.close_conn(1000, "replaced by a new connection");
        self.generation += 1;
        self.conn = Some(conn.tx);
        events(conn.rx, self.generation)
    }

    /// Reads one event of a connection; `None` for one of a replaced connection.
    pub fn on_event(&mut self, ev: ConnEvent) -> Option<Event<I>> {
        match ev {
            ConnEvent::Frame(g, bytes) if g == self.generation => {
                match frame::decode::<I>(&bytes, self.timers.max_frame) {
                    Ok(f) => Some(match f.into_link() {
                        Ok(link) => Event::Frame(link),
                        Err(other) => Event::Bad(Ok(other)),
                    }),
                    Err(e) => Some(Event::Bad(Err(e))),
                }
            }
            ConnEvent::Closed(g) if g == self.generation => {
                self.conn = None;
                self.session.on_disconnect();
                Some(Event::Closed)
            }
            _ => None,
        }
    }

    /// Hands a received frame to the session.
    pub fn receive(&mut self, frame: LinkFrame<I::Msg>, now: Instant) {
        self.session.on_frame(frame, now);
    }

    pub fn poll_deliver(&mut self) -> Option<Delivered<I::Msg>> {
        self.session.poll_deliver()
    }

    /// Closes the connection (if any) and disconnects the session.
    pub fn close(&mut self, code: u16, reason: &str) {
        self.close_conn(code, reason);
        self.session.on_disconnect();
    }

    /// Closes the current connection only: the caller says what happens to the session.
    fn close_conn(&mut self, code: u16, reason: &str) -> bool {
        let Some(tx) = self.conn.take() else {
            return false;
        };
        let _ = tx.try_send(Out::Close {
            code,
            reason: reason.to_string(),
        });
        true
    }

    /// Writes one frame now (a handshake frame, or an ack). A full queue loses it: what the
    /// session sends it sends again.
    pub fn write(&mut self, frame: &O) {
        let Some(tx) = &self.conn else { return };
        match frame::encode(frame, self.timers.max_frame) {
            Ok(bytes) => {
                let _ = tx.try_send(Out::Frame(bytes.into()));
            }
            Err(e) => tracing::error!(error = %e, "frame not sent"),
        }
    }

    /// The cumulative ack, written now.
    pub fn heartbeat(&mut self) {
        let ack = self.session.ack_frame();
        self.write(&O::link(ack));
    }

    /// Queues a message in the session; an outbox full gives it back.
    pub fn send(&mut self, msg: O::Msg, delivery: Delivery) -> Result<u64, Full<O::Msg>> {
        self.session.send(msg, delivery, Instant::now())
    }

    /// Queues a message in the session, or, when the outbox is full (or older messages wait
    /// already), keeps it until there is room; fire-and-forget ones do not wait behind others.
    pub fn queue(&mut self, msg: O::Msg, delivery: Delivery) {
        if !self.waiting.is_empty() && delivery != Delivery::FireAndForget {
            self.waiting.push_back((msg, delivery));
            return;
        }
        if let Err(full) = self.send(msg, delivery) {
            self.waiting.push_back((full.body, full.delivery));
        }
    }

    /// Moves waiting messages into the session, then writes what the session has to send.
    pub fn flush(&mut self) {
        while let Some((msg, delivery)) = self.waiting.pop_front() {
            if let Err(full) = self.send(msg, delivery) {
                self.waiting.push_front((full.body, full.delivery));
                break;
            }
        }
        let now = Instant::now();
        self.blocked = false;
        while self.conn.as_ref().is_some_and(|tx| tx.capacity() > 0) {
            let Some(frame) = self.session.poll_transmit(now) else {
                return;
            };
            self.write(&O::link(frame));
        }
        self.blocked = self.conn.is_some();
    }

    /// Flushes again if the last flush found the connection's queue full.
    pub fn retry_flush(&mut self) {
        if self.blocked {
            self.flush();
        }
    }
}

/// An actor holding a [`Link`]: [`run_timers`] drives it.
pub trait LinkActor: Actor<Context = Context<Self>> {
    type Out: Envelope<Msg: Clone>;
    type In: Envelope;

    fn link(&mut self) -> &mut Link<Self::Out, Self::In>;

    /// Every heartbeat interval.
    fn tick(&mut self, ctx: &mut Context<Self>);
}

/// Starts the link's timers in the actor's context: `tick` every heartbeat, and the retry of a
/// blocked flush every [`FLUSH_RETRY`].
pub fn run_timers<A: LinkActor>(act: &mut A, ctx: &mut Context<A>) {
    ctx.run_interval(act.link().timers().heartbeat, |act, ctx| act.tick(ctx));
    ctx.run_interval(FLUSH_RETRY, |act, _| act.link().retry_flush());
}

#[cfg(test)]
mod tests {
    //! The death timer's decisions, driven by chosen silences instead of the wall clock.

    use std::time::Duration;

    use proptest::prelude::*;

    use super::{LinkTimers, Silence};

    /// Valid timers (the settings require D >= L + 2H), in milliseconds.
    fn timers() -> impl Strategy<Value = LinkTimers> {
        (1u64..2_000, 1u64..10_000, 0u64..10_000).prop_map(|(h, l, extra)| LinkTimers {
            heartbeat: Duration::from_millis(h),
            lease: Duration::from_millis(l),
            death: Duration::from_millis(l + 2 * h + extra),
            max_frame: 1 << 20,
            outbox: 1024,
            forget: Duration::from_secs(90),
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_test_timers_fail_a_node_after_the_death_timeout_and_not_before() {
        let t = LinkTimers {
            heartbeat: ms(200),
            lease: ms(600),
            death: ms(1200),
            max_frame: 1 << 20,
            outbox: 1024,
            forget: Duration::from_secs(90),
        };
        assert_eq!(t.on_silence(ms(0), true), Silence::Heartbeat);
        assert_eq!(t.on_silence(ms(400), true), Silence::Heartbeat);
        assert_eq!(t.on_silence(ms(401), true), Silence::Wait);
        assert_eq!(t.on_silence(ms(1200), true), Silence::Wait);
        assert_eq!(t.on_silence(ms(1201), true), Silence::Fail);
        assert_eq!(t.on_silence(ms(1201), false), Silence::Fail);
        assert_eq!(t.on_silence(ms(0), false), Silence::Wait);
    }

    proptest! {
        /// A node is failed exactly when it has been silent for longer than D.
        #[test]
        fn fails_exactly_past_the_death_timeout(t in timers(), silent in 0u64..30_000, connected: bool) {
            let verdict = t.on_silence(ms(silent), connected);
            prop_assert_eq!(verdict == Silence::Fail, ms(silent) > t.death);
        }

        /// A lease renewed by the last heartbeat, delivered within H, lapses by D: the node
        /// has paused before its share is given to the others.
        #[test]
        fn the_last_lease_lapses_before_the_share_moves(t in timers(), silent in 0u64..30_000) {
            if t.on_silence(ms(silent), true) == Silence::Heartbeat {
                prop_assert!(ms(silent) + t.lease + t.heartbeat <= t.death);
            }
        }

        /// A healthy link (something heard every heartbeat) is always renewed, and a
        /// disconnected one never is.
        #[test]
        fn healthy_links_are_renewed(t in timers(), silent in 0u64..2_000) {
            if ms(silent) <= t.heartbeat {
                prop_assert_eq!(t.on_silence(ms(silent), true), Silence::Heartbeat);
            }
            prop_assert_ne!(t.on_silence(ms(silent), false), Silence::Heartbeat);
        }

        /// Silence only gets worse: no heartbeat after the first wait, no reprieve after fail.
        #[test]
        fn verdicts_never_go_back(t in timers(), a in 0u64..30_000, b in 0u64..30_000) {
            let (early, late) = (a.min(b), a.max(b));
            let rank = |v: Silence| match v {
                Silence::Heartbeat => 0,
                Silence::Wait => 1,
                Silence::Fail => 2,
            };
            prop_assert!(rank(t.on_silence(ms(early), true)) <= rank(t.on_silence(ms(late), true)));
        }
    }
}
