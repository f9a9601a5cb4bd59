//! Live changes to a running execution (`PATCH /api/executions/{id}`, MCP's
//! `adjust_execution`): which tasks take a change, from which instant, and what the
//! execution shows of them. The change itself is the engine's ([`adjust`]): it goes into each
//! task's share table, which every node of the task reads.

use serde::Serialize;

use super::{Execution, Phase, State};
use crate::engine::schedule::adjust::{self, Adjustment, Change};

/// A change asked of a running execution.
#[derive(Debug, Clone)]
pub struct AdjustRequest {
    /// The task's index; `None`: every task that takes the change.
    pub task: Option<u32>,
    pub change: Change,
    /// Who asks (`rest`, `mcp`, with the client's address when known).
    pub by: String,
    /// The highest rate the changed plans may ask for (MCP's `mcp.max_rps`).
    pub max_rps: Option<f64>,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AdjustError {
    NotFound,
    /// Only a running execution changes.
    NotRunning(State),
    /// The change does not fit: the request's field, and why.
    Refused {
        field: &'static str,
        message: String,
    },
}

/// One change as the execution's view and report show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AdjustmentView {
    pub task: u32,
    /// Seconds after the start from which it holds.
    pub at_s: f64,
    /// The same instant, milliseconds since the Unix epoch.
    pub from_unix_ms: u64,
    pub change: Change,
    pub by: String,
    /// When it was asked for, milliseconds since the Unix epoch.
    pub asked_at_unix_ms: u64,
}

impl Execution {
    /// Applies `req` from `from_ms` after the start (a future instant: see
    /// [`adjust::change_instant`]) to the tasks it is for; returns their indices. Nothing
    /// changes when any of them refuses.
    pub fn adjust(
        &mut self,
        req: &AdjustRequest,
        from_ms: u64,
        now_unix_ms: u64,
    ) -> Result<Vec<u32>, AdjustError> {
        if self.phase != Phase::Running {
            return Err(AdjustError::NotRunning(self.state()));
        }
        let chosen: Vec<u32> = match req.task {
            Some(i) if i as usize >= self.tasks.len() => {
                return Err(AdjustError::Refused {
                    field: "task",
                    message: format!(
                        "task {i} does not exist: the execution has {} task(s), from 0",
                        self.tasks.len()
                    ),
                });
            }
            Some(i) => vec![i],
            None => (0..self.tasks.len() as u32)
                .filter(|&i| self.tasks[i as usize].work.takes(&req.change).is_ok())
                .collect(),
        };
        let field = change_field(&req.change);
        let first = req.task.unwrap_or(0) as usize;
        if chosen.is_empty() {
            let why = self.tasks.get(first).map(|t| t.work.takes(&req.change));
            let message = match why {
                Some(Err(why)) => format!("no task takes this change: {why}"),
                _ => "no task takes this change".into(),
            };
            return Err(AdjustError::Refused { field, message });
        }
        let adjustment = Adjustment {
            from_ms,
            change: req.change,
            by: req.by.clone(),
            at_unix_ms: now_unix_ms,
        };
        for &i in &chosen {
            let task = &self.tasks[i as usize];
            if let Err(why) = task.work.takes(&req.change) {
                let message = format!("task {i} ({}): {why}", task.name);
                return Err(AdjustError::Refused { field, message });
            }
            let mut list = task.shares.adjustments.clone();
            list.push(adjustment.clone());
            let peak = task.work.peak_from(&list, from_ms);
            if let (Some(peak), Some(max)) = (peak, req.max_rps)
                && peak > max + 1e-9
            {
                let message = format!(
                    "task {i} ({}) would ask for {peak:.1} rps, over this server's limit of \
                     {max} (mcp.max_rps)",
                    task.name
                );
                return Err(AdjustError::Refused { field, message });
            }
        }
        for &i in &chosen {
            let task = &mut self.tasks[i as usize];
            task.shares.adjustments.push(adjustment.clone());
            task.work.replan(&task.shares.adjustments, &mut task.acc);
        }
        Ok(chosen)
    }

    /// Every task's live changes, in the order they were made.
    pub fn adjustments(&self) -> Vec<AdjustmentView> {
        let start = self.started_at_ms.unwrap_or(0);
        let mut all: Vec<AdjustmentView> = self
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.shares.adjustments.iter().map(move |a| AdjustmentView {
                    task: i as u32,
                    at_s: a.from_ms as f64 / 1000.0,
                    from_unix_ms: start + a.from_ms,
                    change: a.change,
                    by: a.by.clone(),
                    asked_at_unix_ms: a.at_unix_ms,
                })
            })
            .collect();
        all.sort_by_key(|a| (a.asked_at_unix_ms, a.task));
        all
    }
}

/// The request field a change came from, for errors.
fn change_field(change: &Change) -> &'static str {
    match change {
        Change::RateFactor(_) => "rate_factor",
        Change::Rates { .. } => "base_rps",
        Change::ConcurrentUsers(_) => "concurrent_users",
        Change::Paused(_) => "paused",
    }
}

/// The instant a change asked for `now_unix_ms` holds from, in milliseconds after a start
/// at `start_unix_ms`: `margin` later, on a block boundary.
pub fn change_instant(start_unix_ms: u64, now_unix_ms: u64, margin: std::time::Duration) -> u64 {
    adjust::change_instant(now_unix_ms.saturating_sub(start_unix_ms), margin)
}
