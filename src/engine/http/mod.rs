//! Sends one request of a load task and says how it ended: the status, the bytes read, or
//! the kind of failure. One [`HttpSender`] per task per worker thread, with its own
//! connections (at most `connections` sockets, see [`pool`]): HTTP/1.1 by our codec ([`h1`]:
//! each target's request encoded once, responses counted in a reused buffer), HTTP/2 by
//! [`crate::engine::h2`], over TCP or TLS ([`conn`]; the allowlist is enforced before any
//! socket connects). A flow step's request goes through [`HttpSender::send_parts`]: its path,
//! headers and body rendered at run time ([`parts`]), the response's headers and body kept
//! as asked; the plain path runs the same code with nothing to keep, which compiles away.

mod conn;
mod h1;
mod parts;
mod pool;

pub(crate) use self::parts::Kept;
pub use self::parts::{BODY_CAP, Keep, Parts, Reply};

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Uri;
use bytes::Bytes;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use url::{Host, Url};

use self::conn::{Failure, TlsTarget};
use self::h1::Broken;
use self::pool::{Lease, Pool};
use crate::allowlist::{Allowlist, Verdict};
use crate::engine::h2::{Exchange, H2Conn, H2Error, H2Head};
use crate::engine::target::{ExpectedStatus, HttpVersion, Tls, Traffic};
use crate::stats::{ErrorKind, Handshake, Outcome};

/// The header a cluster node puts on its requests, with its id (`mcpt target` counts by it).
pub const NODE_HEADER: &str = "x-mcpt-node";
/// Redirects followed at most, for targets that follow them.
const MAX_REDIRECTS: usize = 10;

/// One request as it goes out: to a target, or to a redirect's next hop.
struct Request {
    endpoint: usize,
    url: Url,
    method: http::Method,
    /// The HTTP/1.1 head and body, encoded once.
    h1: Bytes,
    /// The body, for HTTP/2 (none for GET and HEAD).
    body: Option<Bytes>,
    /// The HTTP/2 head (pseudo-headers and the target's headers), HPACK-encoded once.
    h2: Result<H2Head, String>,
}

/// What goes out with a request besides its method and URL: a target's own, or a flow
/// step's parts merged into them.
struct Message<'a> {
    /// The headers for HTTP/1.1 (the codec adds host, user agent, node and length).
    headers: &'a [(String, String)],
    /// The headers for HTTP/2, user agent and node included.
    h2_headers: &'a http::HeaderMap,
    /// Sent by methods other than GET and HEAD.
    body: Option<&'a Bytes>,
    /// HTTP/2 heads carry the computed `content-length` (the plain path's do not).
    h2_length: bool,
}

/// A target with everything prepared once.
struct Prepared {
    first: Request,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
    /// The target's headers (with the user agent and node), for HTTP/2.
    h2_headers: http::HeaderMap,
    /// The index of the target's TLS setting in [`HttpSender::tls`].
    tls: usize,
    server_name: Option<String>,
    version: HttpVersion,
    timeout: Duration,
    expected: ExpectedStatus,
    expected_response_time: Option<Duration>,
    follow_redirects: bool,
}

impl Prepared {
    /// The target's own headers and body.
    fn message(&self) -> Message<'_> {
        Message {
            headers: &self.headers,
            h2_headers: &self.h2_headers,
            body: self.body.as_ref(),
            h2_length: false,
        }
    }
}

pub struct HttpSender {
    targets: Vec<Prepared>,
    /// Running sums of the weights, for weighted picking.
    cumulative: Vec<u64>,
    allowlist: Allowlist,
    node: Option<String>,
    pool: Pool,
    /// The distinct TLS settings of the targets, each with its configuration (built once: its
    /// session store lets reconnects resume) or why it cannot be used.
    tls: RefCell<Vec<TlsSetting>>,
    /// Failure reasons already logged.
    logged: RefCell<HashSet<String>>,
}

struct TlsSetting {
    tls: Tls,
    version: HttpVersion,
    config: Result<Arc<ClientConfig>, String>,
}

/// How one exchange (one hop) ended.
struct Answer {
    status: u16,
    bytes: u64,
    location: Option<String>,
}

