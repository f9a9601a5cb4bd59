//! The connections of one sender: at most `limit` sockets over all its endpoints. Idle
//! HTTP/1.1 connections are reused last-in first-out; HTTP/2 connections carry many streams
//! at once. A request that finds every socket busy at the limit waits for one to come back
//! or close; it never opens more.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tokio::sync::Notify;

use super::conn::{self, Failure, Stream, TlsTarget};
use super::h1::Buffer;
use crate::allowlist::Allowlist;
use crate::engine::h2::{self, H2Conn};
use crate::engine::target::HttpVersion;
use crate::stats::{ErrorKind, Handshake};

/// The socket count, shared by the pool and every slot.
struct Sockets {
    open: Cell<usize>,
    limit: usize,
    /// A socket came back idle or closed.
    freed: Notify,
}

/// One socket of the limit, held by a connection for its life.
pub(super) struct Slot(Rc<Sockets>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.freed.notify_one();
    }
}

/// An HTTP/1.1 connection and its read buffer.
pub(super) struct H1Conn {
    pub io: Stream,
    pub buf: Buffer,
    pub slot: Slot,
}

/// An HTTP/2 connection; requests hold it (an `Rc`) while their stream runs.
pub(super) struct H2Entry {
    pub conn: H2Conn,
    _slot: Slot,
}

/// Where connections go: a host and port, in clear or with one TLS setting, in one HTTP.
pub(super) struct Endpoint {
    host: String,
    port: u16,
    /// `None` in clear; the index of the TLS setting and the server name.
    tls_key: Option<(usize, String)>,
    /// `None` in clear; the TLS setting, or why it cannot be used.
    tls: Option<Result<TlsTarget, String>>,
    version: HttpVersion,
    idle: Vec<H1Conn>,
    h2: Vec<Rc<H2Entry>>,
    next_h2: usize,
}

/// What a request got to send on.
pub(super) enum Lease {
    /// `reused`: the connection carried an earlier request (the server may have closed it).
    H1 {
        conn: H1Conn,
        reused: bool,
    },
    H2(Rc<H2Entry>),
}

pub(super) struct Pool {
    endpoints: RefCell<Vec<Endpoint>>,
    sockets: Rc<Sockets>,
    allowlist: Allowlist,
}

impl Pool {
    pub fn new(limit: usize, allowlist: Allowlist) -> Pool {
        Pool {
            endpoints: RefCell::new(Vec::new()),
            sockets: Rc::new(Sockets {
                open: Cell::new(0),
                limit: limit.max(1),
                freed: Notify::new(),
            }),
            allowlist,
        }
    }

    /// The index of the endpoint `host:port` in `version`, in clear or (`tls`: the index of
    /// a TLS setting and the server name) secured by `make_tls`, added on first use.
    pub fn endpoint(
        &self,
        host: &str,
        port: u16,
        version: HttpVersion,
        tls: Option<(usize, &str)>,
        make_tls: impl FnOnce() -> Result<TlsTarget, String>,
    ) -> usize {
        let mut eps = self.endpoints.borrow_mut();
        let same = |e: &Endpoint| {
            e.host == host
                && e.port == port
                && e.version == version
                && e.tls_key.as_ref().map(|(i, n)| (*i, n.as_str())) == tls
        };
        if let Some(i) = eps.iter().position(same) {
            return i;
        }
        eps.push(Endpoint {
            host: host.to_string(),
            port,
            tls_key: tls.map(|(i, n)| (i, n.to_string())),
            tls: tls.map(|_| make_tls()),
            version,
            idle: Vec::new(),
            h2: Vec::new(),
            next_h2: 0,
        });
        eps.len() - 1
    }

