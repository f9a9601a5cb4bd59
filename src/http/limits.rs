//! What keeps slow and idle clients from exhausting a server (DESIGN §7): every server of ours
//! (orchestrator, node, `mcpt target`) gets
//!
//! - a deadline for a request's head: actix's `client_request_timeout`, `api.header_timeout`
//!   (408, connection closed);
//! - a deadline for a request's whole body, counted from the end of its head:
//!   `api.body_timeout`. The [`body_deadline`] middleware wraps the body of every request that
//!   has one, so every reader (the JSON reader of each endpoint, `/mcp`, the target's `/echo`)
//!   gets an error at the deadline, and a response to an unread body closes the connection;
//! - a bound on the bodies being received at once, `api.max_pending_bodies`: when one more
//!   starts, the one that has been arriving longest is cut. Slow bodies so hold at most that
//!   many connections and buffers whatever their number, and each is closed soon after the
//!   next ones arrive. The cluster link (`/cluster`), `/api/health` and the event stream send
//!   no body, so they never compete for these places: that is the room kept for them;
//! - a bound on open connections (`api.max_connections`, split over the workers), lowered to
//!   what the open-file limit leaves after [`FD_RESERVE`], so `accept()` never fails for want
//!   of descriptors (it did: 21,000 slow bodies took all 20,000, and nothing answered). More
//!   connections wait in the listen queue until one closes, which the two deadlines ensure.
//!
//! Per connection, actix keeps two 8 KiB buffers and the body read so far (capped by
//! `api.max_body_size`), all freed when the connection closes. Freed, but not given back:
//! the C allocator keeps what thousands of short connections left in its arenas (an
//! orchestrator stayed 40 MB above its level after 5,000 slow bodies). [`trim_memory`] runs
//! after bodies were cut (checked every [`TRIM_EVERY`]) and hands the free pages back, so
//! memory returns after an attack.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::Stream;
use tokio::sync::oneshot;

use crate::settings::ApiSettings;

/// Descriptors kept out of `max_connections`: the store, logs, the runtime, outgoing links.
pub const FD_RESERVE: usize = 512;

/// The body limits of one server, shared by its workers (app data of type `Data<BodyLimits>`).
#[derive(Debug)]
pub struct BodyLimits {
    timeout: Duration,
    capacity: usize,
    pending: Mutex<Pending>,
    /// Bodies cut at their deadline.
    pub timed_out: AtomicU64,
    /// Bodies cut because newer ones needed their place.
    pub evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    next_id: u64,
    /// Bodies being received, oldest first, each with the way to cut it.
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl BodyLimits {
    pub fn new(timeout: Duration, capacity: usize) -> web::Data<BodyLimits> {
        web::Data::new(BodyLimits {
            timeout,
            capacity: capacity.max(1),
            pending: Mutex::new(Pending::default()),
            timed_out: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    pub fn from_settings(api: &ApiSettings) -> web::Data<BodyLimits> {
        BodyLimits::new(api.body_timeout, api.max_pending_bodies)
    }

    /// Bodies being received now.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more body; the oldest is cut when all are taken.
    fn enter(limits: &web::Data<Self>) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let mut p = limits.lock();
        while p.queue.len() >= limits.capacity {
            if let Some((_, cut)) = p.queue.pop_front() {
                let _ = cut.send(());
                limits.evicted.fetch_add(1, Ordering::Relaxed);
                BODIES_CUT.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = p.next_id;
        p.next_id += 1;
        p.queue.push_back((id, tx));
        drop(p);
        Ticket {
            id,
            limits: limits.clone(),
            cut: rx,
        }
    }
}

/// A body's place among the pending ones; leaving it (dropped) frees the place.
struct Ticket {
    id: u64,
    limits: web::Data<BodyLimits>,
    cut: oneshot::Receiver<()>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut p = self.limits.lock();
        if let Some(i) = p.queue.iter().rposition(|(id, _)| *id == self.id) {
            p.queue.remove(i);
        }
    }
}

/// Whether a request announces a body (chunks, or a length above 0).
fn has_body(req: &ServiceRequest) -> bool {
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    h.get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0))
}

/// Middleware: puts the body of each request that has one under the server's
/// [`BodyLimits`] (found in app data; a server without them passes requests through).
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if has_body(&req)
        && let Some(limits) = req.app_data::<web::Data<BodyLimits>>().cloned()
    {
        let (_, payload) = req.parts_mut();
        let inner = std::mem::replace(payload, Payload::None);
        let timed = Timed {
            inner,
            deadline: Box::pin(actix_rt::time::sleep(limits.timeout)),
            ticket: Some(BodyLimits::enter(&limits)),
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(timed),
        });
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A body under a deadline and a place among the pending bodies.
struct Timed {
    inner: Payload,
    deadline: Pin<Box<actix_rt::time::Sleep>>,
    ticket: Option<Ticket>,
}

/// The error a cut body ends with: an I/O error of kind `TimedOut`, which the JSON reader
/// answers with 408.
fn cut(why: String) -> PayloadError {
    PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
}

impl Stream for Timed {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(ticket) = this.ticket.as_mut() else {
            // Ended (or cut) already.
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            if !matches!(item, Some(Ok(_))) {
                this.ticket = None;
            }
            return Poll::Ready(item);
        }
        if Pin::new(&mut ticket.cut).poll(cx).is_ready() {
            let capacity = ticket.limits.capacity;
            this.ticket = None;
            return Poll::Ready(Some(Err(cut(format!(
                "request body cut: {capacity} newer bodies were arriving (api.max_pending_bodies)"
            )))));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let limits = ticket.limits.clone();
            this.ticket = None;
            limits.timed_out.fetch_add(1, Ordering::Relaxed);
            BODIES_CUT.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Some(Err(cut(format!(
                "request body not received within {} s (api.body_timeout)",
                limits.timeout.as_secs_f64()
            )))));
        }
        Poll::Pending
    }
}

