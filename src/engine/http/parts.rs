//! What a flow step sends and keeps: the [`Parts`] of a request rendered at run time for a
//! target (its path and query, extra headers, body), which of the response to [`Keep`], and
//! the kept [`Reply`]. [`Kept`] gathers a response's headers and body (up to [`BODY_CAP`])
//! while the HTTP/1.1 codec or the HTTP/2 driver reads it; the plain path keeps nothing and
//! never touches it.

use bytes::{Bytes, BytesMut};
use url::Url;

/// The most of a response body a [`Reply`] keeps; the rest is read and counted, not kept.
pub const BODY_CAP: usize = 1 << 20;

/// What a flow step sends to a target (the target gives the endpoint, method, TLS, HTTP
/// version, timeout, expected status and whether redirects are followed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The path and query, e.g. `/users/42?expand=orders`: on the target's endpoint always
    /// (a fragment is dropped).
    pub path_and_query: String,
    /// Added after the target's own headers; a name given here replaces the target's
    /// headers of that name (`cookie`, `authorization`, `content-type`). `content-length`
    /// and `transfer-encoding` are ignored: the length is computed.
    pub headers: Vec<(String, String)>,
    /// The body; `None` sends the target's own. Methods GET and HEAD send none.
    pub body: Option<Bytes>,
}

/// What to keep of the response besides its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// Every header.
    pub headers: bool,
    /// The `set-cookie` headers only (a cookie jar's): the other headers cost nothing.
    pub set_cookie: bool,
    pub body: bool,
}

/// The kept response (of the final hop, when redirects are followed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// With [`Keep::headers`]: every header of the final head in order, names lower-cased,
    /// repeated names kept (several `set-cookie`); empty otherwise.
    pub headers: Vec<(String, String)>,
    /// With [`Keep::body`]: the body (chunked framing removed), up to [`BODY_CAP`] bytes;
    /// empty otherwise.
    pub body: Bytes,
    /// The body went past [`BODY_CAP`]: `body` holds its start only (the outcome's `bytes`
    /// counts it all).
    pub truncated: bool,
}

impl Reply {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response's kept parts while it is read.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    keep: Keep,
    headers: Vec<(String, String)>,
    body: BytesMut,
    truncated: bool,
}

impl Kept {
    pub fn new(keep: Keep) -> Kept {
        Kept {
            keep,
            ..Kept::default()
        }
    }

    pub fn keep(&self) -> Keep {
        self.keep
    }

    /// A header of the response's final head.
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        if self.keep.headers || self.keep.set_cookie && name.eq_ignore_ascii_case(b"set-cookie") {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(value).into_owned();
            self.headers.push((name, value));
        }
    }

    /// The headers seen were an interim head's (1xx): the final head follows.
    pub fn interim(&mut self) {
        self.headers.clear();
    }

    /// Body bytes as they arrive.
    pub fn data(&mut self, data: &[u8]) {
        if !self.keep.body {
            return;
        }
        let room = BODY_CAP - self.body.len();
        if data.len() > room {
            self.truncated = true;
        }
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }

    pub fn reply(self, status: u16) -> Reply {
        Reply {
            status,
            headers: self.headers,
            body: self.body.freeze(),
            truncated: self.truncated,
        }
    }
}

/// Headers the parts cannot set: the codec computes the body's length.
fn framing(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

impl Parts {
    /// The target's URL with this path and query.
    pub(super) fn url(&self, target: &Url) -> Url {
        let rest = self.path_and_query.split('#').next().unwrap_or_default();
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut url = target.clone();
        url.set_fragment(None);
        url.set_path(if path.is_empty() { "/" } else { path });
        url.set_query(query);
        url
    }

    /// Whether the parts name this header (so the target's of that name are left out).
    fn names(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The HTTP/1.1 headers: the target's, less those the parts name, then the parts';
    /// `content-length` and `transfer-encoding` of neither.
    pub(super) fn h1_headers(&self, target: &[(String, String)]) -> Vec<(String, String)> {
        let own = target.iter().filter(|(k, _)| !self.names(k));
        own.chain(&self.headers)
            .filter(|(k, _)| !framing(k))
            .cloned()
            .collect()
    }

    /// The HTTP/2 headers: the target's prepared ones (user agent and node included), less
    /// those the parts name, then the parts' (the length is added per hop).
    pub(super) fn h2_headers(&self, target: &http::HeaderMap) -> http::HeaderMap {
        let mut map = target.clone();
        map.remove(http::header::CONTENT_LENGTH);
        for (k, _) in &self.headers {
            if let Ok(k) = http::HeaderName::from_bytes(k.as_bytes()) {
                map.remove(k);
            }
        }
        for (k, v) in &self.headers {
            let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) else {
                continue;
            };
            if !framing(k.as_str()) {
                map.append(k, v);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests;
