//! [`Window`]'s serde form, for postcard (the cluster link and the store): the counters, the
//! error counts as `[total, connect, timeout, status, body, tls, check]`, the status codes as
//! pairs, each histogram as its V2+DEFLATE bytes (hdrhistogram has no serde), the TLS
//! handshakes, the per-request windows by slot, then a flow's iterations and data exhaustion. A histogram read back is re-homed into
//! its kind's bounds ([`new_histogram`], [`new_request_histogram`]), so merging it cannot
//! fail. Any change here is a new `hub::frame::PROTOCOL_VERSION` (7: per-request windows and
//! the `check` errors); [`Legacy`] reads what version 6 stored.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Serialize};

use super::request::{RequestWindow, new_request_histogram};
use super::{ErrorCounts, ErrorKind, Window, new_histogram};

#[derive(Serialize, Deserialize)]
struct Encoded {
    index: u64,
    sent: u64,
    completed: u64,
    late_starts: u64,
    errors: [u64; 7],
    slow: u64,
    bytes: u64,
    status_codes: Vec<(u16, u64)>,
    corrected: Vec<u8>,
    uncorrected: Vec<u8>,
    tls_handshakes: [u64; 2],
    requests: Vec<EncodedRequest>,
    /// `[iterations, data_exhausted]`.
    flow: [u64; 2],
}

#[derive(Serialize, Deserialize)]
struct EncodedRequest {
    slot: u16,
    completed: u64,
    errors: [u64; 7],
    checks_failed: u64,
    status_codes: Vec<(u16, u64)>,
    /// `(kind, message, count)`, the kind as [`ErrorKind::ALL`]'s index.
    failures: Vec<(u8, String, u64)>,
    corrected: Vec<u8>,
    uncorrected: Vec<u8>,
}

/// Version 6's form, without the per-request windows and the `check` errors.
#[derive(Deserialize)]
struct Encoded6 {
    index: u64,
    sent: u64,
    completed: u64,
    late_starts: u64,
    errors: [u64; 6],
    slow: u64,
    bytes: u64,
    status_codes: Vec<(u16, u64)>,
    corrected: Vec<u8>,
    uncorrected: Vec<u8>,
    tls_handshakes: [u64; 2],
}

/// A window as version 6 stored it (an execution running across an upgrade).
pub struct Legacy(pub Window);

fn histogram_bytes(h: &Histogram<u64>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

fn read_histogram(bytes: &[u8], mut ours: Histogram<u64>) -> Result<Histogram<u64>, String> {
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("bad histogram: {e:?}"))?;
    ours.add(&h).map_err(|e| format!("bad histogram: {e:?}"))?;
    Ok(ours)
}

fn error_array(e: &ErrorCounts) -> [u64; 7] {
    [
        e.total, e.connect, e.timeout, e.status, e.body, e.tls, e.check,
    ]
}

fn error_counts([total, connect, timeout, status, body, tls, check]: [u64; 7]) -> ErrorCounts {
    ErrorCounts {
        total,
        connect,
        timeout,
        status,
        body,
        tls,
        check,
    }
}

fn encode_request(slot: usize, r: &RequestWindow) -> Result<EncodedRequest, String> {
    Ok(EncodedRequest {
        slot: u16::try_from(slot).map_err(|_| format!("request slot {slot} out of range"))?,
        completed: r.completed,
        errors: error_array(&r.errors),
        checks_failed: r.checks_failed,
        status_codes: r.status_codes.iter().map(|(k, v)| (*k, *v)).collect(),
        failures: r
            .failures
            .iter()
            .map(|((kind, message), n)| (kind.index(), message.clone(), *n))
            .collect(),
        corrected: histogram_bytes(&r.corrected)?,
        uncorrected: histogram_bytes(&r.uncorrected)?,
    })
}