impl HttpSender {
    /// `connections` is the most sockets this sender opens; `node` (a cluster node's id)
    /// goes out in the `x-mcpt-node` header, so a target can tell the nodes apart.
    pub fn new(
        task: &Traffic,
        allowlist: Allowlist,
        connections: usize,
        node: Option<&str>,
    ) -> Rc<HttpSender> {
        let mut total = 0;
        let cumulative = task
            .targets
            .iter()
            .map(|t| {
                total += u64::from(t.weight);
                total
            })
            .collect();
        let mut sender = HttpSender {
            targets: Vec::with_capacity(task.targets.len()),
            cumulative,
            pool: Pool::new(connections, allowlist.clone()),
            allowlist,
            node: node.map(str::to_string),
            tls: RefCell::new(Vec::new()),
            logged: RefCell::new(HashSet::new()),
        };
        for t in &task.targets {
            let tls = sender.tls_index(&t.tls, t.http_version);
            let method = http::Method::from_bytes(t.method.as_bytes()).expect("validated method");
            let body = t.body.clone().map(Bytes::from);
            let mut h2_headers = http::HeaderMap::new();
            h2_headers.insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static(h1::USER_AGENT),
            );
            if let Some(node) = node.and_then(|n| http::HeaderValue::from_str(n).ok()) {
                h2_headers.insert(NODE_HEADER, node);
            }
            for (k, v) in &t.headers {
                let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) else {
                    continue;
                };
                // Connection-specific headers have no place in HTTP/2 (`host` is `:authority`).
                if !matches!(
                    k.as_str(),
                    "host" | "connection" | "keep-alive" | "transfer-encoding" | "upgrade"
                ) {
                    h2_headers.insert(k, v);
                }
            }
            let mut prepared = Prepared {
                first: Request {
                    endpoint: 0,
                    url: t.url.clone(),
                    method: method.clone(),
                    h1: Bytes::new(),
                    body: None,
                    h2: Err(String::new()),
                },
                headers: t.headers.clone(),
                body,
                h2_headers,
                tls,
                server_name: t.tls.server_name.clone(),
                version: t.http_version,
                timeout: t.timeout,
                expected: t.expected_status.clone(),
                expected_response_time: t.expected_response_time,
                follow_redirects: t.follow_redirects,
            };
            let first = sender.request(&prepared, method, t.url.clone(), &prepared.message());
            prepared.first = first;
            sender.targets.push(prepared);
        }
        Rc::new(sender)
    }

    /// The index of a TLS setting, its configuration built on first use.
    fn tls_index(&self, tls: &Tls, version: HttpVersion) -> usize {
        let mut all = self.tls.borrow_mut();
        if let Some(i) = all
            .iter()
            .position(|s| s.tls == *tls && s.version == version)
        {
            return i;
        }
        all.push(TlsSetting {
            tls: tls.clone(),
            version,
            config: conn::client_config(tls, version),
        });
        all.len() - 1
    }

    /// A request of `target` with `method` to `url` (the target's own, or a redirect's),
    /// carrying `msg`.
    fn request(
        &self,
        target: &Prepared,
        method: http::Method,
        url: Url,
        msg: &Message<'_>,
    ) -> Request {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let endpoint = if url.scheme() == "https" {
            // The configured server name stands for the target's own host only.
            let name = match &target.server_name {
                Some(n) if target.first.url.host_str().is_none_or(|h| h == host) => n.clone(),
                _ => match url.host() {
                    Some(Host::Ipv4(ip)) => ip.to_string(),
                    Some(Host::Ipv6(ip)) => ip.to_string(),
                    _ => host.to_string(),
                },
            };
            let setting = target.tls;
            self.pool
                .endpoint(host, port, target.version, Some((setting, &name)), || {
                    let config = self.tls.borrow()[setting].config.clone()?;
                    let name = ServerName::try_from(name.clone())
                        .map_err(|e| format!("invalid TLS server name {name}: {e}"))?;
                    Ok(TlsTarget { config, name })
                })
        } else {
            self.pool
                .endpoint(host, port, target.version, None, || unreachable!())
        };
        let sends_body = method != http::Method::GET && method != http::Method::HEAD;
        let body = msg.body.cloned().filter(|_| sends_body);
        let h1 = h1::encode_request(
            method.as_str(),
            &url,
            msg.headers,
            self.node.as_deref(),
            body.as_deref(),
        );
        // An HTTP/2 head only where HTTP/2 may be spoken: a flow's requests are encoded per
        // request, and HPACK work for an HTTP/1.1-only target is wasted.
        let h2 = if speaks_h2(target.version, &url) {
            let length = (msg.h2_length && sends_body).then(|| body.as_ref().map_or(0, Bytes::len));
            let length = length.map(|n| n.to_string());
            H2Head::new(
                method.as_str(),
                &url,
                msg.h2_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_bytes()))
                    .chain(length.as_deref().map(|n| ("content-length", n.as_bytes()))),
            )
        } else {
            Err("HTTP/2 is not spoken to this target".to_string())
        };
        Request {
            endpoint,
            url,
            method,
            h1,
            body,
            h2,
        }
    }

    /// The target of the `n`-th request: weights are honoured exactly over every
    /// `sum(weights)` consecutive requests.
    pub fn pick(&self, n: u64) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1);
        let slot = n % total;
        self.cumulative.partition_point(|&c| c <= slot)
    }

    /// Sends one request to target `t`, giving up at its timeout or at `deadline`, whichever
    /// comes first. Never fails: failures are part of the outcome.
    pub async fn send(&self, t: usize, deadline: Instant) -> Outcome {
        let target = &self.targets[t];
        let msg = target.message();
        let sent = self.timed::<()>(target, &target.first, &msg, Keep::default(), deadline);
        sent.await.0
    }

    /// Sends a flow step's request to target `t`: the target's endpoint, method, TLS,
    /// version, timeout, expected status and redirects, with the path, headers and body of
    /// `parts` (see [`Parts`]); keeps of the response what `keep` asks for. The reply is
    /// there exactly when the outcome has a status (the final hop's, after redirects).
    pub async fn send_parts(
        &self,
        t: usize,
        parts: &Parts,
        keep: Keep,
        deadline: Instant,
    ) -> (Outcome, Option<Reply>) {
        let target = &self.targets[t];
        let headers = parts.h1_headers(&target.headers);
        let h2_headers = if speaks_h2(target.version, &target.first.url) {
            parts.h2_headers(&target.h2_headers)
        } else {
            http::HeaderMap::new()
        };
        let msg = Message {
            headers: &headers,
            h2_headers: &h2_headers,
            body: parts.body.as_ref().or(target.body.as_ref()),
            h2_length: true,
        };
        let url = parts.url(&target.first.url);
        let first = self.request(target, target.first.method.clone(), url, &msg);
        let (outcome, kept) = self
            .timed::<Kept>(target, &first, &msg, keep, deadline)
            .await;
        let reply = outcome.status.zip(kept).map(|(status, k)| k.reply(status));
        (outcome, reply)
    }

    /// Sends `first` for `target`, giving up at its timeout or at `deadline`, whichever comes
    /// first; what `K` kept of the final response when it has a status.
    async fn timed<K: Keeper>(
        &self,
        target: &Prepared,
        first: &Request,
        msg: &Message<'_>,
        keep: Keep,
        deadline: Instant,
    ) -> (Outcome, Option<K>) {
        // In flight for the pacer until this request's outcome is known.
        let _in_flight = crate::engine::pace::InFlight::start();
        let started = Instant::now();
        let limit = (started + target.timeout).min(deadline);
        let mut handshake = None;
        let exchange = self.exchange::<K>(target, first, msg, keep, &mut handshake);
        let (mut outcome, kept) = match tokio::time::timeout_at(limit.into(), exchange).await {
            Ok(done) => done,
            Err(_) => (
                Outcome {
                    error: Some(ErrorKind::Timeout),
                    handshake,
                    ..Outcome::default()
                },
                None,
            ),
        };
        if let Some(expected) = target.expected_response_time {
            outcome.slow = started.elapsed() > expected;
        }
        (outcome, kept)
    }

    async fn exchange<K: Keeper>(
        &self,
        target: &Prepared,
        first: &Request,
        msg: &Message<'_>,
        keep: Keep,
        handshake: &mut Option<Handshake>,
    ) -> (Outcome, Option<K>) {
        let mut hop: Option<Request> = None;
        let mut hops = 0;
        loop {
            let req = hop.as_ref().unwrap_or(first);
            let redirect = target.follow_redirects && hops < MAX_REDIRECTS;
            let mut kept = K::fresh(keep);
            let answer = match self.once(req, redirect, handshake, &mut kept).await {
                Ok(answer) => answer,
                Err(failure) => {
                    self.log(&failure);
                    let outcome = Outcome {
                        error: Some(failure.kind),
                        handshake: *handshake,
                        reason: Some(failure.reason.into()),
                        ..Outcome::default()
                    };
                    return (outcome, None);
                }
            };
            let status = answer.status;
            if let (true, true, Some(location)) = (
                redirect,
                (300..400).contains(&status),
                answer.location.as_deref(),
            ) {
                match self.redirect_to(&req.url, location).await {
                    Some(next) => {
                        // 303, and 301/302 after a POST, switch to GET as browsers do.
                        let method = if status == 303
                            || ((status == 301 || status == 302)
                                && req.method == http::Method::POST)
                        {
                            http::Method::GET
                        } else {
                            req.method.clone()
                        };
                        hop = Some(self.request(target, method, next, msg));
                        hops += 1;
                        continue;
                    }
                    None => {
                        let outcome = Outcome {
                            status: Some(status),
                            error: Some(ErrorKind::Status),
                            bytes: answer.bytes,
                            handshake: *handshake,
                            reason: Some(format!("redirect refused (status {status})").into()),
                            ..Outcome::default()
                        };
                        return (outcome, Some(kept));
                    }
                }
            }
            let error = (!target.expected.accepts(status)).then_some(ErrorKind::Status);
            let outcome = Outcome {
                status: Some(status),
                error,
                bytes: answer.bytes,
                handshake: *handshake,
                ..Outcome::default()
            };
            return (outcome, Some(kept));
        }
    }

    /// One exchange of `req`, its response's headers and body going to `kept`. A
    /// kept-alive HTTP/1.1 connection the server closed before answering (or a stream an
    /// HTTP/2 server refused) is tried once more on a fresh one.
    async fn once<K: Keeper>(
        &self,
        req: &Request,
        location: bool,
        handshake: &mut Option<Handshake>,
        kept: &mut K,
    ) -> Result<Answer, Failure> {
        let ep = req.endpoint;
        let head = req.method == http::Method::HEAD;
        let (mut lease, opened) = self.pool.acquire(ep).await?;
        *handshake = opened.or(*handshake);
        let mut retried = false;
        loop {
            match lease {
                Lease::H1 { mut conn, reused } => {
                    match h1_exchange(&mut conn, &req.h1, head, location, kept).await {
                        Ok(resp) => {
                            if resp.keep_alive {
                                self.pool.put(ep, conn);
                            }
                            return Ok(Answer {
                                status: resp.status,
                                bytes: resp.bytes,
                                location: resp.location,
                            });
                        }
                        Err(Broken::Unanswered(_)) if reused && !retried => {
                            retried = true;
                            let (next, opened) = Box::pin(self.pool.open(ep, conn.slot)).await?;
                            *handshake = opened.or(*handshake);
                            lease = next;
                        }
                        Err(Broken::Unanswered(e)) => {
                            return Err(match e {
                                Some(e) => Failure::io(ErrorKind::Connect, "connection broke", &e),
                                None => Failure::new(
                                    ErrorKind::Connect,
                                    "connection closed before the response",
                                ),
                            });
                        }
                        Err(Broken::Io(e)) => {
                            return Err(Failure::io(ErrorKind::Body, "reading the response", &e));
                        }
                        Err(Broken::Body(why)) => return Err(Failure::new(ErrorKind::Body, why)),
                    }
                }
                Lease::H2(entry) => {
                    let head = req
                        .h2
                        .as_ref()
                        .map_err(|why| Failure::new(ErrorKind::Connect, why.clone()))?;
                    match kept.h2_send(&entry.conn, head, req.body.clone()).await {
                        Ok(ex) => {
                            self.pool.finished(ep, &entry);
                            return Ok(Answer {
                                status: ex.status,
                                bytes: ex.bytes,
                                location: ex.location,
                            });
                        }
                        Err(H2Error::Refused) if !retried => {
                            retried = true;
                            drop(entry);
                            let (next, opened) = self.pool.acquire(ep).await?;
                            *handshake = opened.or(*handshake);
                            lease = next;
                        }
                        Err(H2Error::Refused) => {
                            return Err(Failure::new(ErrorKind::Connect, "stream refused twice"));
                        }
                        Err(H2Error::Connect(why)) => {
                            return Err(Failure::new(ErrorKind::Connect, why));
                        }
                        Err(H2Error::Body(why)) => return Err(Failure::new(ErrorKind::Body, why)),
                    }
                }
            }
        }
    }

    /// Logs a failure's reason, once per distinct reason.
    fn log(&self, failure: &Failure) {
        if self.logged.borrow().contains(&failure.reason) {
            return;
        }
        self.logged.borrow_mut().insert(failure.reason.clone());
        match failure.kind {
            ErrorKind::Tls => tracing::warn!(reason = %failure.reason, "TLS failure"),
            _ => tracing::warn!(kind = ?failure.kind, reason = %failure.reason, "request failed"),
        }
    }

    /// The next hop of a redirect (http or https), if the allowlist permits it.
    async fn redirect_to(&self, base: &Url, location: &str) -> Option<Url> {
        let next = base.join(location).ok()?;
        if next.scheme() != "http" && next.scheme() != "https" {
            return None;
        }
        let allowed = match self.allowlist.check(&next) {
            Verdict::Allowed => true,
            Verdict::Denied(_) => false,
            Verdict::Resolve { host, port } => {
                let addrs: Vec<std::net::IpAddr> =
                    match tokio::net::lookup_host((host.as_str(), port)).await {
                        Ok(it) => it.map(|a| a.ip()).collect(),
                        Err(_) => Vec::new(),
                    };
                self.allowlist.check_resolved(&host, port, &addrs).is_ok()
            }
        };
        if !allowed {
            tracing::debug!(location = %next, "redirect to a host outside the allowlist refused");
            return None;
        }
        Some(next)
    }
}

