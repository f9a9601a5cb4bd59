//! The receive low-water mark (`SO_RCVLOWAT`) of a connection's socket, raised while many
//! responses are due.
//!
//! A fast server writes each response, or each few, as soon as it is ready. A driver that
//! sleeps in the reactor between reads is woken by every one of those writes, and on a busy
//! host the wake is the server's cost: the kernel wakes the sleeping reader from inside the
//! server's `write` (with nginx on the other core, about 10 % of its time went to waking us,
//! against under 4 % with h2load: benches/RESULTS.md, "h2: reads in batches"). With the mark
//! raised, the kernel does not signal the socket readable until that many bytes wait, so the
//! driver wakes once per batch of responses. A timer bounds the wait: when it fires before a
//! read, the mark drops back to one byte (the kernel then signals at once if anything waits),
//! so a server that sends less than the mark and then waits for us is read all the same.

use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::Context;

use tokio::time::{Instant, Sleep};

use super::{DUE, HOLD};

/// The highest mark: well under a socket's default receive buffer (128 KiB), so that raising
/// it never makes the kernel grow the buffer (which would also clamp the TCP window to the
/// mark).
const MAX_MARK: usize = 16 << 10;
/// The bytes of a response assumed before the first one is read.
const FIRST_GUESS: u64 = 64;

/// The mark of one socket and the timer that bounds a raised one.
pub(super) struct LowWater {
    fd: RawFd,
    /// The mark in force (1 is the kernel's default).
    mark: usize,
    /// Drops a raised mark back to 1 when no read came in time.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer is set for the present wait.
    armed: bool,
    /// The timer fired: the mark stays at 1 until the next read.
    expired: bool,
    /// Bytes read (after TLS), for the mean size of a response.
    bytes: u64,
}

impl LowWater {
    pub(super) fn new(fd: RawFd) -> LowWater {
        LowWater {
            fd,
            mark: 1,
            timer: None,
            armed: false,
            expired: false,
            bytes: 0,
        }
    }

    /// Counts a read of `n` bytes: the wait it ended is over.
    pub(super) fn read(&mut self, n: usize) {
        self.bytes += n as u64;
        self.armed = false;
        self.expired = false;
    }

    /// Sets the mark for the next wait, once the socket would block: the bytes of about half
    /// the responses due while [`DUE`] or more are, else one byte. `responses` is the
    /// connection's count of completed responses so far; the mean is taken after TLS, so the
    /// mark falls short of half a batch's bytes on the wire, never past it.
    pub(super) fn tune(&mut self, due: usize, responses: u64, cx: &mut Context<'_>) {
        let mut want = 1;
        if due < DUE {
            self.armed = false;
        } else if !self.expired {
            let mean = self
                .bytes
                .checked_div(responses)
                .map_or(FIRST_GUESS, |mean| mean.max(1));
            let count = (due / 2) as u64;
            want = usize::try_from(mean.saturating_mul(count))
                .unwrap_or(MAX_MARK)
                .clamp(1, MAX_MARK);
            if !self.armed {
                self.armed = true;
                let until = Instant::now() + HOLD;
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(until),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(until))),
                }
            }
            let fired = self
                .timer
                .as_mut()
                .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
            if fired {
                self.expired = true;
                want = 1;
            }
        }
        // A small drift in the responses due is not worth a system call.
        let drift = want.abs_diff(self.mark) * 4 > self.mark;
        if want != self.mark && (want == 1 || self.mark == 1 || drift) && set(self.fd, want) {
            self.mark = want;
        }
    }
}

/// Sets `SO_RCVLOWAT` on `fd`; whether it took.
#[cfg(target_os = "linux")]
fn set(fd: RawFd, bytes: usize) -> bool {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is the open socket the driver owns for as long as it owns this mark, and
    // the option's value is a c_int read from a pointer valid for its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Elsewhere the mark stays where it is: only Linux signals a lowered mark at once.
#[cfg(not(target_os = "linux"))]
fn set(_fd: RawFd, _bytes: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::task::{Context, Waker};

    use tokio::net::{TcpListener, TcpStream};

    use super::{DUE, FIRST_GUESS, HOLD, LowWater};

    /// The mark the kernel holds for `sock`.
    fn mark(sock: &TcpStream) -> usize {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a live socket, and a c_int out-parameter with its length.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        value as usize
    }

    async fn socket() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test(start_paused = true)]
    async fn the_mark_rises_with_the_responses_due_and_falls_back_when_the_timer_fires() {
        let (client, _server) = socket().await;
        let mut cx = Context::from_waker(Waker::noop());
        let mut lw = LowWater::new(client.as_raw_fd());

        // Few responses due: the kernel's default stays.
        lw.tune(DUE - 1, 0, &mut cx);
        assert_eq!(mark(&client), 1);

        // Many due, none read yet: half of them at the first guess of a response's size.
        lw.tune(100, 0, &mut cx);
        assert_eq!(mark(&client), 50 * FIRST_GUESS as usize);

        // A read of 40 responses' bytes teaches the mean size (1000 / 40 = 25 bytes).
        lw.read(1000);
        lw.tune(100, 40, &mut cx);
        assert_eq!(mark(&client), 50 * 25);
        // A small drift in the count due is no reason to change the mark.
        lw.tune(96, 40, &mut cx);
        assert_eq!(mark(&client), 50 * 25);

        // No read before the timer (a tick of tokio's timer past HOLD): back to one byte, and
        // it stays there until a read.
        tokio::time::advance(2 * HOLD).await;
        lw.tune(100, 40, &mut cx);
        assert_eq!(mark(&client), 1);
        lw.tune(100, 40, &mut cx);
        assert_eq!(mark(&client), 1);
        lw.read(1000);
        lw.tune(100, 80, &mut cx);
        assert_eq!(mark(&client), 50 * 25);

        // Fewer due than the threshold: back to one byte at once.
        lw.tune(DUE - 1, 80, &mut cx);
        assert_eq!(mark(&client), 1);
    }
}