    /// A connection to endpoint `ep`: an idle HTTP/1.1 one, a stream on an HTTP/2 one, or a
    /// new one while under the limit; else waits. The handshake is that of a new connection.
    pub async fn acquire(&self, ep: usize) -> Result<(Lease, Option<Handshake>), Failure> {
        loop {
            let slot = {
                let mut eps = self.endpoints.borrow_mut();
                let at_limit = self.sockets.open.get() >= self.sockets.limit;
                let e = &mut eps[ep];
                if at_limit {
                    // Only the connection picked is looked at; a closed one is dropped and the
                    // next one tried.
                    while let Some(entry) = e.next_stream() {
                        if !entry.conn.is_closed() {
                            return Ok((Lease::H2(entry), None));
                        }
                        e.h2.retain(|c| !Rc::ptr_eq(c, &entry));
                    }
                }
                if let Some(conn) = e.idle.pop() {
                    return Ok((Lease::H1 { conn, reused: true }, None));
                }
                // At the limit with nothing here: close a socket another endpoint is not
                // using, and take its place; else wait.
                if at_limit && !free_one(&mut eps) {
                    None
                } else {
                    self.sockets.open.set(self.sockets.open.get() + 1);
                    Some(Slot(self.sockets.clone()))
                }
            };
            match slot {
                // Boxed: connecting is rare, and its state machine (TLS, the HTTP/2
                // handshake) would otherwise enlarge every request's future.
                Some(slot) => return Box::pin(self.open(ep, slot)).await,
                None => self.sockets.freed.notified().await,
            }
        }
    }

    /// Opens a new connection to endpoint `ep` on `slot`.
    pub async fn open(&self, ep: usize, slot: Slot) -> Result<(Lease, Option<Handshake>), Failure> {
        let (host, port, tls, version) = {
            let eps = self.endpoints.borrow();
            let e = &eps[ep];
            (e.host.clone(), e.port, e.tls.clone(), e.version)
        };
        let tls = match tls {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(why)) => return Err(Failure::new(ErrorKind::Tls, why)),
        };
        let opened = conn::connect(&self.allowlist, &host, port, tls.as_ref()).await?;
        let h2 = match version {
            HttpVersion::Http2 => true,
            HttpVersion::Http1 => false,
            HttpVersion::Auto => opened.h2,
        };
        if !h2 {
            let conn = H1Conn {
                io: opened.stream,
                buf: Buffer::default(),
                slot,
            };
            return Ok((
                Lease::H1 {
                    conn,
                    reused: false,
                },
                opened.handshake,
            ));
        }
        let conn = h2::handshake(opened.stream).await.map_err(|e| {
            Failure::new(
                ErrorKind::Connect,
                format!("HTTP/2 with {host}:{port} failed: {e:?}"),
            )
        })?;
        let entry = Rc::new(H2Entry { conn, _slot: slot });
        self.endpoints.borrow_mut()[ep].h2.push(entry.clone());
        // Requests waiting at the limit can now be streams on it.
        self.sockets.freed.notify_waiters();
        Ok((Lease::H2(entry), opened.handshake))
    }

    /// A stream finished on HTTP/2 connection `entry` of endpoint `ep`: the next stream
    /// goes there first (while it has room).
    pub fn finished(&self, ep: usize, entry: &Rc<H2Entry>) {
        let mut eps = self.endpoints.borrow_mut();
        let e = &mut eps[ep];
        if let Some(i) = e.h2.iter().position(|c| Rc::ptr_eq(c, entry)) {
            e.next_h2 = i;
        }
    }

    /// Gives an HTTP/1.1 connection back for the next request.
    pub fn put(&self, ep: usize, conn: H1Conn) {
        self.endpoints.borrow_mut()[ep].idle.push(conn);
        self.sockets.freed.notify_one();
    }
}

impl Endpoint {
    /// The HTTP/2 connection for the next stream: in turn, the first with room for one more
    /// stream, else the one with the fewest in flight (h2 queues the stream there).
    fn next_stream(&mut self) -> Option<Rc<H2Entry>> {
        let n = self.h2.len();
        if n == 0 {
            return None;
        }
        // The connection a stream last finished on first: requests follow the responses
        // that freed them, so a batch of answers read at once goes out again as one write.
        let start = self.next_h2 % n;
        let pick = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.h2[i].conn.has_room())
            .unwrap_or_else(|| {
                (0..n)
                    .min_by_key(|&i| self.h2[i].conn.in_flight())
                    .unwrap_or(0)
            });
        self.next_h2 = pick;
        Some(self.h2[pick].clone())
    }
}

/// Closes one socket no request uses (an idle HTTP/1.1 connection, a closed or unused
/// HTTP/2 one); whether there was one.
fn free_one(eps: &mut [Endpoint]) -> bool {
    for e in eps.iter_mut() {
        if e.idle.pop().is_some() {
            return true;
        }
        if let Some(i) =
            e.h2.iter()
                .position(|c| c.conn.is_closed() || Rc::strong_count(c) == 1)
        {
            e.h2.swap_remove(i);
            return true;
        }
    }
    false
}
