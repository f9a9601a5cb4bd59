//! The services a process knows: each with where it was learned, when first and last heard.
//! Heard-of entries (multicast, DNS) expire after `service_timeout` without news; entries
//! held by a live cluster link or the process itself stay until they are removed. When two
//! sources report one service, the stronger one's view is kept (local over cluster over
//! multicast and DNS) and the weaker one only refreshes it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{ServiceInstance, ServiceType, Source};

/// A known service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KnownService {
    #[serde(flatten)]
    pub service: ServiceInstance,
    pub source: Source,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Since it was last heard of.
    pub age_ms: u64,
}

/// Which services to list; every `None` or `false` lets all through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub service_type: Option<ServiceType>,
    /// Services that list this capability.
    pub capability: Option<String>,
    pub healthy_only: bool,
}

impl Query {
    pub fn matches(&self, s: &ServiceInstance) -> bool {
        self.service_type.is_none_or(|t| t == s.service_type)
            && self
                .capability
                .as_ref()
                .is_none_or(|c| s.capabilities.iter().any(|have| have == c))
            && (!self.healthy_only || s.healthy)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    service: ServiceInstance,
    source: Source,
    first_seen_ms: u64,
    last_seen_ms: u64,
}

#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// Records `service` as heard of at `now_ms`; says whether it was new.
    pub fn upsert(&mut self, service: ServiceInstance, source: Source, now_ms: u64) -> bool {
        match self.entries.get_mut(&service.service_id) {
            Some(e) => {
                e.last_seen_ms = e.last_seen_ms.max(now_ms);
                if source.rank() >= e.source.rank() {
                    e.service = service;
                    e.source = source;
                }
                false
            }
            None => {
                self.entries.insert(
                    service.service_id.clone(),
                    Entry {
                        service,
                        source,
                        first_seen_ms: now_ms,
                        last_seen_ms: now_ms,
                    },
                );
                true
            }
        }
    }

    pub fn remove(&mut self, service_id: &str) -> Option<ServiceInstance> {
        self.entries.remove(service_id).map(|e| e.service)
    }