/// What an exchange keeps of its response: nothing on the plain path (`()`), its headers
/// and body for a flow step ([`Kept`]).
trait Keeper: h1::Sink + Sized {
    /// An empty keeper for one hop.
    fn fresh(keep: Keep) -> Self;
    /// Sends over HTTP/2, keeping what `self` asks for.
    async fn h2_send(
        &mut self,
        conn: &H2Conn,
        head: &H2Head,
        body: Option<Bytes>,
    ) -> Result<Exchange, H2Error>;
}

impl Keeper for () {
    fn fresh(_: Keep) -> Self {}

    async fn h2_send(
        &mut self,
        conn: &H2Conn,
        head: &H2Head,
        body: Option<Bytes>,
    ) -> Result<Exchange, H2Error> {
        conn.send(head, body).await
    }
}

impl Keeper for Kept {
    fn fresh(keep: Keep) -> Self {
        Kept::new(keep)
    }

    async fn h2_send(
        &mut self,
        conn: &H2Conn,
        head: &H2Head,
        body: Option<Bytes>,
    ) -> Result<Exchange, H2Error> {
        let fresh = Box::new(Kept::new(self.keep()));
        let (exchange, kept) = conn.send_kept(head, body, fresh).await?;
        *self = *kept;
        Ok(exchange)
    }
}

