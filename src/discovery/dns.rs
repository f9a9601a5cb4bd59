//! Finding the orchestrator in DNS, the way a Kubernetes headless Service is found.
//!
//! - A name starting with `_` (`_cluster._tcp.mcpt-orchestrator.ns.svc.cluster.local`) is an
//!   SRV name: its targets are taken lowest priority first, highest weight first within a
//!   priority, each with the SRV record's port and the target's A/AAAA addresses (from the
//!   answer's additional section, or looked up).
//! - Any other name is looked up for A and AAAA records, with `default_port`
//!   (`orchestrator.port`).
//!
//! With a name server given (`service_discovery.dns_server`), only that one is asked, over
//! UDP and TCP at its port, and the hosts file is not read. Otherwise the system's
//! configuration is read from `/etc/resolv.conf` (`nameserver`, `search`, `domain`,
//! `options ndots: timeout: attempts:`). Each call builds a fresh resolver, so a retry never
//! sees a cached negative answer.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};

pub const RESOLV_CONF: &str = "/etc/resolv.conf";

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0:?} is not a DNS name: {1}")]
    BadName(String, String),
    #[error("no usable DNS configuration: {0}")]
    Config(String),
    #[error("DNS lookup of {name} ({kind}) failed: {error}")]
    Lookup {
        name: String,
        kind: &'static str,
        error: String,
    },
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

/// One SRV target, as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// SRV targets in the order to try them: lowest priority first, then highest weight; ties
/// keep the answer's order. Targets named `.` ("no service here", RFC 2782) are dropped.
pub fn order_srv(mut targets: Vec<SrvTarget>) -> Vec<SrvTarget> {
    targets.retain(|t| t.target != "." && !t.target.is_empty());
    targets.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
    targets
}

/// Whether `name` is an SRV name (`_service._proto.domain`).
pub fn is_srv_name(name: &str) -> bool {
    name.starts_with('_')
}

/// What `/etc/resolv.conf` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub ndots: Option<usize>,
    pub timeout: Option<Duration>,
    pub attempts: Option<usize>,
}

/// Parses the resolv.conf lines we use; others are ignored, as the C library does.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut c = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A scoped link-local address (`fe80::1%eth0`) cannot be used without its
                // scope; skip it rather than ask the wrong interface.
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    c.nameservers.push(ip);
                }
            }
            Some("domain") => {
                c.domain = words.next().map(str::to_string);
                c.search.clear();
            }
            Some("search") => {
                c.search = words.map(str::to_string).collect();
                c.domain = None;
            }
            Some("options") => {
                for opt in words {
                    let (k, v) = opt.split_once(':').unwrap_or((opt, ""));
                    match (k, v.parse::<u64>()) {
                        ("ndots", Ok(n)) => c.ndots = Some(n.min(15) as usize),
                        ("timeout", Ok(n)) => c.timeout = Some(Duration::from_secs(n.clamp(1, 30))),
                        ("attempts", Ok(n)) => c.attempts = Some(n.clamp(1, 5) as usize),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    c
}

fn dns_name(s: &str) -> Result<Name, DnsError> {
    Name::from_str(s).map_err(|e| DnsError::BadName(s.to_string(), e.to_string()))
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let mut opts = ResolverOpts::default();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    let config = match server {
        Some(addr) => {
            opts.use_hosts_file = ResolveHosts::Never;
            opts.timeout = Duration::from_secs(2);
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            ResolverConfig::from_parts(None, vec![], vec![ns])
        }
        None => {
            let text = std::fs::read_to_string(RESOLV_CONF)
                .map_err(|e| DnsError::Config(format!("cannot read {RESOLV_CONF}: {e}")))?;
            let rc = parse_resolv_conf(&text);
            if rc.nameservers.is_empty() {
                return Err(DnsError::Config(format!("no nameserver in {RESOLV_CONF}")));
            }
            if let Some(n) = rc.ndots {
                opts.ndots = n;
            }
            if let Some(t) = rc.timeout {
                opts.timeout = t;
            }
            if let Some(a) = rc.attempts {
                opts.attempts = a;
            }
            let domain = rc.domain.as_deref().map(dns_name).transpose()?;
            let search = rc
                .search
                .iter()
                .map(|s| dns_name(s))
                .collect::<Result<Vec<_>, _>>()?;
            let servers = rc
                .nameservers
                .into_iter()
                .map(NameServerConfig::udp_and_tcp)
                .collect();
            ResolverConfig::from_parts(domain, search, servers)
        }
    };
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| DnsError::Config(e.to_string()))
}

fn lookup_error(name: &str, kind: &'static str, e: impl std::fmt::Display) -> DnsError {
    DnsError::Lookup {
        name: name.to_string(),
        kind,
        error: e.to_string(),
    }
}

/// Resolves `name` to the addresses to try, best first: for an SRV name, each target's
/// addresses with its port in SRV order; otherwise the name's addresses with `default_port`.
/// Must run inside a tokio runtime (an actix arbiter is one).
pub async fn resolve(
    name: &str,
    default_port: u16,
    server: Option<SocketAddr>,
) -> Result<Vec<SocketAddr>, DnsError> {
    let fqdn_hint = dns_name(name)?;
    let r = resolver(server)?;
    let mut out: Vec<SocketAddr> = Vec::new();
    if is_srv_name(name) {
        let lookup = r
            .srv_lookup(fqdn_hint)
            .await
            .map_err(|e| lookup_error(name, "SRV", e))?;
        let targets = order_srv(
            lookup
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::SRV(srv) => Some(SrvTarget {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_ascii(),
                    }),
                    _ => None,
                })
                .collect(),
        );
        for t in targets {
            let target = dns_name(&t.target)?;
            let mut ips: Vec<IpAddr> = lookup
                .additionals()
                .iter()
                .filter(|rec| rec.name == target)
                .filter_map(|rec| match &rec.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            if ips.is_empty() {
                match r.lookup_ip(target).await {
                    Ok(found) => ips = found.iter().collect(),
                    Err(e) => {
                        tracing::debug!(target = %t.target, error = %e, "srv target does not resolve");
                        continue;
                    }
                }
            }
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, t.port)));
        }
    } else {
        let found = r
            .lookup_ip(fqdn_hint)
            .await
            .map_err(|e| lookup_error(name, "A/AAAA", e))?;
        out.extend(found.iter().map(|ip| SocketAddr::new(ip, default_port)));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(*a));
    if out.is_empty() {
        return Err(DnsError::NoAddress(name.to_string()));
    }
    Ok(out)
}