    /// Drops the heard-of services not heard of for longer than `timeout`; returns them.
    pub fn expire(&mut self, now_ms: u64, timeout: Duration) -> Vec<ServiceInstance> {
        let timeout = timeout.as_millis() as u64;
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.source.expires() && now_ms.saturating_sub(e.last_seen_ms) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|id| self.remove(&id))
            .collect()
    }

    /// The services `q` lets through, by id.
    pub fn query(&self, q: &Query, now_ms: u64) -> Vec<KnownService> {
        self.entries
            .values()
            .filter(|e| q.matches(&e.service))
            .map(|e| KnownService {
                service: e.service.clone(),
                source: e.source,
                first_seen_ms: e.first_seen_ms,
                last_seen_ms: e.last_seen_ms,
                age_ms: now_ms.saturating_sub(e.last_seen_ms),
            })
            .collect()
    }

    pub fn get(&self, service_id: &str) -> Option<&ServiceInstance> {
        self.entries.get(service_id).map(|e| &e.service)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn svc(id: &str, t: ServiceType, caps: &[&str], healthy: bool) -> ServiceInstance {
        ServiceInstance {
            service_id: id.into(),
            service_type: t,
            name: id.into(),
            host: "10.0.0.1".into(),
            port: 80,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            location: String::new(),
            healthy,
            metadata: Default::default(),
        }
    }

    fn ids(v: &[KnownService]) -> Vec<&str> {
        v.iter().map(|k| k.service.service_id.as_str()).collect()
    }

    #[test]
    fn queries_filter_by_type_capability_and_health() {
        let mut r = Registry::default();
        r.upsert(
            svc("o", ServiceType::Orchestrator, &[], true),
            Source::Multicast,
            0,
        );
        r.upsert(
            svc("a", ServiceType::LoadGenerator, &["http_load"], true),
            Source::Cluster,
            0,
        );
        r.upsert(
            svc(
                "b",
                ServiceType::LoadGenerator,
                &["http_load", "stress"],
                false,
            ),
            Source::Multicast,
            0,
        );
        r.upsert(
            svc("c", ServiceType::LoadGenerator, &["stress"], true),
            Source::Dns,
            0,
        );
        let q = |t, c: Option<&str>, h| Query {
            service_type: t,
            capability: c.map(String::from),
            healthy_only: h,
        };
        assert_eq!(ids(&r.query(&Query::default(), 5)), ["a", "b", "c", "o"]);
        assert_eq!(
            ids(&r.query(&q(Some(ServiceType::Orchestrator), None, false), 5)),
            ["o"]
        );
        assert_eq!(
            ids(&r.query(
                &q(Some(ServiceType::LoadGenerator), Some("http_load"), false),
                5
            )),
            ["a", "b"]
        );
        assert_eq!(
            ids(&r.query(
                &q(Some(ServiceType::LoadGenerator), Some("http_load"), true),
                5
            )),
            ["a"]
        );
        assert_eq!(ids(&r.query(&q(None, Some("stress"), true), 5)), ["c"]);
        assert!(r.query(&q(None, Some("gpu"), false), 5).is_empty());
    }

    #[test]
    fn heard_of_services_expire_and_held_ones_stay() {
        let mut r = Registry::default();
        let t = Duration::from_secs(90);
        r.upsert(
            svc("m", ServiceType::Orchestrator, &[], true),
            Source::Multicast,
            0,
        );
        r.upsert(
            svc("d", ServiceType::Orchestrator, &[], true),
            Source::Dns,
            0,
        );
        r.upsert(
            svc("c", ServiceType::LoadGenerator, &[], true),
            Source::Cluster,
            0,
        );
        r.upsert(
            svc("l", ServiceType::LoadGenerator, &[], true),
            Source::Local,
            0,
        );
        assert!(r.expire(90_000, t).is_empty());
        r.upsert(
            svc("m", ServiceType::Orchestrator, &[], true),
            Source::Multicast,
            50_000,
        );
        let gone: Vec<String> = r
            .expire(90_001, t)
            .into_iter()
            .map(|s| s.service_id)
            .collect();
        assert_eq!(gone, ["d"]);
        let gone: Vec<String> = r
            .expire(140_001, t)
            .into_iter()
            .map(|s| s.service_id)
            .collect();
        assert_eq!(gone, ["m"]);
        assert_eq!(ids(&r.query(&Query::default(), 1_000_000)), ["c", "l"]);
    }

    #[test]
    fn ages_and_first_seen() {
        let mut r = Registry::default();
        assert!(r.upsert(
            svc("m", ServiceType::Orchestrator, &[], true),
            Source::Multicast,
            1000
        ));
        assert!(!r.upsert(
            svc("m", ServiceType::Orchestrator, &[], true),
            Source::Multicast,
            4000
        ));
        let k = &r.query(&Query::default(), 6500)[0];
        assert_eq!(
            (k.first_seen_ms, k.last_seen_ms, k.age_ms),
            (1000, 4000, 2500)
        );
        let v = serde_json::to_value(k).unwrap();
        assert_eq!(v["service_id"], "m");
        assert_eq!(v["service_type"], "orchestrator");
        assert_eq!(v["source"], "multicast");
        assert_eq!(v["age_ms"], 2500);
    }

    #[test]
    fn a_stronger_source_keeps_its_view() {
        let mut r = Registry::default();
        r.upsert(
            svc("n", ServiceType::LoadGenerator, &["a"], true),
            Source::Cluster,
            0,
        );
        r.upsert(
            svc("n", ServiceType::LoadGenerator, &["b"], false),
            Source::Multicast,
            10,
        );
        let k = &r.query(&Query::default(), 10)[0];
        assert_eq!(
            (k.source, k.service.capabilities.clone(), k.last_seen_ms),
            (Source::Cluster, vec!["a".to_string()], 10)
        );
        r.upsert(
            svc("n", ServiceType::LoadGenerator, &["c"], true),
            Source::Local,
            20,
        );
        assert_eq!(r.query(&Query::default(), 20)[0].source, Source::Local);
        assert!(r.remove("n").is_some());
        assert!(r.is_empty());
    }

    proptest! {
        #[test]
        fn expiry_keeps_exactly_the_fresh_or_held(
            seen in proptest::collection::vec((0u64..200_000, 0usize..4), 0..40),
            now in 0u64..300_000,
            timeout_s in 1u64..120,
        ) {
            let sources = [Source::Multicast, Source::Dns, Source::Cluster, Source::Local];
            let mut r = Registry::default();
            for (i, (at, s)) in seen.iter().enumerate() {
                r.upsert(svc(&format!("s{i}"), ServiceType::LoadGenerator, &[], true), sources[*s], *at);
            }
            let timeout = Duration::from_secs(timeout_s);
            let removed = r.expire(now, timeout);
            let kept = r.query(&Query::default(), now);
            prop_assert_eq!(removed.len() + kept.len(), seen.len());
            for k in &kept {
                prop_assert!(!k.source.expires() || k.age_ms <= timeout_s * 1000);
            }
            for s in &removed {
                let i: usize = s.service_id[1..].parse().unwrap();
                let (at, src) = seen[i];
                prop_assert!(sources[src].expires() && now.saturating_sub(at) > timeout_s * 1000);
            }
        }

        #[test]
        fn a_query_returns_a_subset_that_matches(
            svcs in proptest::collection::vec((any::<bool>(), any::<bool>(), proptest::collection::vec(0usize..3, 0..3)), 0..20),
            t in proptest::option::of(any::<bool>()),
            cap in proptest::option::of(0usize..3),
            healthy_only in any::<bool>(),
        ) {
            let names = ["http_load", "stress", "gpu"];
            let mut r = Registry::default();
            for (i, (orch, healthy, caps)) in svcs.iter().enumerate() {
                let t = if *orch { ServiceType::Orchestrator } else { ServiceType::LoadGenerator };
                let caps: Vec<&str> = caps.iter().map(|c| names[*c]).collect();
                r.upsert(svc(&format!("s{i:02}"), t, &caps, *healthy), Source::Multicast, 0);
            }
            let q = Query {
                service_type: t.map(|o| if o { ServiceType::Orchestrator } else { ServiceType::LoadGenerator }),
                capability: cap.map(|c| names[c].to_string()),
                healthy_only,
            };
            let got = r.query(&q, 0);
            let all = r.query(&Query::default(), 0);
            prop_assert_eq!(got.len(), all.iter().filter(|k| q.matches(&k.service)).count());
            for k in &got {
                prop_assert!(q.matches(&k.service));
            }
        }
    }
}
