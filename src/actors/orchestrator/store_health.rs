//! The orchestrator's side of a store that cannot write (a full disk): every second it has the
//! store try the writes it keeps in memory again (`RetryPending`) and keeps the answer; an
//! execution that had writes refused says so in its reason when it ends, and ends degraded
//! while any of its windows are not stored.

use std::time::Duration;

use actix::prelude::*;

use super::Orchestrator;
use crate::messages::store::RetryPending;

/// How often the store tries its kept writes again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Orchestrator {
    /// Has the store retry its kept writes every [`RETRY_EVERY`] while this actor runs.
    pub(super) fn keep_store_writing(&self, ctx: &mut Context<Self>) {
        ctx.run_interval(RETRY_EVERY, |act, ctx| {
            // One at a time: a slow disk must not pile retries up in the store's mailbox.
            if act.store_retrying {
                return;
            }
            act.store_retrying = true;
            ctx.spawn(
                act.store
                    .send(RetryPending)
                    .into_actor(act)
                    .map(|res, act, _| {
                        act.store_retrying = false;
                        if let Ok(status) = res {
                            act.store_status = status;
                        }
                    }),
            );
        });
    }

    /// Notes the store's trouble with execution `id` (if it had any) for its final reason, and
    /// degrades it while some of its windows are not in the store.
    pub(super) fn note_store_trouble(&mut self, id: &str) {
        let s = &self.store_status;
        let Some(error) = s.troubled.get(id) else {
            return;
        };
        let dir = s.data_dir.as_deref().unwrap_or("memory");
        let waiting = s.pending_windows.get(id).copied().unwrap_or(0);
        let dropped = s.dropped_windows.get(id).copied().unwrap_or(0);
        let still = s.error.is_some() || waiting > 0 || dropped > 0;
        let note = if still {
            format!(
                "the store in {dir} cannot write ({error}): {waiting} of this execution's windows \
                 wait in memory and are retried every second, {dropped} were past the memory \
                 bound; the report counts every window, a restart before they are stored loses \
                 them"
            )
        } else {
            format!(
                "the store in {dir} could not write for a while ({error}); every write was kept \
                 in memory and stored later"
            )
        };
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        e.degraded |= still;
        e.store_note = Some(note);
    }
}
