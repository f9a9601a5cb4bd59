//! Checks registered from code (an embedding program's own probe: a database ping, a queue's
//! depth): an async function that answers `Ok(message)` when healthy and `Err(why)` when not,
//! run by the node's monitor like a configured check, within its timeout and at its interval.
//! Its id is `code:<name>`; a failure is critical, as for every custom check.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::LocalBoxFuture;

use super::{CheckKind, CheckResult, Status};

type ProbeFn = dyn Fn() -> LocalBoxFuture<'static, Result<String, String>> + Send + Sync;

/// A check whose probe is a function of the program that registers it.
///
/// ```
/// use mcp_testing::embed::CodeCheck;
/// use std::time::Duration;
/// let check = CodeCheck::new("database", || async {
///     // Ping the database here.
///     Ok::<_, String>("connected".to_string())
/// })
/// .timeout(Duration::from_secs(5))
/// .interval(Duration::from_secs(60));
/// # actix_rt::System::new().block_on(async {
/// let result = check.run().await;
/// assert_eq!(result.check_id, "code:database");
/// assert_eq!(result.message, "connected");
/// # });
/// ```
#[derive(Clone)]
pub struct CodeCheck {
    /// Unique among the node's code checks (registering a name again replaces the check).
    pub name: String,
    /// A probe that has not answered within this long failed.
    pub timeout: Duration,
    /// Runs every this long; `None`: every round of `health_monitoring.check_interval`.
    pub interval: Option<Duration>,
    probe: Arc<ProbeFn>,
}

impl std::fmt::Debug for CodeCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCheck")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl CodeCheck {
    /// A check named `name` (10 s timeout, every round) running `probe`. The probe is called on
    /// the monitor's thread; its future need not be `Send`, and must not block: the timeout
    /// can only end a probe that awaits (run blocking work with `tokio::task::spawn_blocking`).
    /// A probe that panics fails its check.
    pub fn new<F, Fut>(name: impl Into<String>, probe: F) -> CodeCheck
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + 'static,
    {
        CodeCheck {
            name: name.into(),
            timeout: Duration::from_secs(10),
            interval: None,
            probe: Arc::new(move || Box::pin(probe())),
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> CodeCheck {
        self.timeout = timeout;
        self
    }

    pub fn interval(mut self, interval: Duration) -> CodeCheck {
        self.interval = Some(interval);
        self
    }

    /// Checks the name (`[a-z_][a-z0-9_]{0,63}`, as a custom metric's) and the times (more
    /// than zero); every problem names its field.
    pub fn validate(&self) -> Result<(), crate::validate::FieldErrors> {
        let mut e = crate::validate::FieldErrors::default();
        if !super::custom::valid_name(&self.name) {
            let n = &self.name;
            e.push(
                "name",
                format!("expected [a-z_][a-z0-9_]{{0,63}}, got {n:?}"),
            );
        }
        if self.timeout.is_zero() {
            e.push("timeout", "must be more than 0");
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            e.push("interval", "must be more than 0");
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }

    /// The check's id in reports and alerts.
    pub fn id(&self) -> String {
        format!("{}:{}", CheckKind::Code.as_str(), self.name)
    }

    /// Runs the probe once, within the timeout; its time is the result's `value` (ms).
    pub async fn run(&self) -> CheckResult {
        let started = Instant::now();
        // A probe that panics fails its check; it must not take the monitor (and every other
        // check and metric registered with it) down.
        let probe = std::panic::catch_unwind(AssertUnwindSafe(|| (self.probe)()));
        let outcome = match probe {
            Ok(future) => {
                let caught = AssertUnwindSafe(future).catch_unwind();
                tokio::time::timeout(self.timeout, caught).await
            }
            Err(panic) => Ok(Err(panic)),
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (status, message, value) = match outcome {
            Ok(Ok(Ok(what))) => (Status::Healthy, what, Some(ms)),
            Ok(Ok(Err(why))) => (Status::Critical, why, Some(ms)),
            Ok(Err(panic)) => (
                Status::Critical,
                format!("the check panicked: {}", panic_message(&*panic)),
                None,
            ),
            Err(_) => (
                Status::Critical,
                format!("no answer within {:?}", self.timeout),
                None,
            ),
        };
        CheckResult {
            check_id: self.id(),
            name: self.name.clone(),
            kind: CheckKind::Code,
            status,
            message,
            unit: value.map(|_| "ms".to_string()),
            value,
        }
    }
}

/// A panic's message, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_probe_passes_fails_or_times_out() {
        let ok = CodeCheck::new("db", || async { Ok("pong".to_string()) });
        let r = ok.run().await;
        assert_eq!(
            (r.check_id.as_str(), r.status),
            ("code:db", Status::Healthy)
        );
        assert_eq!(r.message, "pong");
        let bad = CodeCheck::new("db", || async { Err("refused".to_string()) });
        assert_eq!(bad.run().await.status, Status::Critical);
        let slow = CodeCheck::new("db", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(String::new())
        })
        .timeout(Duration::from_secs(1));
        let r = slow.run().await;
        assert_eq!((r.status, r.value), (Status::Critical, None));
        assert!(r.message.contains("no answer"), "{}", r.message);
    }

    #[test]
    fn names_and_times_are_checked() {
        let ok = || async { Ok(String::new()) };
        assert!(CodeCheck::new("database_ping", ok).validate().is_ok());
        let bad = CodeCheck::new("bad name!", ok).timeout(Duration::ZERO);
        let e = bad.validate().unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["name", "timeout"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_panics_fails_its_check() {
        let in_future = CodeCheck::new("boom", || async {
            if true {
                panic!("the pool is gone");
            }
            Ok(String::new())
        });
        let r = in_future.run().await;
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.message, "the check panicked: the pool is gone");
        #[allow(unreachable_code)]
        let in_call = CodeCheck::new("boom", || -> std::future::Ready<Result<String, String>> {
            panic!("before the future")
        });
        let r = in_call.run().await;
        assert_eq!(r.message, "the check panicked: before the future");
    }
}
