//! Watches: what looks at a task's merged seconds while it runs and may stop the execution
//! early: its thresholds with `abort_on_fail`, and a task kind's own (a stress test's breaking
//! conditions, [`KindWatch`]). The
//! orchestrator feeds each task's watches every merged second (`Execution::new_seconds`) and
//! stops the execution on the first `Stop`.

use super::thresholds::{Figures, ThresholdWatch};
use super::{TaskAccumulator, TimelinePoint};

/// A task kind's own watch over its merged timeline; the run it stops ends `completed` (it did
/// what it was for).
pub trait KindWatch: std::fmt::Debug + Send {
    /// Reads the seconds of `timeline` it has not seen yet; the reason to stop, once.
    fn catch_up(&mut self, timeline: &[TimelinePoint]) -> Option<String>;
}

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

#[derive(Debug)]
pub enum Watch {
    Thresholds(ThresholdWatch),
    /// A task kind's own (a stress test's breaking conditions): it ends `completed` once it
    /// stops the run.
    Kind(Box<dyn KindWatch>),
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
            Watch::Kind(w) => w.catch_up(acc.timeline()).map(|reason| Stop {
                state: StopAs::Completed,
                reason,
            }),
        }
    }
}
