//! The announcement datagram: what a service multicasts about itself, signed with the cluster
//! secret so a receiver can tell it from a forgery or a replay.
//!
//! ```text
//! MCPT1 <mac> <json>
//! ```
//! - `MCPT1 `: the format and its version (ASCII, one space).
//! - `<mac>`: 64 lowercase hex digits, HMAC-SHA256 keyed by `cluster.secret` over
//!   [`MAC_CONTEXT`] followed by the JSON bytes exactly as they appear in the datagram (the
//!   receiver checks the MAC over the bytes it received, before parsing them). The context
//!   keeps an announcement's MAC from ever standing for another use of the same secret.
//! - `<json>`: an [`Announcement`]: `{"version":1,"service":{..},"sent_at_ms":..,"nonce":..}`.
//!
//! A datagram without a MAC (`MCPT1 {..}`, `MCPT1 - {..}` or a bare JSON object) is
//! *unsigned*; one whose MAC does not match is *badly signed*; one sent more than
//! [`REPLAY_WINDOW`] before or after the receiver's clock, or not newer than the last one
//! accepted from the same service, is *replayed*; anything else that does not parse is
//! *malformed*. Each is counted and dropped.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::ServiceInstance;

/// The format tag that opens every datagram.
pub const PREFIX: &[u8] = b"MCPT1 ";
/// What the MAC covers before the JSON bytes.
pub const MAC_CONTEXT: &[u8] = b"mcpt discovery announcement v1\n";
/// The announcement schema this build reads and writes.
pub const ANNOUNCEMENT_VERSION: u8 = 1;
/// How far an announcement's send time may lie from the receiver's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(30);
/// The largest datagram sent or accepted.
pub const MAX_DATAGRAM: usize = 8192;
/// How many services the replay guard remembers at most.
pub const GUARD_CAPACITY: usize = 4096;

const MAC_HEX: usize = 64;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a service says about itself, once per broadcast interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub version: u8,
    pub service: ServiceInstance,
    /// The sender's wall clock (Unix milliseconds).
    pub sent_at_ms: u64,
    /// Random, so two announcements in the same millisecond still differ.
    pub nonce: u64,
}

impl Announcement {
    pub fn new(service: ServiceInstance, sent_at_ms: u64) -> Announcement {
        Announcement {
            version: ANNOUNCEMENT_VERSION,
            service,
            sent_at_ms,
            nonce: rand::random(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("announcement is {len} bytes, more than {MAX_DATAGRAM}")]
    TooLarge { len: usize },
    #[error("cannot encode the announcement: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why a replay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayReason {
    /// Sent more than the window before now.
    TooOld,
    /// Sent more than the window after now.
    InFuture,
    /// Not newer than the last one accepted from the same service.
    Repeated,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed announcement: {0}")]
    Malformed(String),
    #[error("unsigned announcement")]
    Unsigned,
    #[error("announcement with a wrong signature")]
    BadSignature,
    #[error("replayed announcement ({0:?})")]
    Replayed(ReplayReason),
}

/// Datagrams accepted and dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DiscoveryCounters {
    pub accepted: u64,
    /// Valid announcements of this process itself (multicast loops back).
    pub own: u64,
    pub malformed: u64,
    pub unsigned: u64,
    pub bad_signature: u64,
    pub replayed: u64,
}

impl DiscoveryCounters {
    pub fn reject(&mut self, r: &Rejection) {
        match r {
            Rejection::Malformed(_) => self.malformed += 1,
            Rejection::Unsigned => self.unsigned += 1,
            Rejection::BadSignature => self.bad_signature += 1,
            Rejection::Replayed(_) => self.replayed += 1,
        }
    }

    /// Every rejection (the tests' total).
    #[cfg(test)]
    pub fn rejected(&self) -> u64 {
        self.malformed + self.unsigned + self.bad_signature + self.replayed
    }
}

/// The newest send time accepted per service, so a captured datagram cannot be played again.
/// Entries whose time has left the window are dropped: the window refuses those anyway.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: HashMap<String, u64>,
}

