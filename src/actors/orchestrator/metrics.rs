//! The orchestrator's part in `/metrics` ([`crate::metrics`]): the gauges are counted from the
//! orchestrator's state when it starts and then every [`GAUGE_REFRESH`]; the task counters are
//! bumped by `set_phase` when an execution first reaches a final state.

use std::time::Duration;

use actix::prelude::*;

use super::Orchestrator;

/// How often the gauges are counted again (a scrape is every 15 s in `deploy/`).
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

impl Orchestrator {
    /// Counts the gauges now and every [`GAUGE_REFRESH`] while this actor runs.
    pub(super) fn keep_gauges(&self, ctx: &mut Context<Self>) {
        self.count_gauges();
        ctx.run_interval(GAUGE_REFRESH, |act, _ctx| act.count_gauges());
    }

    /// Active executions (not in a final state) and connected nodes.
    fn count_gauges(&self) {
        let active = self
            .executions
            .values()
            .filter(|e| !e.state().is_terminal())
            .count();
        let nodes = self.nodes.values().filter(|n| n.up).count();
        self.registry.metrics.set_gauges(active, nodes);
    }
}
