//! Watches: what looks at a task's merged seconds while it runs and may stop the execution
//! early: its thresholds with `abort_on_fail`, and a stress test's breaking conditions. The
//! orchestrator feeds each task's watches every merged second (`Execution::new_seconds`) and
//! stops the execution on the first `Stop`.

use super::TaskAccumulator;
use super::thresholds::{Figures, ThresholdWatch};
use crate::task::stress::StressWatch;

/// How an execution stopped by a watch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAs {
    /// The run did what it was for (a stress test found its breaking point).
    Completed,
    /// A criterion failed and the run was aborted.
    Failed,
}

/// A watch's decision to stop the execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub state: StopAs,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub enum Watch {
    Thresholds(ThresholdWatch),
    /// A stress test's breaking conditions: it ends `completed` once they hold.
    Stress(Box<StressWatch>),
}

impl Watch {
    /// Second `second` (0-based) of the task has just been merged into `acc`.
    pub fn second(&mut self, second: u64, acc: &TaskAccumulator) -> Option<Stop> {
        match self {
            Watch::Thresholds(w) => {
                let so_far = Figures::so_far(acc, w.load_s());
                w.second(second, &so_far).map(|reason| Stop {
                    state: StopAs::Failed,
                    reason,
                })
            }
            Watch::Stress(w) => w.catch_up(acc.timeline()).map(|reason| Stop {
                state: StopAs::Completed,
                reason,
            }),
        }
    }
}
