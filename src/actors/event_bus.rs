//! `EventBus`: fans live events (executions' state changes and per-second stats, nodes joining,
//! leaving, failing, health changes and alerts) out to the subscribers of `GET /api/events`.
//! Owns the subscribers (each a filter and a bounded channel) and its counters; supervises
//! nothing. Takes: `Publish`, `Subscribe`, `Unsubscribe`, `GetEventBusState`, and the
//! `HealthEvent`s of the `HealthMonitor`.
//!
//! An event is serialized once and shared by every subscriber. Publishing never waits: a
//! subscriber whose buffer is full is dropped there and then (its channel closes, and it is
//! told why), so one slow reader never slows the orchestrator nor costs unbounded memory.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::health::HealthChange;
use crate::messages::events::{
    Event, EventBusState, EventKind, GetEventBusState, Publish, Subscribe, Subscription,
    Unsubscribe,
};
use crate::messages::health::HealthEvent;

struct Subscriber {
    id: u64,
    execution_id: Option<String>,
    buffer: usize,
    tx: mpsc::Sender<Arc<str>>,
    dropped: Option<oneshot::Sender<String>>,
}

#[derive(Default)]
pub struct EventBus {
    subscribers: Vec<Subscriber>,
    next_id: u64,
    state: EventBusState,
    supervisor: Option<Recipient<ChildExited>>,
}

impl EventBus {
    pub fn supervised(supervisor: Recipient<ChildExited>) -> EventBus {
        EventBus {
            supervisor: Some(supervisor),
            ..EventBus::default()
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "event_bus",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<Publish> for EventBus {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _ctx: &mut Context<Self>) {
        self.state.published += 1;
        let execution = event.execution_id();
        let mut json: Option<Arc<str>> = None;
        let mut slow = 0;
        self.subscribers.retain_mut(|s| {
            if s.execution_id.is_some() && s.execution_id.as_deref() != execution {
                return true;
            }
            let frame = json.get_or_insert_with(|| event.to_json().into()).clone();
            match s.tx.try_send(frame) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slow += 1;
                    let reason = format!(
                        "slow subscriber: more than {} events waiting; reconnect and refetch",
                        s.buffer
                    );
                    tracing::warn!(
                        subscriber = s.id,
                        buffer = s.buffer,
                        "dropping a slow event subscriber"
                    );
                    if let Some(d) = s.dropped.take() {
                        let _ = d.send(reason);
                    }
                    false
                }
            }
        });
        self.state.dropped_slow += slow;
        self.state.subscribers = self.subscribers.len();
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        let buffer = msg.buffer.max(1);
        let (tx, events) = mpsc::channel(buffer);
        let (dropped_tx, dropped) = oneshot::channel();
        self.next_id += 1;
        let id = self.next_id;
        self.subscribers.push(Subscriber {
            id,
            execution_id: msg.execution_id,
            buffer,
            tx,
            dropped: Some(dropped_tx),
        });
        self.state.subscribers = self.subscribers.len();
        MessageResult(Subscription {
            id,
            events,
            dropped,
        })
    }
}

impl Handler<Unsubscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, Unsubscribe { id, slow }: Unsubscribe, _ctx: &mut Context<Self>) {
        let before = self.subscribers.len();
        self.subscribers.retain(|s| s.id != id);
        // Dropped by the bus already (and counted), or closed by its connection for lagging.
        if slow && self.subscribers.len() < before {
            self.state.dropped_slow += 1;
        }
        self.state.subscribers = self.subscribers.len();
    }
}

impl Handler<GetEventBusState> for EventBus {
    type Result = MessageResult<GetEventBusState>;

    fn handle(&mut self, _: GetEventBusState, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.clone())
    }
}

impl Handler<HealthEvent> for EventBus {
    type Result = ();

    fn handle(&mut self, HealthEvent(change): HealthEvent, ctx: &mut Context<Self>) {
        let kind = match change {
            HealthChange::NodeStatusChanged {
                node_id,
                from,
                to,
                score,
            } => EventKind::NodeHealth {
                node_id,
                from,
                to,
                score,
            },
            HealthChange::AlertRaised { alert } => EventKind::AlertRaised { alert },
            HealthChange::AlertCleared { alert } => EventKind::AlertCleared { alert },
        };
        self.handle(Publish(Event::now(kind)), ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(node: &str) -> Publish {
        Publish(Event::now(EventKind::NodeJoined {
            node_id: node.into(),
        }))
    }

    fn state(execution: &str) -> Publish {
        Publish(Event::now(EventKind::ExecutionState {
            execution_id: execution.into(),
            name: "n".into(),
            state: "running",
            reason: None,
        }))
    }

    #[actix_rt::test]
    async fn subscribers_get_their_events_in_order() {
        let bus = EventBus::default().start();
        let mut all = bus
            .send(Subscribe {
                execution_id: None,
                buffer: 8,
            })
            .await
            .unwrap();
        let mut one = bus
            .send(Subscribe {
                execution_id: Some("e1".into()),
                buffer: 8,
            })
            .await
            .unwrap();
        for msg in [joined("a"), state("e1"), state("e2")] {
            bus.send(msg).await.unwrap();
        }
        let mut seen = Vec::new();
        while let Ok(frame) = all.events.try_recv() {
            seen.push(serde_json::from_str::<serde_json::Value>(&frame).unwrap());
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0]["type"], "node_joined");
        assert_eq!(seen[2]["execution_id"], "e2");
        let frame = one.events.try_recv().unwrap();
        assert!(frame.contains("\"e1\""), "{frame}");
        assert!(one.events.try_recv().is_err(), "the filter keeps e1 only");
    }

    #[actix_rt::test]
    async fn a_full_subscriber_is_dropped_with_a_reason_and_others_go_on() {
        let bus = EventBus::default().start();
        let mut slow = bus
            .send(Subscribe {
                execution_id: None,
                buffer: 2,
            })
            .await
            .unwrap();
        let mut fast = bus
            .send(Subscribe {
                execution_id: None,
                buffer: 2,
            })
            .await
            .unwrap();
        for i in 0..5 {
            bus.send(joined(&format!("n{i}"))).await.unwrap();
            // The fast one keeps up.
            assert!(fast.events.try_recv().is_ok());
        }
        let reason = slow.dropped.try_recv().expect("told why");
        assert!(reason.starts_with("slow subscriber"), "{reason}");
        // What it had buffered is still there, then the channel ends.
        assert!(slow.events.recv().await.is_some());
        assert!(slow.events.recv().await.is_some());
        assert!(slow.events.recv().await.is_none());
        let state = bus.send(GetEventBusState).await.unwrap();
        assert_eq!(
            state,
            EventBusState {
                subscribers: 1,
                published: 5,
                dropped_slow: 1
            }
        );
        bus.send(Unsubscribe {
            id: fast.id,
            slow: true,
        })
        .await
        .unwrap();
        let state = bus.send(GetEventBusState).await.unwrap();
        assert_eq!((state.subscribers, state.dropped_slow), (0, 2));
    }
}
