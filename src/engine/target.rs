//! What the engine sends: each target's request template, and a task's [`Traffic`] (which
//! targets, at which rate, by which model). The plan's readers build them; the sender and the
//! workers run them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::engine::flow::Flow;
use crate::engine::schedule::{Arrivals, LoadProfile, Model, RatePlan};
use crate::stats::request::{ITERATION, RequestNames};

/// One endpoint of a load task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The name its requests are counted under: the plan's `name`, else `METHOD /path`.
    pub name: String,
    pub url: Url,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub weight: u32,
    pub timeout: Duration,
    pub expected_status: ExpectedStatus,
    pub expected_response_time: Option<Duration>,
    pub follow_redirects: bool,
    /// How an `https` URL is secured (the task's `tls`, overridden key by key by the
    /// target's); unused for `http`.
    pub tls: Tls,
    /// `http_version`: the task's, or the target's own.
    pub http_version: HttpVersion,
}

/// A PEM file named in a plan, read when the plan is read, so a node needs no files. In JSON
/// it is its path only (serde in `crate::plan::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// The path as the plan gave it, for messages and reports.
    pub path: String,
    /// The file's contents.
    pub pem: String,
}

/// `tls: {ca, insecure, cert, key, server_name}` of a task or a target. In JSON the plan's
/// keys, files by their paths (serde in `crate::plan::tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Roots trusted beside the system's.
    pub ca: Option<Pem>,
    /// `insecure: true`: no verification of the server's certificate (the report says so).
    pub insecure: bool,
    /// A client certificate chain and its key, for mutual TLS.
    pub identity: Option<Identity>,
    /// The name sent in SNI and verified, instead of the URL's host.
    pub server_name: Option<String>,
}

/// A client certificate chain and its private key (mTLS). The key is sent to the nodes on
/// the cluster's wire and never shown in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cert: Pem,
    pub key: Pem,
}

/// `http_version`: which HTTP a target is spoken to in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it by ALPN over TLS; HTTP/1.1 in clear.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "1.1")]
    Http1,
    /// Over TLS by ALPN; in clear, h2c with prior knowledge.
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    pub const NAMES: [&'static str; 3] = ["auto", "1.1", "2"];

    pub fn name(self) -> &'static str {
        match self {
            HttpVersion::Auto => "auto",
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }

    pub fn from_name(name: &str) -> Option<HttpVersion> {
        HttpVersion::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| [HttpVersion::Auto, HttpVersion::Http1, HttpVersion::Http2][i])
    }
}

/// Which status codes count as success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedStatus {
    /// 200..=399, the default.
    SuccessOrRedirect,
    Codes(Vec<u16>),
}

impl ExpectedStatus {
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            ExpectedStatus::SuccessOrRedirect => (200..400).contains(&code),
            ExpectedStatus::Codes(codes) => codes.contains(&code),
        }
    }
}

/// The traffic of a load task: its targets and when requests go to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    /// The requests: the task's `targets`, or its flow's request steps (`Flow::targets`).
    pub targets: Vec<Target>,
    /// A user flow: each arrival (open model) or each user's turn (closed) runs it once.
    pub flow: Option<Box<Flow>>,
    pub profile: LoadProfile,
    pub arrivals: Arrivals,
    pub model: Model,
    /// Open model: the cap on requests in flight. Closed model: the number of users.
    pub concurrent_users: u32,
    pub think_time: Duration,
    /// `connections`: the sockets a node opens to the targets at most (HTTP/2 multiplexes
    /// streams over them); `None` lets the engine choose (one per user for HTTP/1.1).
    pub connections: Option<u32>,
}

impl Traffic {
    /// The task's request names, one slot per distinct target name.
    /// A flow's groups follow its requests (method `GROUP`), then its iterations (the row
    /// [`ITERATION`], method `FLOW`).
    pub fn request_names(&self) -> RequestNames {
        let groups = self
            .flow
            .as_ref()
            .map(|f| f.group_names())
            .unwrap_or_default();
        let targets = self
            .targets
            .iter()
            .map(|t| (t.name.as_str(), t.method.as_str()));
        let groups = groups.iter().map(|g| (g.as_str(), "GROUP"));
        let iterations = self.flow.as_ref().map(|_| (ITERATION, "FLOW"));
        RequestNames::new(targets.chain(groups).chain(iterations))
    }

    pub fn rate_plan(&self) -> RatePlan {
        RatePlan::from_profile(&self.profile)
    }
}
