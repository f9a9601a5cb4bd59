//! What `mcpt target` counts: requests per path, per second, per sending node, per HTTP
//! protocol and per TLS version, read with `GET /stats` and reset with `DELETE /stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use actix_web::HttpRequest;
use actix_web::http::Version;
use serde::{Deserialize, Serialize};

use super::login::Logins;
use crate::engine::http::NODE_HEADER;

/// Paths counted one by one; anything else counts as `other`.
pub(super) const PATHS: [&str; 9] = [
    "/",
    "/delay",
    "/status",
    "/echo",
    "/bytes",
    "/redirect",
    "/login",
    "/me",
    "other",
];
/// Seconds of per-second counts kept (one day); later requests count in the last slot.
const SECONDS_KEPT: usize = 86_400;
/// The HTTP protocols counted: HTTP/1.x (`h1`) and HTTP/2 (`h2`), the names ALPN uses.
const PROTOCOLS: [&str; 2] = ["h1", "h2"];
/// The TLS versions counted, spelled as nginx's `$ssl_protocol` and OpenSSL spell them.
const TLS_VERSIONS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// The TLS version a connection negotiated, stashed in its extensions when it opens
/// (`HttpRequest::conn_data`); plain connections have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersion(usize);

impl TlsVersion {
    /// The counted version for a rustls protocol version (rustls speaks no other).
    pub fn of(version: rustls::ProtocolVersion) -> Option<TlsVersion> {
        match version {
            rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersion(0)),
            rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersion(1)),
            _ => None,
        }
    }
}

/// What the target received since it started or was last reset.
pub struct TargetStats {
    epoch: Instant,
    /// Nanoseconds after `epoch` of the first request since the last reset, plus one (0: none).
    first: AtomicU64,
    per_path: [AtomicU64; PATHS.len()],
    per_second: Box<[AtomicU64]>,
    /// Requests per value of the `x-mcpt-node` header (which node of a cluster sent them).
    per_node: Mutex<BTreeMap<String, u64>>,
    per_protocol: [AtomicU64; PROTOCOLS.len()],
    per_tls_version: [AtomicU64; TLS_VERSIONS.len()],
    logins: Logins,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct StatsView {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
    /// Requests received in each second since the first request (trailing empty seconds cut).
    pub per_second: Vec<u64>,
    /// Requests per sending node (the `x-mcpt-node` header), when nodes sent them.
    #[serde(default)]
    pub nodes: BTreeMap<String, u64>,
    /// Requests per HTTP protocol: `h1` (HTTP/1.0 and 1.1) and `h2`; they sum to `total`.
    #[serde(default)]
    pub protocols: BTreeMap<String, u64>,
    /// Requests per TLS version (`TLSv1.2`, `TLSv1.3`); they sum to the requests that came
    /// over TLS (none on a plain target).
    #[serde(default)]
    pub tls_versions: BTreeMap<String, u64>,
    /// Logins per user (`POST /login`); past 100,000 users, the rest count under `(more)`.
    #[serde(default)]
    pub logins: BTreeMap<String, u64>,
    /// Requests to `/me` refused for a missing or bad token.
    #[serde(default)]
    pub rejected_tokens: u64,
}

impl Default for TargetStats {
    fn default() -> Self {
        TargetStats {
            epoch: Instant::now(),
            first: AtomicU64::new(0),
            per_path: Default::default(),
            per_second: (0..SECONDS_KEPT).map(|_| AtomicU64::new(0)).collect(),
            per_node: Default::default(),
            per_protocol: Default::default(),
            per_tls_version: Default::default(),
            logins: Logins::default(),
        }
    }
}

/// Each name beside its count.
fn named(names: &[&str], counts: &[AtomicU64]) -> BTreeMap<String, u64> {
    names
        .iter()
        .zip(counts)
        .map(|(name, n)| (name.to_string(), n.load(Relaxed)))
        .collect()
}

impl TargetStats {
    pub(super) fn count(&self, path: usize, req: &HttpRequest) {
        self.per_path[path].fetch_add(1, Relaxed);
        let protocol = usize::from(req.version() == Version::HTTP_2);
        self.per_protocol[protocol].fetch_add(1, Relaxed);
        if let Some(TlsVersion(slot)) = req.conn_data::<TlsVersion>() {
            self.per_tls_version[*slot].fetch_add(1, Relaxed);
        }
        if let Some(node) = req.headers().get(NODE_HEADER).and_then(|v| v.to_str().ok()) {
            let mut nodes = self.per_node.lock().unwrap_or_else(|e| e.into_inner());
            *nodes.entry(node.to_string()).or_default() += 1;
        }
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let first = match self.first.compare_exchange(0, now, Relaxed, Relaxed) {
            Ok(_) => now,
            Err(existing) => existing,
        };
        let second = (now.saturating_sub(first) / 1_000_000_000) as usize;
        self.per_second[second.min(SECONDS_KEPT - 1)].fetch_add(1, Relaxed);
    }

    pub fn view(&self) -> StatsView {
        let paths = named(&PATHS, &self.per_path);
        let mut per_second: Vec<u64> = self.per_second.iter().map(|n| n.load(Relaxed)).collect();
        while per_second.last() == Some(&0) {
            per_second.pop();
        }
        StatsView {
            total: paths.values().sum(),
            paths,
            per_second,
            nodes: self
                .per_node
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            protocols: named(&PROTOCOLS, &self.per_protocol),
            tls_versions: named(&TLS_VERSIONS, &self.per_tls_version),
            logins: self.logins.per_user(),
            rejected_tokens: self.logins.rejected(),
        }
    }

    pub fn reset(&self) {
        self.first.store(0, Relaxed);
        let counters = self.per_path.iter().chain(self.per_second.iter());
        let counters = counters
            .chain(&self.per_protocol)
            .chain(&self.per_tls_version);
        for n in counters {
            n.store(0, Relaxed);
        }
        self.per_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.logins.reset();
    }

    /// The target's logins and the key of its tokens.
    pub(super) fn logins(&self) -> &Logins {
        &self.logins
    }
}