impl ReplayGuard {
    fn admit(&mut self, service_id: &str, sent_at_ms: u64, now_ms: u64) -> bool {
        if self.last.get(service_id).is_some_and(|&t| sent_at_ms <= t) {
            return false;
        }
        if self.last.len() >= GUARD_CAPACITY && !self.last.contains_key(service_id) {
            let window = REPLAY_WINDOW.as_millis() as u64;
            self.last.retain(|_, t| t.saturating_add(window) >= now_ms);
            if self.last.len() >= GUARD_CAPACITY
                && let Some(oldest) = self
                    .last
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone())
            {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(service_id.to_string(), sent_at_ms);
        true
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

fn mac(secret: &[u8], json: &[u8]) -> HmacSha256 {
    let mut m =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(MAC_CONTEXT);
    m.update(json);
    m
}

/// The datagram for `ann`, signed with `secret`.
pub fn sign(ann: &Announcement, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let json = serde_json::to_vec(ann)?;
    let tag = mac(secret, &json).finalize().into_bytes();
    let mut out = Vec::with_capacity(PREFIX.len() + MAC_HEX + 1 + json.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(crate::hex::encode(&tag).as_bytes());
    out.push(b' ');
    out.extend_from_slice(&json);
    if out.len() > MAX_DATAGRAM {
        return Err(EncodeError::TooLarge { len: out.len() });
    }
    Ok(out)
}

/// Checks a received datagram: its form, its MAC over the bytes received, its time against
/// `now_ms` and the replay guard (which records it when it passes).
pub fn verify(
    datagram: &[u8],
    secret: &[u8],
    now_ms: u64,
    guard: &mut ReplayGuard,
) -> Result<Announcement, Rejection> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(Rejection::Malformed(format!(
            "{} bytes, more than {MAX_DATAGRAM}",
            datagram.len()
        )));
    }
    let Some(rest) = datagram.strip_prefix(PREFIX) else {
        return Err(if datagram.trim_ascii_start().starts_with(b"{") {
            Rejection::Unsigned
        } else {
            Rejection::Malformed("no MCPT1 prefix".into())
        });
    };
    if rest.starts_with(b"{") || rest.starts_with(b"- ") || rest.is_empty() || rest == b"-" {
        return Err(Rejection::Unsigned);
    }
    let (tag, json) = match (rest.get(..MAC_HEX), rest.get(MAC_HEX)) {
        (Some(tag), Some(b' ')) => (tag, &rest[MAC_HEX + 1..]),
        _ => return Err(Rejection::Malformed("no 64-digit MAC".into())),
    };
    let tag =
        crate::hex::decode(tag).ok_or_else(|| Rejection::Malformed("MAC is not hex".into()))?;
    mac(secret, json)
        .verify_slice(&tag)
        .map_err(|_| Rejection::BadSignature)?;
    let ann: Announcement =
        serde_json::from_slice(json).map_err(|e| Rejection::Malformed(e.to_string()))?;
    check_fields(&ann)?;
    let window = REPLAY_WINDOW.as_millis() as u64;
    if ann.sent_at_ms.saturating_add(window) < now_ms {
        return Err(Rejection::Replayed(ReplayReason::TooOld));
    }
    if ann.sent_at_ms > now_ms.saturating_add(window) {
        return Err(Rejection::Replayed(ReplayReason::InFuture));
    }
    if !guard.admit(&ann.service.service_id, ann.sent_at_ms, now_ms) {
        return Err(Rejection::Replayed(ReplayReason::Repeated));
    }
    Ok(ann)
}

fn check_fields(ann: &Announcement) -> Result<(), Rejection> {
    let bad = |why: &str| Err(Rejection::Malformed(why.to_string()));
    if ann.version != ANNOUNCEMENT_VERSION {
        return bad(&format!(
            "version {}, expected {ANNOUNCEMENT_VERSION}",
            ann.version
        ));
    }
    let s = &ann.service;
    if s.service_id.trim().is_empty() {
        return bad("empty service_id");
    }
    if s.port == 0 {
        return bad("port 0");
    }
    if s.host
        .contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
    {
        return bad("host is not a host name or address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ServiceType;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const SECRET: &[u8] = b"s3cret";
    const NOW: u64 = 1_800_000_000_000;

    fn service(id: &str) -> ServiceInstance {
        ServiceInstance {
            service_id: id.into(),
            service_type: ServiceType::Orchestrator,
            name: "orch".into(),
            host: "0.0.0.0".into(),
            port: 8080,
            capabilities: vec!["http_load".into()],
            location: "lab".into(),
            healthy: true,
            metadata: BTreeMap::new(),
        }
    }

    fn signed(id: &str, at: u64) -> Vec<u8> {
        sign(&Announcement::new(service(id), at), SECRET).unwrap()
    }

    #[test]
    fn a_signed_announcement_passes_once() {
        let mut g = ReplayGuard::default();
        let d = signed("o1", NOW);
        assert!(d.starts_with(b"MCPT1 "));
        let a = verify(&d, SECRET, NOW, &mut g).unwrap();
        assert_eq!(a.service, service("o1"));
        assert_eq!(
            verify(&d, SECRET, NOW + 1, &mut g),
            Err(Rejection::Replayed(ReplayReason::Repeated))
        );
    }

    #[test]
    fn unsigned_forms() {
        let json = serde_json::to_vec(&Announcement::new(service("o1"), NOW)).unwrap();
        let mut g = ReplayGuard::default();
        for d in [
            json.clone(),
            [b"MCPT1 ".as_slice(), &json].concat(),
            [b"MCPT1 - ".as_slice(), &json].concat(),
            b"MCPT1 ".to_vec(),
        ] {
            assert_eq!(verify(&d, SECRET, NOW, &mut g), Err(Rejection::Unsigned));
        }
    }

    #[test]
    fn wrong_key_or_altered_bytes_are_badly_signed() {
        let mut g = ReplayGuard::default();
        let d = signed("o1", NOW);
        assert_eq!(
            verify(&d, b"other", NOW, &mut g),
            Err(Rejection::BadSignature)
        );
        let mut altered = d.clone();
        let i = altered.len() - 3;
        altered[i] ^= 1;
        assert_eq!(
            verify(&altered, SECRET, NOW, &mut g),
            Err(Rejection::BadSignature)
        );
        // The MAC is over the bytes received: re-serialising differently breaks it.
        let json = &d[PREFIX.len() + MAC_HEX + 1..];
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        let redone = [&d[..PREFIX.len() + MAC_HEX + 1], &pretty].concat();
        assert_eq!(
            verify(&redone, SECRET, NOW, &mut g),
            Err(Rejection::BadSignature)
        );
        // Nothing rejected reached the guard.
        assert!(verify(&d, SECRET, NOW, &mut g).is_ok());
    }

    #[test]
    fn malformed_forms() {
        let mut g = ReplayGuard::default();
        let m = |d: &[u8], g: &mut ReplayGuard| {
            matches!(verify(d, SECRET, NOW, g), Err(Rejection::Malformed(_)))
        };
        assert!(m(b"hello", &mut g));
        assert!(m(b"MCPT1 abc {}", &mut g));
        assert!(m(
            &[b"MCPT1 ".as_slice(), &[b'z'; 64], b" {}"].concat(),
            &mut g
        ));
        assert!(m(&vec![b'{'; MAX_DATAGRAM + 1], &mut g));
        // Signed but not an announcement, or an announcement we do not take.
        let sign_raw = |json: &[u8]| {
            let tag = crate::hex::encode(&mac(SECRET, json).finalize().into_bytes());
            [PREFIX, tag.as_bytes(), b" ", json].concat()
        };
        assert!(m(&sign_raw(b"{\"x\":1}"), &mut g));
        let mut a = Announcement::new(service("o1"), NOW);
        a.version = 2;
        assert!(m(&sign_raw(&serde_json::to_vec(&a).unwrap()), &mut g));
        let mut a = Announcement::new(service(""), NOW);
        assert!(m(&sign_raw(&serde_json::to_vec(&a).unwrap()), &mut g));
        a.service.service_id = "o1".into();
        a.service.port = 0;
        assert!(m(&sign_raw(&serde_json::to_vec(&a).unwrap()), &mut g));
    }

    #[test]
    fn the_window_refuses_old_and_future_announcements() {
        let mut g = ReplayGuard::default();
        let w = REPLAY_WINDOW.as_millis() as u64;
        assert_eq!(
            verify(&signed("a", NOW - w - 1), SECRET, NOW, &mut g),
            Err(Rejection::Replayed(ReplayReason::TooOld))
        );
        assert_eq!(
            verify(&signed("b", NOW + w + 1), SECRET, NOW, &mut g),
            Err(Rejection::Replayed(ReplayReason::InFuture))
        );
        assert!(verify(&signed("c", NOW - w), SECRET, NOW, &mut g).is_ok());
        assert!(verify(&signed("d", NOW + w), SECRET, NOW, &mut g).is_ok());
    }

    #[test]
    fn an_older_announcement_after_a_newer_one_is_a_replay() {
        let mut g = ReplayGuard::default();
        let old = signed("o1", NOW - 1000);
        let new = signed("o1", NOW);
        assert!(verify(&new, SECRET, NOW, &mut g).is_ok());
        assert_eq!(
            verify(&old, SECRET, NOW, &mut g),
            Err(Rejection::Replayed(ReplayReason::Repeated))
        );
        // Another service's clock is its own.
        assert!(verify(&signed("o2", NOW - 1000), SECRET, NOW, &mut g).is_ok());
    }

    #[test]
    fn counters_count_each_kind() {
        let mut c = DiscoveryCounters::default();
        for r in [
            Rejection::Malformed("x".into()),
            Rejection::Unsigned,
            Rejection::BadSignature,
            Rejection::Replayed(ReplayReason::TooOld),
            Rejection::Replayed(ReplayReason::Repeated),
        ] {
            c.reject(&r);
        }
        assert_eq!(
            (c.malformed, c.unsigned, c.bad_signature, c.replayed),
            (1, 1, 1, 2)
        );
        assert_eq!(c.rejected(), 5);
    }

    #[test]
    fn the_guard_stays_bounded() {
        let mut g = ReplayGuard::default();
        for i in 0..GUARD_CAPACITY + 10 {
            assert!(g.admit(&format!("s{i}"), NOW, NOW));
        }
        assert!(g.len() <= GUARD_CAPACITY);
    }

    proptest! {
        #[test]
        fn round_trip_and_any_flipped_byte_fails(
            id in "[a-z0-9-]{1,20}",
            port in 1u16..,
            caps in proptest::collection::vec("[a-z_]{1,10}", 0..4),
            offset in -29_000i64..29_000,
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut s = service(&id);
            s.port = port;
            s.capabilities = caps;
            let at = (NOW as i64 + offset) as u64;
            let a = Announcement::new(s, at);
            let d = sign(&a, SECRET).unwrap();
            let mut altered = d.clone();
            let i = flip.index(d.len());
            altered[i] ^= 1 << bit;
            let mut g = ReplayGuard::default();
            prop_assert!(verify(&altered, SECRET, NOW, &mut g).is_err());
            prop_assert_eq!(verify(&d, SECRET, NOW, &mut g), Ok(a));
        }

        #[test]
        fn a_service_accepts_only_increasing_times(times in proptest::collection::vec(0u64..60_000, 1..30)) {
            let mut g = ReplayGuard::default();
            let mut last: Option<u64> = None;
            for t in times {
                let at = NOW - 30_000 + t;
                let now = NOW;
                let ok = verify(&signed("o1", at), SECRET, now, &mut g).is_ok();
                let expected = last.is_none_or(|l| at > l);
                prop_assert_eq!(ok, expected);
                if ok {
                    last = Some(at);
                }
            }
        }
    }
}
