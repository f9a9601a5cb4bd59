//! `ResourceAllocator`: owns the cluster's resource pool (a [`Ledger`]) and the recipients
//! that hear what becomes of each allocation. Supervises nothing. Decisions are the ledger's;
//! this actor reads the clock, arms a timer for the ledger's next deadline (and sweeps every
//! `cleanup_interval` besides) and tells owners when a queued request is granted or an
//! allocation expires or is released. Takes: `Allocate`, `Confirm`, `Deallocate`,
//! `GetPoolStatus`, `GetAllocation`, `SetNodeCapacity`, `RemoveNode`, `AuditPool`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::actors::supervisor::{ChildExited, ExitReason};

use crate::messages::resources::{
    Allocate, AllocationEvent, AuditPool, Confirm, Deallocate, GetAllocation, GetPoolStatus,
    RemoveNode, SetNodeCapacity,
};
use crate::resources::{
    AllocError, AllocationState, Confirmed, Effects, EndReason, Ledger, Outcome, Released,
    UnknownAllocation,
};
use crate::validate::FieldErrors;

/// The shortest sweep period (a zero interval would spin).
const MIN_SWEEP: Duration = Duration::from_millis(1);

pub struct ResourceAllocator {
    ledger: Ledger,
    cleanup_interval: Duration,
    /// Per allocation id, who hears its later events.
    notify: HashMap<String, Recipient<AllocationEvent>>,
    /// The armed deadline timer and the deadline it is for.
    timer: Option<(Instant, SpawnHandle)>,
    supervisor: Option<Recipient<ChildExited>>,
}

impl ResourceAllocator {
    /// An empty pool: unconfirmed grants and waiting requests last `allocation_timeout`;
    /// a sweep runs every `cleanup_interval` besides the deadline timer.
    pub fn new(allocation_timeout: Duration, cleanup_interval: Duration) -> Self {
        ResourceAllocator {
            ledger: Ledger::new(allocation_timeout),
            cleanup_interval: cleanup_interval.max(MIN_SWEEP),
            notify: HashMap::new(),
            timer: None,
            supervisor: None,
        }
    }

    /// Reports its exit to `supervisor`, which builds a new (empty) pool; the orchestrator
    /// offers its nodes' capacity again with their next health reports.
    pub fn supervised(mut self, supervisor: Recipient<ChildExited>) -> Self {
        self.supervisor = Some(supervisor);
        self
    }

    /// The clock, through tokio so a paused test clock governs it too.
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// Tells owners what a change did, then re-arms the timer.
    fn apply(&mut self, effects: Effects, ctx: &mut Context<Self>) {
        for grant in effects.granted {
            tracing::info!(allocation = %grant.allocation_id, requester = %grant.requester_id, "queued allocation granted");
            if let Some(r) = self.notify.get(&grant.allocation_id) {
                let id = grant.allocation_id.clone();
                self.tell(id, r.clone(), AllocationEvent::Granted(grant));
            }
        }
        for ended in effects.ended {
            tracing::info!(allocation = %ended.allocation_id, requester = %ended.requester_id, reason = %ended.reason, "allocation ended");
            let Some(r) = self.notify.remove(&ended.allocation_id) else {
                continue;
            };
            let allocation_id = ended.allocation_id;
            let event = match ended.reason {
                EndReason::Expired | EndReason::QueueTimeout => AllocationEvent::Expired {
                    allocation_id: allocation_id.clone(),
                },
                reason => AllocationEvent::Released {
                    allocation_id: allocation_id.clone(),
                    reason,
                },
            };
            self.tell(allocation_id, r, event);
        }
        self.rearm(ctx);
    }

    /// Sends an event without waiting: a full mailbox loses it (logged), a closed one
    /// forgets its recipient.
    fn tell(&mut self, id: String, r: Recipient<AllocationEvent>, event: AllocationEvent) {
        match r.try_send(event) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                tracing::warn!(allocation = %id, "allocation event lost: recipient's mailbox full")
            }
            Err(SendError::Closed(_)) => {
                self.notify.remove(&id);
            }
        }
    }

    /// Arms the timer for the ledger's next deadline (if it is not armed for it already).
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let next = self.ledger.next_deadline();
        if let Some((at, handle)) = self.timer {
            if Some(at) == next {
                return;
            }
            ctx.cancel_future(handle);
            self.timer = None;
        }
        if let Some(at) = next {
            let wait = at.saturating_duration_since(Self::now());
            let handle = ctx.run_later(wait, |act, ctx| {
                act.timer = None;
                act.sweep(ctx);
            });
            self.timer = Some((at, handle));
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let effects = self.ledger.expire(Self::now());
        self.apply(effects, ctx);
    }
}

