//! A standalone run: an orchestrator and one node in this process, joined by the in-process
//! cluster link (the same protocol, encoding and actors as a real cluster), the plan submitted
//! as an execution, live progress each second, and the report at the end.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde_json::Value;

use crate::actors::orchestrator::Orchestrator;
use crate::actors::store::Store;
use crate::app::{local_connector, start_node, start_orchestrator_on};
use crate::execution::{ExecutionView, State};
use crate::messages::cluster::{BuildReport, Cancel, GetExecution, Submit};
use crate::settings::{LoadSettings, Settings};
use crate::task::TestPlan;
use crate::task::report::Report;

/// The run so far, once a second.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub duration: Duration,
    /// Requests planned and completed in the latest complete second (all tasks).
    pub planned_rps: f64,
    pub achieved_rps: f64,
    /// Completed per second over the seconds the load has run so far, as the report counts
    /// it (`stats::achieved_rps`).
    pub average_rps: f64,
    /// Corrected latency so far (the worst task's).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub completed: u64,
    pub errors: u64,
    /// A task runs a flow: its plan counts iterations, not requests.
    pub flow: bool,
}

impl Progress {
    fn from_view(elapsed: Duration, v: &ExecutionView) -> Progress {
        let mut p = Progress {
            elapsed,
            duration: Duration::from_secs_f64(v.duration_s),
            average_rps: v.achieved_rps,
            ..Progress::default()
        };
        p.flow = v.tasks.iter().any(|t| t.iterations.is_some());
        for t in v.tasks.iter().map(|t| &t.figures) {
            if let Some(last) = &t.last_second {
                p.planned_rps += last.planned;
                p.achieved_rps += last.completed as f64;
            }
            p.p50_ms = p.p50_ms.max(t.latency_ms.p50);
            p.p99_ms = p.p99_ms.max(t.latency_ms.p99);
            p.completed += t.completed;
            p.errors += t.errors;
        }
        p
    }
}

/// How often the run looks at its execution.
const POLL: Duration = Duration::from_millis(100);
/// How long after a second ends its windows are expected in.
const WINDOW_SETTLE_MS: u64 = 150;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the in-process orchestrator: {0}")]
    Start(String),
    #[error("the execution was refused: {0}")]
    Submit(String),
    #[error("the execution failed: {0}")]
    Failed(String),
}

/// Runs every task of `plan` (validated from `doc`) and returns the report. Must run inside
/// an actix `System`. `on_progress` is called about once a second. When `stop` turns true the
/// execution is cancelled: no more requests start, those in flight finish, and the report
/// covers what ran (`interrupted`).
pub async fn run_plan(
    doc: &Value,
    plan: &TestPlan,
    settings: &Settings,
    stop: tokio::sync::watch::Receiver<bool>,
    on_progress: impl FnMut(&Progress),
) -> Result<Report, RunError> {
    let settings = Arc::new(settings.clone());
    let store = Store::start_in_memory().map_err(|e| RunError::Start(e.to_string()))?;
    let orchestrator = start_orchestrator_on(settings.clone(), store);
    let registry = orchestrator.registry.clone();
    let _node = start_node(
        settings.clone(),
        "local".into(),
        String::new(),
        Some(local_connector(registry.clone())),
    );
    let orch = registry
        .orchestrator()
        .ok_or_else(|| RunError::Start("no orchestrator".into()))?;
    let id = orch
        .send(Submit {
            barrier: None,
            request: doc.clone(),
            plan: plan.clone(),
        })
        .await
        .map_err(|e| RunError::Start(e.to_string()))?
        .map_err(|e| RunError::Submit(e.to_string()))?;
    let cancelled_at_ms = match watch(&orch, &id, stop, on_progress).await? {
        Watched::Aborted(report) => return Ok(*report),
        Watched::Over { cancelled_at_ms } => cancelled_at_ms,
    };
    let mut report = orch
        .send(BuildReport(id))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| RunError::Start("the orchestrator lost the execution".into()))?;
    if let Some(cancelled_at_ms) = cancelled_at_ms {
        // The time that ran: from the common start to the cancellation.
        let ran_ms = cancelled_at_ms.saturating_sub(report.started_at_ms);
        report.interrupt(ran_ms as f64 / 1000.0);
    }
    Ok(report)
}

/// How a watched execution ended.
enum Watched {
    /// Failed, with a report to show (a threshold aborted it).
    Aborted(Box<Report>),
    /// Over: finished, or cancelled at this time.
    Over { cancelled_at_ms: Option<u64> },
}

/// Watches execution `id` until it is over: cancels it when `stop` turns true, and calls
/// `on_progress` once a second.
async fn watch(
    orch: &Addr<Orchestrator>,
    id: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Watched, RunError> {
    let mut cancelled_at_ms = None;
    // Nobody can stop the run any more (the sender is gone): stop listening.
    let mut unstoppable = false;
    // Seconds of the run shown so far.
    let mut shown = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            changed = stop.changed(), if cancelled_at_ms.is_none() && !unstoppable => {
                unstoppable = changed.is_err();
                if changed.is_ok() && *stop.borrow() {
                    cancelled_at_ms = Some(crate::clock::unix_ms());
                    let _ = orch.send(Cancel(id.to_string())).await;
                }
                continue;
            }
        }
        let Ok(Some(view)) = orch.send(GetExecution(id.to_string())).await else {
            break;
        };
        if view.state == State::Failed {
            // A run aborted by a threshold has a report to show; any other failure has not.
            let report = orch.send(BuildReport(id.to_string())).await.ok().flatten();
            return match report {
                Some(r) if r.summary.stopped_by.is_some() => Ok(Watched::Aborted(Box::new(r))),
                _ => Err(RunError::Failed(view.reason.unwrap_or_default())),
            };
        }
        // A cancelled execution is over once its nodes have reported (its end time is set).
        if view.state.is_terminal() && view.finished_at_ms.is_some() {
            break;
        }
        // Once a second, when the second's windows are in.
        if let (State::Running, Some(start)) = (view.state, view.started_at_ms) {
            let elapsed = crate::clock::unix_ms().saturating_sub(start);
            if elapsed / 1000 > shown && elapsed % 1000 >= WINDOW_SETTLE_MS {
                shown = elapsed / 1000;
                on_progress(&Progress::from_view(Duration::from_millis(elapsed), &view));
            }
        }
    }
    Ok(Watched::Over { cancelled_at_ms })
}

/// The settings of a standalone run with these load settings.
pub fn standalone_settings(load: &LoadSettings) -> Settings {
    Settings {
        load_generation: load.clone(),
        ..Settings::defaults()
    }
}
