//! The target allowlist: which hosts a test may send load to.
//!
//! Patterns are host names (`localhost`, `*.staging.example`), IP addresses, CIDR networks
//! (`127.0.0.0/8`), each optionally with a port (`localhost:8080`, `[::1]:8080`,
//! `10.0.0.0/8:443`). A URL is allowed when its host matches a name pattern, or when the host
//! is an address (or a name whose every resolved address is) inside an allowed network. The
//! default allows loopback only.
//!
//! A name is only as good as the address it reaches: the allowlist is enforced where sockets
//! connect ([`Allowlist::resolve`]), on the addresses actually connected to. `localhost` and
//! every name under it (RFC 6761) stand for the loopback addresses (127.0.0.0/8, ::1) and
//! nothing else: `localhost.` is looked up in DNS, not in /etc/hosts, and whatever DNS answers
//! for it is not loopback by being called so. Any other name a name pattern allows may go
//! wherever it resolves (the operator named that host).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

/// The default patterns: loopback only.
pub const LOOPBACK_ONLY: [&str; 3] = ["127.0.0.0/8", "::1", "localhost"];

/// Whether `name` (lower case, no trailing dot) is `localhost` or a name under it: such names
/// stand for the loopback addresses only, whatever a resolver answers for them.
fn is_localhost_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// IPv4-mapped IPv6 addresses are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What a name pattern grants a name it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameGrant {
    /// Whatever the name resolves to.
    AnyAddress,
    /// Only loopback addresses (`localhost` and names under it).
    Loopback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Net(IpNet),
    /// A lower-case name; a leading `*.` matches any subdomain.
    Name(String),
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern {
    matcher: Matcher,
    port: Option<u16>,
    text: String,
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for TargetPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim().to_string();
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        let (host, port) = split_port(&text)?;
        let matcher = if let Ok(net) = host.parse::<IpNet>() {
            Matcher::Net(net)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Matcher::Net(IpNet::from(ip))
        } else {
            let name = host.to_ascii_lowercase();
            let bare = name.strip_prefix("*.").unwrap_or(&name);
            let valid = !bare.is_empty()
                && bare.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                return Err(format!(
                    "{text:?} is not a host name, IP address or CIDR network (optionally with :port)"
                ));
            }
            Matcher::Name(name)
        };
        Ok(TargetPattern {
            matcher,
            port,
            text,
        })
    }
}

/// Splits `host:port`, `[v6]:port`, `net/len:port`; a bare IPv6 address has no port.
fn split_port(s: &str) -> Result<(String, Option<u16>), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("bad port {p:?} in {s:?}"))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_string(), Some(parse_port(p)?))),
            None if after.is_empty() => Ok((host.to_string(), None)),
            None => Err(format!("unexpected {after:?} after ']' in {s:?}")),
        };
    }
    match s.rsplit_once(':') {
        // More than one ':' and no brackets: a bare IPv6 address or network.
        Some((host, _)) if host.contains(':') => Ok((s.to_string(), None)),
        Some((host, port)) => Ok((host.to_string(), Some(parse_port(port)?))),
        None => Ok((s.to_string(), None)),
    }
}

/// What a first look at a URL's host says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied(String),
    /// A name that only an address pattern could allow: resolve it and call
    /// [`Allowlist::check_resolved`].
    Resolve {
        host: String,
        port: u16,
    },
}

/// The allowed target patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<TargetPattern>,
}

impl Default for Allowlist {
    fn default() -> Self {
        let patterns = LOOPBACK_ONLY
            .iter()
            .map(|p| p.parse().expect("valid default"))
            .collect();
        Allowlist { patterns }
    }
}

impl Allowlist {
    pub fn new(patterns: Vec<TargetPattern>) -> Self {
        Allowlist { patterns }
    }

    pub fn patterns(&self) -> &[TargetPattern] {
        &self.patterns
    }

    fn listing(&self) -> String {
        let names: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
        format!("[{}]", names.join(", "))
    }

    fn denial(&self, what: &str) -> String {
        format!(
            "{what} is not in load_generation.allowed_targets {}; add a pattern there to allow it",
            self.listing()
        )
    }

