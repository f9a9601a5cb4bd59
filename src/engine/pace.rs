//! Pacing a load worker's reactor while responses trickle in.
//!
//! A load worker that keeps up with its server easily sleeps in `epoll_wait` after every
//! response or two, and the server's next write wakes it. On Linux that wake runs in the
//! server's own `send` (`sock_def_readable`), and across cores of a virtual machine it costs
//! an interrupt to a halted vCPU: with 64 HTTPS connections to one nginx worker, 10% of nginx's
//! time went there under mcpt against 3.6% under wrk, whose own CPU cost kept it awake
//! (benches/RESULTS.md, "reactor pacing"). nginx's core is the bottleneck, so that 10% was
//! throughput.
//!
//! The pacer is a task on the worker's runtime. While at least [`MIN_IN_FLIGHT`] requests are
//! in flight and a round of the reactor completed some but fewer than [`BATCH`] of them, it
//! holds the thread in a short timed sleep ([`PAUSE`]) instead of letting the reactor wait on
//! the sockets; the next round then reads what arrived meanwhile in one pass, and the server's
//! writes find nobody to wake. A round that completed nothing lets the reactor wait on the
//! sockets as before (a slow server costs no polling), and so does a round with a full batch
//! (a fast server is never slowed). The sleep blocks the thread on purpose: blocking in
//! `epoll_wait` is what it replaces.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

/// Fewer requests in flight than this: no pacing.
pub const MIN_IN_FLIGHT: usize = 16;
/// A round that completes this many requests or more is not followed by a pause.
pub const BATCH: u64 = 4;
/// The pause: a few responses' worth of the server's time.
pub const PAUSE: Duration = Duration::from_micros(50);

/// The requests of this thread, as the pacer sees them.
#[derive(Default)]
struct State {
    in_flight: Cell<usize>,
    completed: Cell<u64>,
    /// The pacer is parked until `in_flight` reaches the minimum.
    idle: Cell<bool>,
    /// The pacer waits for the next completion.
    waiting: Cell<bool>,
    wake: Notify,
    /// Pauses taken (for tests).
    pauses: Cell<u64>,
}

thread_local! {
    static STATE: Rc<State> = Rc::default();
}

/// What the pacer does after a round of the reactor that completed `completed` requests with
/// `in_flight` still in flight.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Too few in flight: park until there are more.
    Park,
    /// Nothing came: let the reactor wait on the sockets until something completes.
    AwaitCompletion,
    /// A trickle: hold the thread for [`PAUSE`], then run another round.
    Pause,
    /// A full batch: run another round at once.
    Again,
}

pub fn step(in_flight: usize, completed: u64) -> Step {
    if in_flight < MIN_IN_FLIGHT {
        Step::Park
    } else if completed == 0 {
        Step::AwaitCompletion
    } else if completed < BATCH {
        Step::Pause
    } else {
        Step::Again
    }
}

/// A request of this thread is in flight until the guard drops.
pub struct InFlight(Rc<State>);

impl InFlight {
    pub fn start() -> InFlight {
        let s = STATE.with(Rc::clone);
        let n = s.in_flight.get() + 1;
        s.in_flight.set(n);
        if n >= MIN_IN_FLIGHT && s.idle.get() {
            s.idle.set(false);
            s.wake.notify_one();
        }
        InFlight(s)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.in_flight.set(s.in_flight.get() - 1);
        s.completed.set(s.completed.get() + 1);
        if s.waiting.get() {
            s.waiting.set(false);
            s.wake.notify_one();
        }
    }
}

/// Pauses taken on this thread so far.
pub fn pauses() -> u64 {
    STATE.with(|s| s.pauses.get())
}

/// The pacer: runs for the life of the worker's runtime (spawned once per load worker).
pub async fn run() {
    let s = STATE.with(Rc::clone);
    // The pause must not stretch by the default 50 µs timer slack.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a value and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
    loop {
        let before = s.completed.get();
        // One round: the reactor polls the sockets (without waiting, as a task is ready)
        // and runs every task they woke.
        tokio::task::yield_now().await;
        match step(s.in_flight.get(), s.completed.get() - before) {
            Step::Park => {
                s.idle.set(true);
                s.wake.notified().await;
            }
            Step::AwaitCompletion => {
                s.waiting.set(true);
                s.wake.notified().await;
            }
            Step::Pause => {
                s.pauses.set(s.pauses.get() + 1);
                hold(PAUSE);
            }
            Step::Again => {}
        }
    }
}

/// Holds the thread, not a task: the thread must not wait on the sockets meanwhile.
#[expect(
    clippy::disallowed_methods,
    reason = "blocking the worker thread briefly is the pacer's mechanism, in place of epoll_wait"
)]
fn hold(pause: Duration) {
    std::thread::sleep(pause);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` beside the pacer on a current-thread runtime with a paused clock (a runtime
    /// with nothing to do jumps its clock to the next timer).
    fn with_pacer(f: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(run());
            f.await;
        });
    }

    #[test]
    fn a_trickle_of_completions_is_paced_and_the_pacer_parks_when_they_are_done() {
        with_pacer(async {
            let mut guards: Vec<InFlight> = (0..40).map(|_| InFlight::start()).collect();
            // One completion per round of the reactor, as a server that answers one request
            // at a time.
            while guards.pop().is_some() {
                tokio::task::yield_now().await;
            }
            let paused = pauses();
            assert!(paused > 0, "no pause with a trickle at 40 in flight");
            // Nothing in flight: the pacer parks; an hour of the paused clock passes at once
            // only when no task is runnable.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert_eq!(pauses(), paused);
        });
    }

    #[test]
    fn requests_in_flight_with_no_completion_leave_the_thread_idle() {
        with_pacer(async {
            let _guards: Vec<InFlight> = (0..40).map(|_| InFlight::start()).collect();
            // A pacer that polled instead of waiting would keep the runtime busy, and the
            // paused clock would never reach the hour.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert_eq!(pauses(), 0);
        });
    }

    #[test]
    fn the_pacer_pauses_only_on_a_trickle_with_many_requests_in_flight() {
        assert_eq!(step(MIN_IN_FLIGHT - 1, 1), Step::Park);
        assert_eq!(step(MIN_IN_FLIGHT - 1, 0), Step::Park);
        assert_eq!(step(MIN_IN_FLIGHT, 0), Step::AwaitCompletion);
        assert_eq!(step(MIN_IN_FLIGHT, 1), Step::Pause);
        assert_eq!(step(64, BATCH - 1), Step::Pause);
        assert_eq!(step(64, BATCH), Step::Again);
    }
}
