//! `EventBus`: fans live events (execution state changes, nodes joining, failing) out to
//! whoever subscribed. Holds nothing but the subscribers; a subscriber whose mailbox is full
//! misses the event rather than slowing the publisher. Takes: `Publish`, `Subscribe`.

use actix::prelude::*;
use serde::Serialize;

/// One live event.
#[derive(Debug, Clone, Serialize, Message)]
#[rtype(result = "()")]
pub struct Event {
    /// `execution_state`, `node_joined`, `node_failed`.
    pub kind: &'static str,
    pub execution_id: Option<String>,
    pub data: serde_json::Value,
    pub at_ms: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<Event>);

#[derive(Default)]
pub struct EventBus {
    subscribers: Vec<Recipient<Event>>,
    published: u64,
    supervisor: Option<Recipient<crate::actors::supervisor::ChildExited>>,
}

impl EventBus {
    pub fn supervised(supervisor: Recipient<crate::actors::supervisor::ChildExited>) -> EventBus {
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
            s.do_send(crate::actors::supervisor::ChildExited {
                name: "event_bus",
                reason: crate::actors::supervisor::ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<Publish> for EventBus {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _ctx: &mut Context<Self>) {
        self.published += 1;
        tracing::debug!(kind = event.kind, execution = ?event.execution_id, "event");
        // try_send respects the subscriber's mailbox capacity: a slow one misses events.
        self.subscribers
            .retain(|s| !matches!(s.try_send(event.clone()), Err(SendError::Closed(_))));
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, Subscribe(r): Subscribe, _ctx: &mut Context<Self>) {
        self.subscribers.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<&'static str>>>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<Event> for Recorder {
        type Result = ();
        fn handle(&mut self, e: Event, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(e.kind);
        }
    }

    #[actix_rt::test]
    async fn subscribers_get_events_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Recorder(seen.clone()).start();
        let bus = EventBus::default().start();
        bus.send(Subscribe(rec.recipient())).await.unwrap();
        for kind in ["a", "b"] {
            let event = Event {
                kind,
                execution_id: None,
                data: serde_json::Value::Null,
                at_ms: 0,
            };
            bus.send(Publish(event)).await.unwrap();
        }
        for _ in 0..100 {
            if seen.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(*seen.lock().unwrap(), ["a", "b"]);
    }
}
