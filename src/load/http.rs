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
use crate::load::plan::{ExpectedStatus, LoadTask};
use crate::stats::{ErrorKind, Outcome};

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
        task: &LoadTask,
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
        let tcp = nodelay(
            actix_tls::connect::Connector::new(actix_tls::connect::Resolver::custom(
                AllowlistResolver(allowlist.clone()),
            ))
            .service(),
        );
        let connector = awc::Connector::new()
            .connector(tcp)
            .limit(connections)
            .timeout(longest.min(Duration::from_secs(30)))
            .conn_keep_alive(Duration::from_secs(30))
            .conn_lifetime(Duration::from_secs(300));
        let mut builder = awc::Client::builder();
        if let Some(node) = node.and_then(|n| HeaderValue::from_str(n).ok()) {
            builder = builder.add_default_header((crate::http::target::NODE_HEADER, node));
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
            },
        };
        if let Some(expected) = target.expected_response_time {
            outcome.slow = started.elapsed() > expected;
        }
        outcome
    }

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

/// Resolves host names for new connections and keeps them to the allowlist: a name that
/// resolves elsewhere than it did when the plan was validated is refused at connect time.
/// (Addresses written as IP literals never reach a resolver; validation checked those.)
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

pub(crate) struct AllowlistResolver(pub(crate) Allowlist);

impl actix_tls::connect::Resolve for AllowlistResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> futures_util::future::LocalBoxFuture<
        'a,
        Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error>>,
    > {
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host, port)).await?.collect();
            let ips: Vec<std::net::IpAddr> = addrs.iter().map(|a| a.ip()).collect();
            self.0.check_connect(host, port, &ips).map_err(|why| {
                tracing::warn!(host, ?ips, "connection refused: {why}");
                Box::<dyn std::error::Error>::from(why)
            })?;
            Ok(addrs)
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