/// Whether a request to `url` may go over HTTP/2: not with `http_version: "1.1"`, nor in clear
/// with `auto` (HTTP/1.1 there; h2c needs `"2"`).
fn speaks_h2(version: HttpVersion, url: &Url) -> bool {
    match version {
        HttpVersion::Http1 => false,
        HttpVersion::Http2 => true,
        HttpVersion::Auto => url.scheme() == "https",
    }
}

/// Writes a request on an HTTP/1.1 connection and reads its response into `kept`.
async fn h1_exchange<K: Keeper>(
    conn: &mut pool::H1Conn,
    request: &[u8],
    head: bool,
    location: bool,
    kept: &mut K,
) -> Result<h1::Response, Broken> {
    let write = async {
        conn.io.write_all(request).await?;
        conn.io.flush().await
    };
    if let Err(e) = write.await {
        return Err(Broken::Unanswered(Some(e)));
    }
    h1::read_response(&mut conn.io, &mut conn.buf, head, location, kept).await
}

/// A TCP connector whose connections have `TCP_NODELAY` set: a small write (the body after
/// the head, a frame after an ack) goes out at once instead of waiting up to 40 ms for the
/// peer's delayed ACK (Nagle). awc's own connector leaves it off.
pub fn nodelay<S>(
    connector: S,
) -> impl actix_service::Service<
    actix_tls::connect::ConnectInfo<awc::http::Uri>,
    Response = actix_tls::connect::Connection<awc::http::Uri, actix_rt::net::TcpStream>,
    Error = actix_tls::connect::ConnectError,
