//! Sends one request of a load task with awc and says how it ended: the status, the bytes
//! read, or the kind of failure. One [`HttpSender`] per task per worker thread (awc's client is
//! `!Send`); its connection pool is sized so the pool never queues requests unseen.

use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::error::SendRequestError;
use awc::http::header::{HeaderName, HeaderValue, LOCATION};
use awc::http::{Method, Uri};
use futures_util::StreamExt;
use url::Url;

use crate::allowlist::{Allowlist, Verdict};
use crate::engine::target::{ExpectedStatus, Traffic};
use crate::stats::{ErrorKind, Outcome};

/// The header a cluster node puts on its requests, with its id (`mcpt target` counts by it).
pub const NODE_HEADER: &str = "x-mcpt-node";
/// Redirects followed at most, for targets that follow them.
const MAX_REDIRECTS: usize = 10;

/// A target with everything parsed once.
struct Prepared {
    method: Method,
    uri: Uri,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<bytes::Bytes>,
    timeout: Duration,
    expected: ExpectedStatus,
    expected_response_time: Option<Duration>,
    follow_redirects: bool,
}

pub struct HttpSender {
    client: awc::Client,
    targets: Vec<Prepared>,
    /// Running sums of the weights, for weighted picking.
    cumulative: Vec<u64>,
    allowlist: Allowlist,
}

impl HttpSender {
    /// `connections` is the pool limit of this worker's client; `node` (a cluster node's id)
    /// goes out in the `x-mcpt-node` header, so a target can tell the nodes apart.
    pub fn new(
        task: &Traffic,
        allowlist: Allowlist,
        connections: usize,
        node: Option<&str>,
    ) -> Rc<HttpSender> {
        let longest = task
            .targets
            .iter()
            .map(|t| t.timeout)
            .max()
            .unwrap_or(Duration::from_secs(30));
        let tcp = GuardedConnector::new(allowlist.clone());
        let connector = awc::Connector::new()
            .connector(tcp)
            .limit(connections)
            .timeout(longest.min(Duration::from_secs(30)))
            .conn_keep_alive(Duration::from_secs(30))
            .conn_lifetime(Duration::from_secs(300));
        let mut builder = awc::Client::builder();
        if let Some(node) = node.and_then(|n| HeaderValue::from_str(n).ok()) {
            builder = builder.add_default_header((NODE_HEADER, node));
        }
        let client = builder
            .connector(connector)
            // Timeouts are applied around the whole exchange, body included (see `send`).
            .disable_timeout()
            .disable_redirects()
            .add_default_header((
                awc::http::header::USER_AGENT,
                concat!("mcpt/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        let mut total = 0;
        let cumulative = task
            .targets
            .iter()
            .map(|t| {
                total += u64::from(t.weight);
                total
            })
            .collect();
        let targets = task
            .targets
            .iter()
            .map(|t| Prepared {
                method: Method::from_bytes(t.method.as_bytes()).expect("validated method"),
                uri: t.url.as_str().parse().expect("validated URL"),
                url: t.url.clone(),
                headers: t
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            HeaderName::from_bytes(k.as_bytes()).expect("validated header"),
                            HeaderValue::from_str(v).expect("validated header"),
                        )
                    })
                    .collect(),
                body: t.body.clone().map(bytes::Bytes::from),
                timeout: t.timeout,
                expected: t.expected_status.clone(),
                expected_response_time: t.expected_response_time,
                follow_redirects: t.follow_redirects,
            })
            .collect();
        Rc::new(HttpSender {
            client,
            targets,
            cumulative,
            allowlist,
        })
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
        let started = Instant::now();
        let limit = (started + target.timeout).min(deadline);
        let mut outcome = match tokio::time::timeout_at(limit.into(), self.exchange(target)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome {
                status: None,
                error: Some(ErrorKind::Timeout),
                bytes: 0,
                slow: false,
                handshake: None,
            },
        };
        if let Some(expected) = target.expected_response_time {
            outcome.slow = started.elapsed() > expected;
        }
        outcome
    }

    // long: awc's send, body and redirect steps in one loop, until the new sender replaces it
    async fn exchange(&self, target: &Prepared) -> Outcome {
        let mut method = target.method.clone();
        let mut uri = target.uri.clone();
        let mut url: Option<Url> = None;
        let mut hops = 0;
        loop {
            let mut req = self.client.request(method.clone(), uri.clone());
            for (k, v) in &target.headers {
                req = req.insert_header((k.clone(), v.clone()));
            }
            let sent = match &target.body {
                Some(body) if method != Method::GET && method != Method::HEAD => {
                    req.send_body(body.clone()).await
                }
                _ => req.send().await,
            };
            let mut resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    return Outcome {
                        status: None,
                        error: Some(classify(&e)),
                        bytes: 0,
                        slow: false,
                        handshake: None,
                    };
                }
            };
            let status = resp.status().as_u16();
            let mut bytes = 0u64;
            while let Some(chunk) = resp.next().await {
                match chunk {
                    Ok(c) => bytes += c.len() as u64,
                    Err(_) => {
                        return Outcome {
                            status: Some(status),
                            error: Some(ErrorKind::Body),
                            bytes,
                            slow: false,
                            handshake: None,
                        };
                    }
                }
            }
            let redirect =
                (300..400).contains(&status) && target.follow_redirects && hops < MAX_REDIRECTS;
            let location = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok());
            if let (true, Some(location)) = (redirect, location) {
                let base = url.as_ref().unwrap_or(&target.url);
                match self.redirect_to(base, location).await {
                    Some((next_url, next_uri)) => {
                        // 303, and 301/302 after a POST, switch to GET as browsers do.
                        if status == 303
                            || ((status == 301 || status == 302) && method == Method::POST)
                        {
                            method = Method::GET;
                        }
                        url = Some(next_url);
                        uri = next_uri;
                        hops += 1;
                        continue;
                    }
                    None => {
                        return Outcome {
                            status: Some(status),
                            error: Some(ErrorKind::Status),
                            bytes,
                            slow: false,
                            handshake: None,
                        };
                    }
                }
            }
            let error = (!target.expected.accepts(status)).then_some(ErrorKind::Status);
            return Outcome {
                status: Some(status),
                error,
                bytes,
                slow: false,
                handshake: None,
            };
        }
    }

    /// The next hop of a redirect, if the allowlist permits it.
    async fn redirect_to(&self, base: &Url, location: &str) -> Option<(Url, Uri)> {
        let next = base.join(location).ok()?;
        if next.scheme() != "http" {
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
        let uri = next.as_str().parse().ok()?;
        Some((next, uri))
    }
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

/// Maps awc's send errors onto the four kinds.
fn classify(e: &SendRequestError) -> ErrorKind {
    match e {
        SendRequestError::Timeout => ErrorKind::Timeout,
        // The response head could not be parsed: the server answered, badly.
        SendRequestError::Response(_) => ErrorKind::Body,
        // Connect failures, and a connection that broke while the request was written.
        _ => ErrorKind::Connect,
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