impl Actor for ResourceAllocator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.cleanup_interval, |act, ctx| act.sweep(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "resource_allocator",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<Allocate> for ResourceAllocator {
    type Result = Result<Outcome, AllocError>;

    fn handle(&mut self, msg: Allocate, ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.request.allocation_id.clone();
        let outcome = self.ledger.allocate(&msg.request, Self::now());
        match &outcome {
            Ok(o) => {
                tracing::debug!(allocation = %id, queued = matches!(o, Outcome::Queued { .. }), "allocation accepted");
                if let Some(r) = msg.notify {
                    self.notify.insert(id, r);
                }
                self.rearm(ctx);
            }
            Err(e) => tracing::debug!(allocation = %id, error = %e, "allocation refused"),
        }
        outcome
    }
}

impl Handler<Confirm> for ResourceAllocator {
    type Result = Result<Confirmed, UnknownAllocation>;

    fn handle(&mut self, Confirm(id): Confirm, ctx: &mut Context<Self>) -> Self::Result {
        let r = self.ledger.confirm(&id);
        self.rearm(ctx);
        r
    }
}

impl Handler<Deallocate> for ResourceAllocator {
    type Result = Result<Released, UnknownAllocation>;

    fn handle(&mut self, Deallocate(id): Deallocate, ctx: &mut Context<Self>) -> Self::Result {
        let (released, effects) = self.ledger.deallocate(&id, Self::now())?;
        self.notify.remove(&id);
        tracing::debug!(allocation = %id, "deallocated");
        self.apply(effects, ctx);
        Ok(released)
    }
}

impl Handler<GetPoolStatus> for ResourceAllocator {
    type Result = MessageResult<GetPoolStatus>;

    fn handle(&mut self, _: GetPoolStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.ledger.status(Self::now()))
    }
}

impl Handler<GetAllocation> for ResourceAllocator {
    type Result = Option<AllocationState>;

    fn handle(&mut self, GetAllocation(id): GetAllocation, _: &mut Context<Self>) -> Self::Result {
        self.ledger.get(&id, Self::now())
    }
}

impl Handler<SetNodeCapacity> for ResourceAllocator {
    type Result = Result<(), FieldErrors>;

    fn handle(&mut self, msg: SetNodeCapacity, ctx: &mut Context<Self>) -> Self::Result {
        let effects = self
            .ledger
            .set_capacity(&msg.node_id, &msg.capacity, Self::now())?;
        tracing::debug!(node = %msg.node_id, resources = msg.capacity.len(), "node capacity set");
        self.apply(effects, ctx);
        Ok(())
    }
}

impl Handler<RemoveNode> for ResourceAllocator {
    type Result = Vec<String>;

    fn handle(&mut self, RemoveNode(node): RemoveNode, ctx: &mut Context<Self>) -> Vec<String> {
        let effects = self.ledger.remove_node(&node, Self::now());
        let released: Vec<String> = effects
            .ended
            .iter()
            .filter(|e| matches!(e.reason, EndReason::NodeRemoved { .. }))
            .map(|e| e.allocation_id.clone())
            .collect();
        tracing::info!(node = %node, released = released.len(), "node left the resource pool");
        self.apply(effects, ctx);
        released
    }
}

impl Handler<AuditPool> for ResourceAllocator {
    type Result = Vec<String>;

    fn handle(&mut self, _: AuditPool, _: &mut Context<Self>) -> Vec<String> {
        self.ledger.audit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::recorder::Recorder;
    use crate::resources::{AllocationRequest, ResourceSpec};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    #[actix_rt::test]
    async fn a_queued_request_hears_its_grant_and_a_node_removal() {
        let pool = ResourceAllocator::new(Duration::from_secs(60), Duration::from_secs(60)).start();
        let capacity = BTreeMap::from([("cpu".to_string(), 2.0)]);
        pool.send(SetNodeCapacity {
            node_id: "n1".into(),
            capacity,
        })
        .await
        .unwrap()
        .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Recorder::<AllocationEvent>(seen.clone())
            .start()
            .recipient();
        let first = AllocationRequest::new("first", "t", vec![ResourceSpec::new("cpu", 2.0)]);
        let r = pool
            .send(Allocate {
                request: first,
                notify: None,
            })
            .await
            .unwrap();
        assert!(matches!(r, Ok(Outcome::Granted(_))));
        let mut second = AllocationRequest::new("second", "t", vec![ResourceSpec::new("cpu", 1.0)]);
        second.queue = true;
        let r = pool
            .send(Allocate {
                request: second,
                notify: Some(rec),
            })
            .await
            .unwrap();
        assert_eq!(r, Ok(Outcome::Queued { position: 0 }));
        assert!(matches!(
            pool.send(Deallocate("first".into())).await.unwrap(),
            Ok(Released::Grant(_))
        ));
        assert_eq!(
            pool.send(RemoveNode("n1".into())).await.unwrap(),
            ["second"]
        );
        for _ in 0..200 {
            if seen.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = seen.lock().unwrap().clone();
        assert!(matches!(&seen[0], AllocationEvent::Granted(g) if g.allocation_id == "second"));
        assert_eq!(
            seen[1],
            AllocationEvent::Released {
                allocation_id: "second".into(),
                reason: EndReason::NodeRemoved {
                    node_id: "n1".into()
                }
            }
        );
        assert!(pool.send(AuditPool).await.unwrap().is_empty());
    }
}