/// How often freed memory is handed back to the system.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Hands the allocator's free pages back to the system (glibc's `malloc_trim`; other
/// allocators return memory on their own).
pub fn trim_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; it only walks the allocator's own free lists
    // under the allocator's locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bodies cut (at their deadline, or for a newer one) by any server of this process: what
/// tells [`spawn_memory_trim`] that slow clients came and went.
static BODIES_CUT: AtomicU64 = AtomicU64::new(0);

/// Every [`TRIM_EVERY`] on the current arbiter, for as long as the process lives: runs
/// [`trim_memory`] when bodies were cut since the last look, and once more after that (the
/// connections of the last cut close after it). Only then: `malloc_trim` takes each arena's
/// lock in turn, and a node's load workers, which allocate on every request, should not
/// queue behind it for nothing.
pub fn spawn_memory_trim() {
    actix_rt::spawn(async {
        let mut every = actix_rt::time::interval(TRIM_EVERY);
        let mut seen = BODIES_CUT.load(Ordering::Relaxed);
        let mut again = false;
        loop {
            every.tick().await;
            let now = BODIES_CUT.load(Ordering::Relaxed);
            if now != seen || again {
                trim_memory();
                again = now != seen;
                seen = now;
            }
        }
    });
}

/// The descriptors a process grows its file-descriptor table to at start
/// ([`reserve_fd_table`]): enough for the sockets of 65,536 connections, about 520 KiB of
/// kernel memory (outside the process's RSS).
pub const FD_TABLE_AHEAD: usize = 65_536;

/// Grows this process's file-descriptor table (it never shrinks) so that the first `fds`
/// descriptors fit without growing it again, by duplicating a descriptor to number `fds - 1`
/// and closing the copy. Called at start, before the load workers run: Linux grows the table
/// when a new descriptor does not fit, and in a process with more than one thread each growth
/// waits for an RCU grace period (`expand_files` → `synchronize_rcu`), several to tens of
/// milliseconds of the thread that opened the socket. On a load worker that was a stall of
/// the arrival schedule at 256, 512 and 1,024 sockets (benches/RESULTS.md, open model).
/// `fds` above the open-file limit is lowered to it.
#[cfg(unix)]
pub fn reserve_fd_table(fds: usize) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024);
    let highest = fds.min(limit).saturating_sub(1);
    let Ok(highest) = libc::c_int::try_from(highest) else {
        return Ok(());
    };
    if highest < 3 {
        return Ok(());
    }
    let probe = std::fs::File::open("/dev/null")?;
    // SAFETY: F_DUPFD_CLOEXEC duplicates `probe`, a descriptor owned here and open for the
    // whole call, to the lowest free number at or above `highest`; no pointer is passed.
    let copy = unsafe { libc::fcntl(probe.as_raw_fd(), libc::F_DUPFD_CLOEXEC, highest) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a descriptor the call above just made; nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(copy) });
    Ok(())
}

