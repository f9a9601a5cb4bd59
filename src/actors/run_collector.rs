//! `RunCollector`: merges the one-second windows of every shard of every task of a run into
//! live figures and, when every shard has finished, the final report. Takes: `WindowReport`,
//! `GetProgress`, `GetReport`.

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::messages::load::{GetProgress, GetReport, WindowReport};
use crate::stats::TaskAccumulator;
use crate::stats::report::{Report, TaskInfo};

/// One task as the collector tracks it.
pub struct CollectedTask {
    pub info: TaskInfo,
    pub acc: TaskAccumulator,
}

pub struct RunCollector {
    name: String,
    started_at_ms: u64,
    tasks: Vec<CollectedTask>,
    done: Option<oneshot::Sender<()>>,
}

impl RunCollector {
    /// `done` fires once every shard of every task has sent its last window.
    pub fn new(
        name: String,
        started_at_ms: u64,
        tasks: Vec<CollectedTask>,
        done: oneshot::Sender<()>,
    ) -> Self {
        RunCollector {
            name,
            started_at_ms,
            tasks,
            done: Some(done),
        }
    }
}

impl Actor for RunCollector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Windows arrive once per second per shard; a small mailbox still absorbs bursts.
        ctx.set_mailbox_capacity(256);
    }
}

impl Handler<WindowReport> for RunCollector {
    type Result = ();

    fn handle(&mut self, msg: WindowReport, _ctx: &mut Context<Self>) {
        let Some(task) = self.tasks.get_mut(msg.task_id) else {
            tracing::warn!(task = msg.task_id, "window for an unknown task dropped");
            return;
        };
        task.acc.add(msg.shard, msg.window, msg.last);
        if self.tasks.iter().all(|t| t.acc.is_done())
            && let Some(done) = self.done.take()
        {
            let _ = done.send(());
        }
    }
}

impl Handler<GetProgress> for RunCollector {
    type Result = MessageResult<GetProgress>;

    fn handle(&mut self, _: GetProgress, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.tasks.iter().map(|t| t.acc.snapshot()).collect())
    }
}

impl Handler<GetReport> for RunCollector {
    type Result = MessageResult<GetReport>;

    fn handle(&mut self, _: GetReport, _ctx: &mut Context<Self>) -> Self::Result {
        let tasks = self
            .tasks
            .iter()
            .map(|t| (t.info.clone(), &t.acc))
            .collect();
        MessageResult(Report::build(self.name.clone(), self.started_at_ms, tasks))
    }
}
