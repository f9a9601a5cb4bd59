//! A target with a known capacity: it serves at most `k` requests a second and queues the
//! rest, first come first served, so past `k` its latency climbs with the queue. A token bucket
//! of `k` tokens a second (depth one) in front of a handler that answers at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;

use super::TestServer;

/// The bucket: each request takes the next free slot, one every `1/k` s; a request that
/// finds the bucket full waits for its slot, behind every earlier one.
#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    next_free: Option<Instant>,
}

impl TokenBucket {
    pub fn new(k: f64) -> TokenBucket {
        TokenBucket {
            interval: Duration::from_secs_f64(1.0 / k),
            next_free: None,
        }
    }

    /// When a request arriving at `now` is served.
    pub fn admit(&mut self, now: Instant) -> Instant {
        let slot = self.next_free.map_or(now, |free| free.max(now));
        self.next_free = Some(slot + self.interval);
        slot
    }
}

pub struct CapacityTarget {
    pub addr: SocketAddr,
    /// Requests answered so far.
    pub served: Arc<AtomicU64>,
    _server: TestServer,
}

impl CapacityTarget {
    /// A target on 127.0.0.1:0 that serves at most `k` requests a second; stopped on drop.
    pub fn start(k: f64) -> CapacityTarget {
        let bucket = Arc::new(Mutex::new(TokenBucket::new(k)));
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let server = TestServer::start(move |_req| {
            let slot = bucket.lock().unwrap().admit(Instant::now());
            let counter = counter.clone();
            async move {
                tokio::time::sleep_until(slot.into()).await;
                counter.fetch_add(1, Ordering::Relaxed);
                HttpResponse::Ok().body("ok")
            }
        });
        CapacityTarget {
            addr: server.addr,
            served,
            _server: server,
        }
    }
}