    fn denied(&self, what: &str) -> Verdict {
        Verdict::Denied(self.denial(what))
    }

    fn ip_allowed(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.patterns.iter().any(|p| {
            p.port.is_none_or(|q| q == port)
                && matches!(&p.matcher, Matcher::Net(n) if n.contains(&ip))
        })
    }

    /// What the name patterns grant `name` at `port`: nothing, any address, or loopback only
    /// (for `localhost` and the names under it, whichever pattern matched them).
    fn name_grant(&self, name: &str, port: u16) -> Option<NameGrant> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let matched = self.patterns.iter().any(|p| {
            p.port.is_none_or(|q| q == port)
                && match &p.matcher {
                    Matcher::Name(pat) => match pat.strip_prefix("*.") {
                        Some(suffix) => name.ends_with(&format!(".{suffix}")),
                        None => *pat == name,
                    },
                    Matcher::Net(_) => false,
                }
        });
        match (matched, is_localhost_name(&name)) {
            (false, _) => None,
            (true, true) => Some(NameGrant::Loopback),
            (true, false) => Some(NameGrant::AnyAddress),
        }
    }

    /// Checks a URL's host without resolving it.
    pub fn check(&self, url: &Url) -> Verdict {
        let Some(port) = url.port_or_known_default() else {
            return Verdict::Denied(format!("{url} has no port and no known default port"));
        };
        match url.host() {
            None => Verdict::Denied(format!("{url} has no host")),
            Some(Host::Ipv4(ip)) => self.verdict_ip(IpAddr::V4(ip), port),
            Some(Host::Ipv6(ip)) => self.verdict_ip(IpAddr::V6(ip), port),
            Some(Host::Domain(name)) => {
                let grant = self.name_grant(name, port);
                if grant == Some(NameGrant::AnyAddress) {
                    Verdict::Allowed
                } else if grant == Some(NameGrant::Loopback)
                    || self
                        .patterns
                        .iter()
                        .any(|p| matches!(p.matcher, Matcher::Net(_)))
                {
                    Verdict::Resolve {
                        host: name.to_string(),
                        port,
                    }
                } else {
                    self.denied(&format!("host {name}:{port}"))
                }
            }
        }
    }

    /// Whether a URL's host, as written, is on the list (an allowed address, or a name a name
    /// pattern matches), without resolving anything: for telling where a redirect points,
    /// never for deciding a connection.
    pub fn lists(&self, url: &Url) -> bool {
        match self.check(url) {
            Verdict::Allowed => true,
            Verdict::Denied(_) => false,
            Verdict::Resolve { host, port } => self.name_grant(&host, port).is_some(),
        }
    }

    fn verdict_ip(&self, ip: IpAddr, port: u16) -> Verdict {
        if self.ip_allowed(ip, port) {
            Verdict::Allowed
        } else {
            self.denied(&format!("address {ip} port {port}"))
        }
    }

    /// Decides a name after resolution: every address must be allowed, by an address pattern
    /// or by a name pattern that grants the name that address (`localhost`: loopback only; any
    /// other name pattern: whatever the name resolves to).
    pub fn check_resolved(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Result<(), String> {
        if addrs.is_empty() {
            return Err(format!("host {host} did not resolve to any address"));
        }
        let grant = self.name_grant(host, port);
        let allowed = |ip: IpAddr| {
            self.ip_allowed(ip, port)
                || match grant {
                    Some(NameGrant::AnyAddress) => true,
                    Some(NameGrant::Loopback) => canonical(ip).is_loopback(),
                    None => false,
                }
        };
        match addrs.iter().find(|ip| !allowed(**ip)) {
            None => Ok(()),
            Some(ip) if grant == Some(NameGrant::Loopback) => Err(format!(
                "host {host} resolves to {ip}, which is not a loopback address: a `localhost` \
                 name stands for 127.0.0.0/8 and ::1 only (load_generation.allowed_targets {}); \
                 add the address there to allow it",
                self.listing()
            )),
            Some(ip) => Err(self.denial(&format!("host {host} resolves to {ip}, which"))),
        }
    }

    /// Decides a connection to `host` at `addrs`, the addresses about to be connected to.
    pub fn check_connect(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Result<(), String> {
        match literal(host) {
            Some(ip) if addrs.iter().all(|a| *a == ip) => match self.verdict_ip(ip, port) {
                Verdict::Denied(why) => Err(why),
                _ => Ok(()),
            },
            Some(ip) => Err(format!("address {ip} cannot be connected to at {addrs:?}")),
            None => self.check_resolved(host, port, addrs),
        }
    }

    /// The addresses a connection to `host:port` may use: an address literal as it is, a name
    /// resolved once (the system resolver); every one checked ([`Allowlist::check_connect`]).
    /// The caller connects to these addresses and no others, so no second lookup can lead the
    /// connection elsewhere. Used where sockets connect: load, redirects, security scans.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = match literal(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("host {host} could not be resolved: {e}"))?
                .collect(),
        };
        let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
        self.check_connect(host, port, &ips)?;
        Ok(addrs)
    }

    /// Checks a URL, resolving names with the system resolver when needed (blocking).
    pub fn check_blocking(&self, url: &Url) -> Result<(), String> {
        match self.check(url) {
            Verdict::Allowed => Ok(()),
            Verdict::Denied(why) => Err(why),
            Verdict::Resolve { host, port } => {
                use std::net::ToSocketAddrs;
                let addrs: Vec<IpAddr> = match (host.as_str(), port).to_socket_addrs() {
                    Ok(it) => it.map(|a| a.ip()).collect(),
                    Err(e) => return Err(format!("host {host} could not be resolved: {e}")),
                };
                self.check_resolved(&host, port, &addrs)
            }
        }
    }
}

