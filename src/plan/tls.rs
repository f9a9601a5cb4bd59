//! How a load task's targets are spoken to: `tls: {ca, insecure, cert, key, server_name}` and
//! `http_version`, given for the task and overridden per target key by key. The PEM files are
//! read here, when the plan is read, so that nodes need no files; a plan whose file is
//! missing, holds no certificate or no private key, or names an invalid `server_name` is
//! refused with the key's path.
//!
//! Also the serde form of [`Tls`] and [`Pem`]: in JSON (REST bodies, the store, reports) a
//! PEM file shows as its path, never its contents; on the cluster's wire (postcard)
//! everything goes.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::engine::target::{HttpVersion, Identity, Pem, Tls};
use crate::validate::{FieldErrors, Obj, describe};

/// The largest PEM file a plan may name (a CA bundle fits; the file travels with the task).
pub const MAX_PEM_BYTES: u64 = 256 * 1024;

/// What a target takes from its task unless it says otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetDefaults {
    pub tls: Tls,
    pub http_version: HttpVersion,
}

/// Reads `tls` and `http_version` of `o` over `base` (the task's for a target, the defaults
/// for a task).
pub fn read_defaults(
    o: &mut Obj<'_>,
    base: &TargetDefaults,
    e: &mut FieldErrors,
) -> TargetDefaults {
    TargetDefaults {
        tls: read_tls(o, &base.tls, e),
        http_version: read_http_version(o, e).unwrap_or(base.http_version),
    }
}

/// `http_version`: `auto`, `"1.1"` or `"2"`; YAML's numbers `1.1` and `2` read too.
pub fn read_http_version(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<HttpVersion> {
    let v = o.raw("http_version")?;
    let version = match v {
        Value::String(s) => HttpVersion::from_name(&s.trim().to_ascii_lowercase()),
        Value::Number(n) => match n.as_f64() {
            Some(1.1) => Some(HttpVersion::Http1),
            Some(2.0) => Some(HttpVersion::Http2),
            _ => None,
        },
        _ => None,
    };
    if version.is_none() {
        e.push(
            o.key_path("http_version"),
            format!("expected auto, \"1.1\" or \"2\", got {}", describe(v)),
        );
    }
    version
}

/// `tls` over `base`: each key given replaces the base's (`cert` and `key` as a pair).
pub fn read_tls(o: &mut Obj<'_>, base: &Tls, e: &mut FieldErrors) -> Tls {
    let mut tls = base.clone();
    let Some(v) = o.raw("tls") else {
        return tls;
    };
    let Some(mut t) = Obj::new(v, &o.key_path("tls"), e) else {
        return tls;
    };
    if let Some(ca) = read_pem(&mut t, "ca", Contents::Certificates, e) {
        tls.ca = Some(ca);
    }
    if let Some(insecure) = t.opt::<bool>("insecure", e) {
        tls.insecure = insecure;
    }
    if let Some(identity) = read_identity(&mut t, e) {
        tls.identity = Some(identity);
    }
    if let Some(name) = read_server_name(&mut t, e) {
        tls.server_name = Some(name);
    }
    t.finish(e);
    tls
}

/// `cert` and `key`: both or neither.
fn read_identity(t: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Identity> {
    let given = (t.raw("cert").is_some(), t.raw("key").is_some());
    match given {
        (true, false) => e.push(
            t.key_path("key"),
            "is required with cert: a client certificate goes with its private key (PEM)",
        ),
        (false, true) => e.push(
            t.key_path("cert"),
            "is required with key: a private key goes with its client certificate (PEM)",
        ),
        _ => {}
    }
    let cert = read_pem(t, "cert", Contents::Certificates, e);
    let key = read_pem(t, "key", Contents::PrivateKey, e);
    Some(Identity {
        cert: cert?,
        key: key?,
    })
}

/// `server_name`: a DNS name or an IP address, sent in SNI and verified.
fn read_server_name(t: &mut Obj<'_>, e: &mut FieldErrors) -> Option<String> {
    let name: String = t.opt("server_name", e)?;
    match ServerName::try_from(name.as_str()) {
        Ok(_) => Some(name),
        Err(_) => {
            e.push(
                t.key_path("server_name"),
                format!("{name:?} is not a valid DNS name or IP address"),
            );
            None
        }
    }
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum Contents {
    /// One certificate or more.
    Certificates,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// The PEM file named by `key`, read and checked.
fn read_pem(
    t: &mut Obj<'_>,
    key: &'static str,
    what: Contents,
    e: &mut FieldErrors,
) -> Option<Pem> {
    let path: String = t.opt(key, e)?;
    let at = t.key_path(key);
    match load_pem(&path, what) {
        Ok(pem) => Some(Pem { path, pem }),
        Err(why) => {
            e.push(at, why);
            None
        }
    }
}

/// The contents of the PEM file at `path`, if it holds `what`.
fn load_pem(path: &str, what: Contents) -> Result<String, String> {
    if path.trim().is_empty() {
        return Err("expected the path of a PEM file, got an empty string".into());
    }
    let size = std::fs::metadata(path)
        .map_err(|err| format!("cannot read {path:?}: {err}"))?
        .len();
    if size > MAX_PEM_BYTES {
        return Err(format!(
            "{path:?} is {size} bytes, more than a PEM file may be ({MAX_PEM_BYTES})"
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("cannot read {path:?}: {err}"))?;
    let bad = |err: rustls_pki_types::pem::Error| format!("{path:?} is not valid PEM: {err}");
    match what {
        Contents::Certificates => {
            let certs = CertificateDer::pem_slice_iter(text.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            if certs.is_empty() {
                return Err(format!(
                    "{path:?} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
                ));
            }
        }
        Contents::PrivateKey => match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
            Ok(_) => {}
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(format!(
                    "{path:?} holds no private key (expected a PKCS#8, PKCS#1 or SEC1 PEM key)"
                ));
            }
            Err(err) => return Err(bad(err)),
        },
    }
    Ok(text)
}

/// A PEM file in JSON: its path. On the wire: its path and contents.
impl Serialize for Pem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.path)
        } else {
            WirePem::serialize(self, s)
        }
    }
}

/// Read back only from the wire: JSON does not carry the contents.
impl<'de> Deserialize<'de> for Pem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pem, D::Error> {
        if d.is_human_readable() {
            return Err(D::Error::custom(
                "a PEM file's contents are not carried in JSON; read the plan again",
            ));
        }
        WirePem::deserialize(d)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Pem")]
struct WirePem {
    path: String,
    pem: String,
}

/// `tls` in JSON, as a plan writes it: `{ca, insecure, cert, key, server_name}`, the files
/// by their paths, the absent ones left out.
#[derive(Serialize)]
struct JsonTls<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<&'a str>,
    insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
}

/// [`Tls`] on the cluster's wire: every field, in order.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Tls")]
struct WireTls {
    ca: Option<Pem>,
    insecure: bool,
    identity: Option<Identity>,
    server_name: Option<String>,
}

impl Serialize for Tls {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let id = self.identity.as_ref();
            JsonTls {
                ca: self.ca.as_ref().map(|p| p.path.as_str()),
                insecure: self.insecure,
                cert: id.map(|i| i.cert.path.as_str()),
                key: id.map(|i| i.key.path.as_str()),
                server_name: self.server_name.as_deref(),
            }
            .serialize(s)
        } else {
            WireTls::serialize(self, s)
        }
    }
}

/// Read back only from the wire.
impl<'de> Deserialize<'de> for Tls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tls, D::Error> {
        WireTls::deserialize(d)
    }
}

#[cfg(test)]
mod tests;
