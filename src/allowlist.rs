//! The target allowlist: which hosts a test may send load to.
//!
//! Patterns are host names (`localhost`, `*.staging.example`), IP addresses, CIDR networks
//! (`127.0.0.0/8`), each optionally with a port (`localhost:8080`, `[::1]:8080`,
//! `10.0.0.0/8:443`). A URL is allowed when its host matches a name pattern, or when the host
//! is an address (or a name whose every resolved address is) inside an allowed network. The
//! default allows loopback only.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

/// The default patterns: loopback only.
pub const LOOPBACK_ONLY: [&str; 3] = ["127.0.0.0/8", "::1", "localhost"];

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
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.patterns.iter().any(|p| {
            p.port.is_none_or(|q| q == port)
                && matches!(&p.matcher, Matcher::Net(n) if n.contains(&ip))
        })
    }

    fn name_allowed(&self, name: &str, port: u16) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.patterns.iter().any(|p| {
            p.port.is_none_or(|q| q == port)
                && match &p.matcher {
                    Matcher::Name(pat) => match pat.strip_prefix("*.") {
                        Some(suffix) => name.ends_with(&format!(".{suffix}")),
                        None => *pat == name,
                    },
                    Matcher::Net(_) => false,
                }
        })
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
                if self.name_allowed(name, port) {
                    Verdict::Allowed
                } else if self
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

    fn verdict_ip(&self, ip: IpAddr, port: u16) -> Verdict {
        if self.ip_allowed(ip, port) {
            Verdict::Allowed
        } else {
            self.denied(&format!("address {ip} port {port}"))
        }
    }

    /// Decides a name after resolution: every address must be allowed.
    pub fn check_resolved(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Result<(), String> {
        if addrs.is_empty() {
            return Err(format!("host {host} did not resolve to any address"));
        }
        match addrs.iter().find(|ip| !self.ip_allowed(**ip, port)) {
            None => Ok(()),
            Some(ip) => Err(self.denial(&format!("host {host} resolves to {ip}, which"))),
        }
    }

    /// Decides a connection to `host` (a name) at `addrs`: a name allowed as such may go to
    /// any address; any other name only to allowed addresses. Used when connecting, so a name
    /// whose answer changed after the plan was validated still cannot lead load elsewhere.
    pub fn check_connect(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Result<(), String> {
        if self.name_allowed(host, port) {
            Ok(())
        } else {
            self.check_resolved(host, port, addrs)
        }
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
        assert_eq!(a.check(&url("http://LOCALHOST:8080/x")), Verdict::Allowed);
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
    fn bad_patterns_are_rejected() {
        for bad in ["", "a b", "300.0.0.0/8x", "host:99999", "[::1", "*."] {
            assert!(bad.parse::<TargetPattern>().is_err(), "{bad:?} parsed");
        }
        assert!("::1".parse::<TargetPattern>().is_ok());
        assert!("fd00::/8".parse::<TargetPattern>().is_ok());
    }
}