/// An IP address written as a host (`127.0.0.1`, `::1`, `[::1]`).
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> Allowlist {
        Allowlist::new(patterns.iter().map(|p| p.parse().unwrap()).collect())
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn default_allows_loopback_only() {
        let a = Allowlist::default();
        assert_eq!(a.check(&url("http://127.0.0.1:9/")), Verdict::Allowed);
        assert_eq!(a.check(&url("http://127.4.5.6/")), Verdict::Allowed);
        assert_eq!(a.check(&url("http://[::1]:80/")), Verdict::Allowed);
        // A name checked by the addresses it resolves to (loopback only).
        assert_eq!(
            a.check(&url("http://LOCALHOST:8080/x")),
            Verdict::Resolve {
                host: "localhost".into(),
                port: 8080
            }
        );
        assert_eq!(
            a.check(&url("http://[::ffff:127.0.0.1]/")),
            Verdict::Allowed
        );
        assert!(matches!(
            a.check(&url("http://10.0.0.1/")),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            a.check(&url("http://192.168.1.1/")),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            a.check(&url("http://example.com/")),
            Verdict::Resolve { .. }
        ));
    }

    #[test]
    fn names_ports_and_wildcards() {
        let a = list(&[
            "api.test:8080",
            "*.staging.test",
            "10.0.0.0/8:443",
            "[::1]:9000",
        ]);
        assert_eq!(a.check(&url("http://api.test:8080/")), Verdict::Allowed);
        assert!(matches!(
            a.check(&url("http://api.test:8081/")),
            Verdict::Resolve { .. }
        ));
        assert_eq!(a.check(&url("http://a.b.staging.test/")), Verdict::Allowed);
        assert!(matches!(
            a.check(&url("http://staging.test.evil/")),
            Verdict::Resolve { .. }
        ));
        assert_eq!(a.check(&url("https://10.2.3.4/")), Verdict::Allowed);
        assert!(matches!(
            a.check(&url("http://10.2.3.4/")),
            Verdict::Denied(_)
        ));
        assert_eq!(a.check(&url("http://[::1]:9000/")), Verdict::Allowed);
        let names_only = list(&["api.test"]);
        assert!(matches!(
            names_only.check(&url("http://other.test/")),
            Verdict::Denied(_)
        ));
    }

    #[test]
    fn resolved_names_need_every_address_allowed() {
        let a = Allowlist::default();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let out: IpAddr = "93.184.216.34".parse().unwrap();
        assert_eq!(a.check_resolved("h", 80, &[lo]), Ok(()));
        assert!(a.check_resolved("h", 80, &[lo, out]).is_err());
        assert!(a.check_resolved("h", 80, &[]).is_err());
    }

    #[test]
    fn connections_follow_names_or_addresses() {
        let a = list(&["api.test", "127.0.0.0/8"]);
        let out: IpAddr = "10.9.9.9".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(a.check_connect("api.test", 80, &[out]), Ok(()));
        assert_eq!(a.check_connect("other.test", 80, &[lo]), Ok(()));
        assert!(a.check_connect("other.test", 80, &[lo, out]).is_err());
    }

    #[test]
    fn localhost_stands_for_the_loopback_addresses_only() {
        let out: IpAddr = "10.77.0.1".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap();
        // With the networks in the list, with the name alone, and under a wildcard: the same.
        for (a, host) in [
            (Allowlist::default(), "localhost."),
            (Allowlist::default(), "LocalHost"),
            (list(&["localhost"]), "localhost."),
            (list(&["*.localhost"]), "db.localhost."),
        ] {
            let u = url(&format!("http://{host}:8080/"));
            assert!(
                matches!(a.check(&u), Verdict::Resolve { .. }),
                "{host} allowed without looking at its address"
            );
            let why = a.check_resolved(host, 8080, &[out]).unwrap_err();
            assert!(
                why.contains("10.77.0.1") && why.contains("loopback"),
                "{why}"
            );
            assert!(a.check_resolved(host, 8080, &[lo, out]).is_err());
            assert!(a.check_connect(host, 8080, &[out]).is_err());
            assert_eq!(a.check_resolved(host, 8080, &[lo, lo6, mapped]), Ok(()));
            assert_eq!(a.check_connect(host, 8080, &[lo]), Ok(()));
        }
        // A port on the pattern still applies.
        let ported = list(&["localhost:8080"]);
        assert!(ported.check_resolved("localhost", 9090, &[lo]).is_err());
        // A name that is not localhost but merely ends like it is no localhost name.
        let other = list(&["notlocalhost"]);
        assert_eq!(other.check(&url("http://notlocalhost./")), Verdict::Allowed);
    }

    #[test]
    fn address_literals_are_checked_where_they_connect() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let a = Allowlist::default();
        assert_eq!(a.check_connect("127.0.0.1", 80, &[lo]), Ok(()));
        assert_eq!(a.check_connect("[::1]", 80, &[lo6]), Ok(()));
        let elsewhere = list(&["10.0.0.0/8", "localhost"]);
        assert!(elsewhere.check_connect("127.0.0.1", 80, &[lo]).is_err());
        // A literal connects to itself and nowhere else.
        assert!(a.check_connect("127.0.0.1", 80, &[lo6]).is_err());
    }

    #[actix_rt::test]
    async fn resolve_checks_what_it_hands_out() {
        let a = Allowlist::default();
        assert_eq!(
            a.resolve("127.0.0.2", 9).await,
            Ok(vec!["127.0.0.2:9".parse().unwrap()])
        );
        assert_eq!(
            a.resolve("[::1]", 9).await,
            Ok(vec!["[::1]:9".parse().unwrap()])
        );
        let why = list(&["10.0.0.0/8"])
            .resolve("127.0.0.1", 9)
            .await
            .unwrap_err();
        assert!(why.contains("127.0.0.1"), "{why}");
        // `localhost` from /etc/hosts: loopback, so allowed, and only loopback handed out.
        let addrs = a.resolve("localhost", 9).await.unwrap();
        assert!(addrs.iter().all(|s| s.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "a b", "300.0.0.0/8x", "host:99999", "[::1", "*."] {
            assert!(bad.parse::<TargetPattern>().is_err(), "{bad:?} parsed");
        }
        assert!("::1".parse::<TargetPattern>().is_ok());
        assert!("fd00::/8".parse::<TargetPattern>().is_ok());
    }
}