/// The connections each of `workers` may keep open: `max_connections` shared out, after
/// lowering it to the open-file limit less [`FD_RESERVE`] and `extra_fds` (a node's own load
/// connections).
pub fn connections_per_worker(max_connections: usize, extra_fds: usize, workers: usize) -> usize {
    let nofile = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024);
    let room = nofile.saturating_sub(FD_RESERVE + extra_fds).max(64);
    let total = max_connections.min(room);
    if total < max_connections {
        tracing::info!(
            max_connections,
            open_file_limit = nofile,
            "open connections bounded to {total} by the open-file limit"
        );
    }
    (total / workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, test};
    use futures_util::StreamExt;

    async fn read_all(mut payload: web::Payload) -> HttpResponse {
        let mut n = 0;
        while let Some(chunk) = payload.next().await {
            match chunk {
                Ok(c) => n += c.len(),
                Err(e) => return HttpResponse::RequestTimeout().body(e.to_string()),
            }
        }
        HttpResponse::Ok().body(n.to_string())
    }

    #[actix_web::test]
    async fn a_whole_body_passes_and_frees_its_place() {
        let limits = BodyLimits::new(Duration::from_secs(5), 2);
        let app = test::init_service(
            App::new()
                .app_data(limits.clone())
                .wrap(actix_web::middleware::from_fn(body_deadline))
                .route("/", web::post().to(read_all)),
        )
        .await;
        for _ in 0..3 {
            let req = test::TestRequest::post()
                .uri("/")
                .set_payload("hello")
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(test::read_body(resp).await, "5");
        }
        assert_eq!(limits.pending(), 0);
        assert_eq!(limits.evicted.load(Ordering::Relaxed), 0);
    }

    /// A body that never ends: one chunk, then nothing.
    fn stalled() -> Payload {
        let s = futures_util::stream::once(async { Ok(Bytes::from_static(b"{")) })
            .chain(futures_util::stream::pending());
        Payload::Stream {
            payload: Box::pin(s),
        }
    }

    #[actix_web::test(start_paused = true)]
    async fn a_stalled_body_is_cut_at_its_deadline() {
        let limits = BodyLimits::new(Duration::from_secs(10), 4);
        let mut timed = Timed {
            inner: stalled(),
            deadline: Box::pin(actix_rt::time::sleep(limits.timeout)),
            ticket: Some(BodyLimits::enter(&limits)),
        };
        assert_eq!(limits.pending(), 1);
        assert_eq!(timed.next().await.unwrap().unwrap(), "{");
        let err = timed.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("api.body_timeout"), "{err}");
        assert_eq!(limits.timed_out.load(Ordering::Relaxed), 1);
        assert_eq!(limits.pending(), 0, "a cut body leaves its place");
        assert!(timed.next().await.is_none());
    }

    #[actix_web::test(start_paused = true)]
    async fn the_oldest_pending_body_makes_room() {
        let limits = BodyLimits::new(Duration::from_secs(3600), 2);
        let mut bodies: Vec<Timed> = (0..3)
            .map(|_| Timed {
                inner: stalled(),
                deadline: Box::pin(actix_rt::time::sleep(limits.timeout)),
                ticket: Some(BodyLimits::enter(&limits)),
            })
            .collect();
        assert_eq!(limits.pending(), 2);
        assert_eq!(limits.evicted.load(Ordering::Relaxed), 1);
        let mut oldest = bodies.remove(0);
        assert_eq!(oldest.next().await.unwrap().unwrap(), "{");
        let err = oldest.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("api.max_pending_bodies"), "{err}");
        // The two newer ones are still being received.
        for b in &mut bodies {
            assert_eq!(b.next().await.unwrap().unwrap(), "{");
            let more = actix_rt::time::timeout(Duration::from_secs(1), b.next()).await;
            assert!(more.is_err(), "still waiting for its body");
        }
        drop(bodies);
        assert_eq!(limits.pending(), 0);
    }
}
