//! An execution's report and the state it ends in, from its tasks' merged windows.

use super::{ExecTask, Execution, Halt, Phase, State};
use crate::stats::report::TaskInfo;
use crate::stats::watch::StopAs;
use crate::task::report::Report;

impl Execution {
    /// How a watch stopped the run, and when (ms since the Unix epoch), if one did.
    pub fn watch_stop(&self) -> Option<(StopAs, u64)> {
        match self.phase.halt()? {
            Halt::Watch { ends_as, at_ms } => Some((ends_as, at_ms)),
            _ => None,
        }
    }

    /// Seconds from the start to a cancel or a watch's stop, if the run was stopped.
    pub fn stopped_after_s(&self) -> Option<f64> {
        let at = self.phase.halt()?.at_ms()?;
        Some(at.saturating_sub(self.started_at_ms?) as f64 / 1000.0)
    }

    /// A task's facts for its report, its time cut at the stop of a stopped run.
    pub(super) fn task_info(&self, t: &ExecTask) -> TaskInfo {
        let mut info = t.info();
        if let Some(ran) = self.stopped_after_s() {
            info.duration_s = info.duration_s.min(ran);
        }
        info
    }

    pub fn report(&self) -> Report {
        let tasks = self
            .tasks
            .iter()
            .map(|t| (self.task_info(t), &t.acc, t.section()))
            .collect();
        let started = self.started_at_ms.unwrap_or(0);
        let mut report = Report::build(self.name.clone(), started, tasks);
        for (r, t) in report.tasks.iter_mut().zip(&self.tasks) {
            r.adjustments = t.shares.adjustments.clone();
        }
        if let Some(ran) = self.stopped_after_s()
            && self.watch_stop().is_none()
            && ran < self.duration().as_secs_f64()
        {
            // Cancelled before its plan ended: the figures cover the time that ran.
            report.interrupt(ran);
        }
        if let Some((_, at_ms)) = self.watch_stop() {
            report.interrupt(at_ms.saturating_sub(started) as f64 / 1000.0);
            report.summary.stopped_by = self.reason.clone();
            // What the watch stopped was meant not to run: "not sent" counts only the seconds
            // that ran.
            let mut not_sent = 0;
            for t in &mut report.tasks {
                if t.not_sent.is_some() {
                    let planned: f64 = t.timeline.iter().map(|p| p.planned).sum();
                    let n = (planned.round() as u64).saturating_sub(t.sent_requests);
                    t.not_sent = Some(n);
                    not_sent += n;
                }
            }
            report.summary.not_sent = not_sent;
        }
        report
    }

    /// The state to end in once every task is done, and its reason, decided over the final
    /// accounting (`report`, from [`Execution::report`]): a stop by a watch ends as the watch
    /// said (with its reason); a cancel or a failure stays what it is; a run that ended by its
    /// plan and did not send everything it planned (`not_sent > 0`, whatever the cause: a lost
    /// node, a paused node, a link or orchestrator outage, arrivals that never got a slot) or
    /// that lost a node ends `completed_degraded` with the reason, never `completed`.
    pub fn final_state(&self, report: &Report) -> (State, Option<String>) {
        match self.phase {
            // What a watch stopped was meant not to run, and the second it stopped in ran
            // only in part: its state is the watch's.
            Phase::Stopping(Halt::Watch { ends_as, .. })
            | Phase::Ended {
                halt: Some(Halt::Watch { ends_as, .. }),
                ..
            } => {
                let state = match ends_as {
                    StopAs::Failed => State::Failed,
                    StopAs::Completed => State::Completed,
                };
                return (state, self.reason.clone());
            }
            // A cancel or a failure stays what it is.
            Phase::Stopping(_) => return (self.state(), self.reason.clone()),
            _ => {}
        }
        let mut why = Vec::new();
        let lost: Vec<&str> = report
            .tasks
            .iter()
            .flat_map(|t| t.nodes.iter().filter(|n| n.lost))
            .map(|n| n.node_id.as_str())
            .collect();
        if !lost.is_empty() {
            let mut lost = lost;
            lost.sort_unstable();
            lost.dedup();
            why.push(format!("node(s) lost: {}", lost.join(", ")));
        }
        let s = &report.summary;
        if s.not_sent > 0 {
            why.push(format!(
                "{} of {} planned requests were not sent",
                s.not_sent, s.planned_requests
            ));
        }
        let degraded = self.degraded || !why.is_empty();
        if degraded && why.is_empty() && self.store_note.is_none() {
            why.push("a node was lost".into());
        }
        why.extend(self.store_note.iter().cloned());
        if !degraded {
            return (
                State::Completed,
                self.reason.clone().or(self.store_note.clone()),
            );
        }
        (State::CompletedDegraded, Some(why.join("; ")))
    }
}