fn decode_request(r: EncodedRequest) -> Result<(usize, RequestWindow), String> {
    let mut failures = BTreeMap::new();
    for (kind, message, n) in r.failures {
        let kind = ErrorKind::ALL
            .get(usize::from(kind))
            .ok_or_else(|| format!("bad error kind {kind}"))?;
        failures.insert((*kind, message), n);
    }
    Ok((
        usize::from(r.slot),
        RequestWindow {
            completed: r.completed,
            errors: error_counts(r.errors),
            checks_failed: r.checks_failed,
            status_codes: r.status_codes.into_iter().collect(),
            failures,
            corrected: read_histogram(&r.corrected, new_request_histogram())?,
            uncorrected: read_histogram(&r.uncorrected, new_request_histogram())?,
        },
    ))
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let requests = self
            .requests
            .iter()
            .enumerate()
            .filter_map(|(slot, r)| r.as_deref().map(|r| encode_request(slot, r)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(S::Error::custom)?;
        Encoded {
            index: self.index,
            sent: self.sent,
            completed: self.completed,
            late_starts: self.late_starts,
            errors: error_array(&self.errors),
            slow: self.slow,
            bytes: self.bytes,
            status_codes: self.status_codes.iter().map(|(k, v)| (*k, *v)).collect(),
            corrected: histogram_bytes(&self.corrected).map_err(S::Error::custom)?,
            uncorrected: histogram_bytes(&self.uncorrected).map_err(S::Error::custom)?,
            tls_handshakes: [self.tls_handshakes_full, self.tls_handshakes_resumed],
            requests,
            flow: [self.iterations, self.data_exhausted],
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Encoded::deserialize(d)?;
        let [tls_handshakes_full, tls_handshakes_resumed] = w.tls_handshakes;
        let [iterations, data_exhausted] = w.flow;
        let mut requests: Vec<Option<Box<RequestWindow>>> = Vec::new();
        for r in w.requests {
            let (slot, r) = decode_request(r).map_err(D::Error::custom)?;
            if slot > super::request::MAX_NAMES {
                return Err(D::Error::custom(format!(
                    "request slot {slot} out of range"
                )));
            }
            if requests.len() <= slot {
                requests.resize_with(slot + 1, || None);
            }
            requests[slot] = Some(Box::new(r));
        }
        Ok(Window {
            index: w.index,
            sent: w.sent,
            completed: w.completed,
            late_starts: w.late_starts,
            errors: error_counts(w.errors),
            slow: w.slow,
            bytes: w.bytes,
            status_codes: w.status_codes.into_iter().collect::<BTreeMap<_, _>>(),
            corrected: read_histogram(&w.corrected, new_histogram()).map_err(D::Error::custom)?,
            uncorrected: read_histogram(&w.uncorrected, new_histogram())
                .map_err(D::Error::custom)?,
            tls_handshakes_full,
            tls_handshakes_resumed,
            requests,
            iterations,
            data_exhausted,
        })
    }
}

impl<'de> Deserialize<'de> for Legacy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Encoded6::deserialize(d)?;
        let [total, connect, timeout, status, body, tls] = w.errors;
        let [tls_handshakes_full, tls_handshakes_resumed] = w.tls_handshakes;
        Ok(Legacy(Window {
            index: w.index,
            sent: w.sent,
            completed: w.completed,
            late_starts: w.late_starts,
            errors: error_counts([total, connect, timeout, status, body, tls, 0]),
            slow: w.slow,
            bytes: w.bytes,
            status_codes: w.status_codes.into_iter().collect::<BTreeMap<_, _>>(),
            corrected: read_histogram(&w.corrected, new_histogram()).map_err(D::Error::custom)?,
            uncorrected: read_histogram(&w.uncorrected, new_histogram())
                .map_err(D::Error::custom)?,
            tls_handshakes_full,
            tls_handshakes_resumed,
            requests: Vec::new(),
            iterations: 0,
            data_exhausted: 0,
        }))
    }
}