> + Clone
where
    S: actix_service::Service<
            actix_tls::connect::ConnectInfo<awc::http::Uri>,
            Response = actix_tls::connect::Connection<awc::http::Uri, actix_rt::net::TcpStream>,
            Error = actix_tls::connect::ConnectError,
        > + Clone,
{
    actix_service::ServiceExt::map(connector, |conn| {
        if let Err(e) = conn.io_ref().set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        conn
    })
}

/// The TCP connector of every connection to a target (load, redirects, security scans):
/// the allowlist is enforced here, on the addresses actually connected to. A name is resolved
/// once, every address it resolves to is checked ([`Allowlist::resolve`]), and the socket
/// connects to those checked addresses only, so a name whose answer changed since the plan was
/// validated, or `localhost.` answered by DNS, cannot lead load elsewhere. Address literals are
/// checked the same way. Connections get `TCP_NODELAY` (see [`nodelay`]).
#[derive(Clone)]
pub(crate) struct GuardedConnector {
    allowlist: std::sync::Arc<Allowlist>,
}

impl GuardedConnector {
    pub(crate) fn new(allowlist: Allowlist) -> GuardedConnector {
        GuardedConnector {
            allowlist: std::sync::Arc::new(allowlist),
        }
    }
}

impl actix_service::Service<actix_tls::connect::ConnectInfo<Uri>> for GuardedConnector {
    type Response = actix_tls::connect::Connection<Uri, actix_rt::net::TcpStream>;
    type Error = actix_tls::connect::ConnectError;
    type Future =
        futures_util::future::LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: actix_tls::connect::ConnectInfo<Uri>) -> Self::Future {
        let allowlist = self.allowlist.clone();
        Box::pin(async move {
            let host = req.hostname().to_string();
            let port = req.port();
            let addrs = allowlist.resolve(&host, port).await.map_err(|why| {
                tracing::warn!(host, port, "connection refused: {why}");
                actix_tls::connect::ConnectError::Resolver(why.into())
            })?;
            let req = req.set_addrs(addrs);
            let conn = actix_service::Service::call(
                &actix_tls::connect::tcp::TcpConnector::default().service(),
                req,
            )
            .await?;
            if let Err(e) = conn.io_ref().set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            Ok(conn)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_service::Service;
    use actix_tls::connect::ConnectInfo;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    /// Whether `listener` has a connection waiting (it never blocks).
    fn accepted(listener: &std::net::TcpListener) -> bool {
        listener.set_nonblocking(true).unwrap();
        listener.accept().is_ok()
    }

    #[actix_rt::test]
    async fn connections_go_only_to_addresses_the_allowlist_allows() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Another loopback address only: 127.0.0.1 is off the list, by name or by literal.
        let elsewhere = GuardedConnector::new(Allowlist::new(vec!["127.0.0.2".parse().unwrap()]));
        for host in ["127.0.0.1", "localhost"] {
            let refused = elsewhere
                .call(ConnectInfo::new(uri(&format!("http://{host}:{port}/"))))
                .await;
            let Err(actix_tls::connect::ConnectError::Resolver(why)) = refused else {
                panic!("{host}: connected off the allowlist");
            };
            assert!(why.to_string().contains("allowed_targets"), "{why}");
            assert!(!accepted(&listener), "{host}: a socket reached the server");
        }
        // The default list: the same literal connects, to the address it names.
        let conn = GuardedConnector::new(Allowlist::default())
            .call(ConnectInfo::new(uri(&format!("http://127.0.0.1:{port}/"))))
            .await
            .expect("loopback connects");
        assert_eq!(
            conn.io_ref().peer_addr().unwrap(),
            listener.local_addr().unwrap()
        );
        assert!(accepted(&listener));
    }
}