/// The wait before retry `attempt` (0-based): 0.5 s doubling up to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: u16, w: u16, name: &str) -> SrvTarget {
        SrvTarget {
            priority: p,
            weight: w,
            port: 1,
            target: name.into(),
        }
    }

    #[test]
    fn srv_order_is_priority_then_weight() {
        let got = order_srv(vec![
            t(10, 5, "c."),
            t(0, 1, "b."),
            t(0, 9, "a."),
            t(0, 3, "."),
            t(10, 50, "d."),
        ]);
        let names: Vec<&str> = got.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(names, ["a.", "b.", "d.", "c."]);
    }

    #[test]
    fn resolv_conf_as_kubernetes_writes_it() {
        let c = parse_resolv_conf(
            "# generated\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\nnameserver fe80::1%eth0\nnameserver fd00::53 ; v6\n\
             options ndots:5 timeout:2 attempts:3 rotate\n",
        );
        assert_eq!(
            c.nameservers,
            [
                "10.96.0.10".parse::<IpAddr>().unwrap(),
                "fd00::53".parse().unwrap()
            ]
        );
        assert_eq!(c.search.len(), 3);
        assert_eq!(c.domain, None);
        assert_eq!(c.ndots, Some(5));
        assert_eq!(c.timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.attempts, Some(3));
        let d = parse_resolv_conf("search a.b\ndomain example.org\nnameserver nonsense\n");
        assert_eq!(d.domain.as_deref(), Some("example.org"));
        assert!(d.search.is_empty() && d.nameservers.is_empty());
    }

    #[test]
    fn srv_names_start_with_an_underscore() {
        assert!(is_srv_name("_cluster._tcp.mcpt.test"));
        assert!(!is_srv_name("orchestrator.mcpt.test"));
    }

    #[test]
    fn backoff_doubles_to_five_seconds() {
        let got: Vec<u64> = (0..7).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn bad_names_are_errors_before_any_lookup() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = Some("127.0.0.1:1".parse().unwrap());
        let long = "a".repeat(70);
        let e = rt.block_on(resolve(&long, 80, server)).unwrap_err();
        assert!(matches!(e, DnsError::BadName(..)), "{e}");
    }
}
