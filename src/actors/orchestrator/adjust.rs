//! `Adjust`: a live change to a running execution. The execution decides which tasks take it
//! and from which instant (`crate::execution`); here it is stored, sent to every node still
//! taking part in each changed task (their share table, which carries the changes), and
//! announced. A change that makes the run longer (a pause) moves the watchdog.

use std::time::Duration;

use actix::prelude::*;

use super::{LAST_WINDOW_GRACE, Orchestrator};
use crate::clock::unix_ms;
use crate::execution::{AdjustError, ExecutionView};
use crate::messages::cluster::Adjust;
use crate::messages::events::EventKind;
use crate::messages::wire::OrchMsg;

/// How far ahead a change takes effect, so every node of the task has it before it applies
/// (a frame on the cluster link, at most a heartbeat's resend away).
const ADJUST_MARGIN: Duration = Duration::from_millis(500);

impl Orchestrator {
    /// Sends the new share tables of `tasks` of execution `id` (a re-split, a live change)
    /// to every node still taking part from `from_ms` on.
    pub(super) fn send_shares(&self, id: &str, tasks: &[u32], from_ms: u64) {
        let Some(e) = self.executions.get(id) else {
            return;
        };
        for &t in tasks {
            let task = &e.tasks[t as usize];
            let reshare = OrchMsg::Reshare {
                task: e.task_ref(t),
                shares: task.shares.clone(),
            };
            for slot in task.shares.active_from(from_ms) {
                if !task.lost[slot as usize] {
                    self.send_to(&task.shares.nodes[slot as usize], reshare.clone());
                }
            }
        }
    }
}

impl Handler<Adjust> for Orchestrator {
    type Result = Result<ExecutionView, AdjustError>;

    fn handle(&mut self, Adjust { id, request }: Adjust, ctx: &mut Context<Self>) -> Self::Result {
        let e = self.executions.get_mut(&id).ok_or(AdjustError::NotFound)?;
        let now = unix_ms();
        let start = e.started_at_ms.unwrap_or(now);
        let from_ms = crate::execution::change_instant(start, now, ADJUST_MARGIN);
        let before = e.duration();
        let changed = e.adjust(&request, from_ms, now)?;
        let after = e.duration();
        let views: Vec<_> = e
            .adjustments()
            .into_iter()
            .filter(|a| a.asked_at_unix_ms == now && changed.contains(&a.task))
            .collect();
        tracing::info!(execution = %id, from_ms, by = %request.by, change = ?request.change, "live change");
        self.send_shares(&id, &changed, from_ms);
        self.store_plan(&id, ctx);
        for adjustment in views {
            self.publish(EventKind::ExecutionAdjusted {
                execution_id: id.clone(),
                adjustment,
            });
        }
        if after > before {
            let end = start + after.as_millis() as u64;
            let watchdog = Duration::from_millis(end.saturating_sub(now))
                + self.settings.load_generation.drain_timeout
                + LAST_WINDOW_GRACE;
            self.arm_watchdog(&id, watchdog, ctx);
        }
        let e = &self.executions[&id];
        Ok(e.view(unix_ms()))
    }
}
