//! What the engine sends: each target's request template, and a task's [`Traffic`] (which
//! targets, at which rate, by which model). The plan's readers build them; the sender and the
//! workers run them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::engine::schedule::{Arrivals, LoadProfile, Model, RatePlan};

/// One endpoint of a load task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub url: Url,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub weight: u32,
    pub timeout: Duration,
    pub expected_status: ExpectedStatus,
    pub expected_response_time: Option<Duration>,
    pub follow_redirects: bool,
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
    pub targets: Vec<Target>,
    pub profile: LoadProfile,
    pub arrivals: Arrivals,
    pub model: Model,
    /// Open model: the cap on requests in flight. Closed model: the number of users.
    pub concurrent_users: u32,
    pub think_time: Duration,
}

impl Traffic {
    pub fn rate_plan(&self) -> RatePlan {
        RatePlan::from_profile(&self.profile)
    }
}
