//! Our HTTP/1.1 codec: a request's head encoded once into bytes, and a response read from a
//! connection into its reused buffer, the head parsed with httparse and the body counted,
//! never copied (by `Content-Length`, chunked, or to the end of the connection). A flow's
//! request reads through a [`Sink`] that keeps the head's headers and the body's bytes; the
//! plain path's sink is `()`, whose calls compile away.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use url::Url;

use super::parts::Kept;

/// The user agent of every request.
pub(super) const USER_AGENT: &str = concat!("mcpt/", env!("CARGO_PKG_VERSION"));
/// A connection's read buffer starts this small (most response heads fit: 10,000 idle
/// connections hold 10 MiB of it), doubles for a longer head up to [`MAX_HEAD`], and grows to
/// [`BODY_BUFFER`] the first time a body is larger than it, so big bodies take few reads.
const START: usize = 1024;
/// The longest response head (or chunk-size line) read.
const MAX_HEAD: usize = 64 * 1024;
/// The buffer of a connection whose bodies do not fit the starting one.
const BODY_BUFFER: usize = 16 * 1024;
/// Headers of a response head read at most.
const MAX_HEADERS: usize = 100;

/// A request's bytes: its head and its body, encoded once (per target, or per redirect hop).
/// `body` is sent only by methods other than GET and HEAD.
pub(super) fn encode_request(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    node: Option<&str>,
    body: Option<&[u8]>,
) -> Bytes {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let body = body.filter(|_| method != "GET" && method != "HEAD");
    let mut out = BytesMut::with_capacity(256 + body.map_or(0, <[u8]>::len));
    out.put_slice(method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(url.path().as_bytes());
    if let Some(q) = url.query() {
        out.put_u8(b'?');
        out.put_slice(q.as_bytes());
    }
    out.put_slice(b" HTTP/1.1\r\n");
    let mut line = |k: &str, v: &str| {
        out.put_slice(k.as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    };
    if !has("host") {
        // The URL's own text: `host[:port]` as written, with no formatting per request.
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        line("host", authority);
    }
    if !has("user-agent") {
        line("user-agent", USER_AGENT);
    }
    if let Some(node) = node {
        line(super::NODE_HEADER, node);
    }
    for (k, v) in headers {
        line(k, v);
    }
    if !has("content-length") && !has("transfer-encoding") {
        match body {
            Some(b) => line("content-length", &b.len().to_string()),
            None if method != "GET" && method != "HEAD" => line("content-length", "0"),
            None => {}
        }
    }
    out.put_slice(b"\r\n");
    if let Some(b) = body {
        out.put_slice(b);
    }
    out.freeze()
}

/// What a read keeps of a response besides its status and length.
pub(super) trait Sink {
    /// False for `()`: no header is looked at, no byte copied.
    const KEEPS: bool;
    /// The headers of the final head.
    fn head(&mut self, headers: &[httparse::Header<'_>]);
    /// Body bytes (chunked framing removed) as they are read.
    fn data(&mut self, data: &[u8]);
}

/// The plain path: nothing kept.
impl Sink for () {
    const KEEPS: bool = false;
    fn head(&mut self, _: &[httparse::Header<'_>]) {}
    fn data(&mut self, _: &[u8]) {}
}

impl Sink for Kept {
    const KEEPS: bool = true;
    fn head(&mut self, headers: &[httparse::Header<'_>]) {
        for h in headers {
            self.header(h.name.as_bytes(), h.value);
        }
    }
    fn data(&mut self, data: &[u8]) {
        Kept::data(self, data);
    }
}

/// A connection's read buffer: bytes `pos..end` are read and not yet consumed.
pub(super) struct Buffer {
    data: Box<[u8]>,
    pos: usize,
    end: usize,
    /// The most a head may make it grow to.
    max_head: usize,
}

impl Default for Buffer {
    fn default() -> Buffer {
        Buffer::new(START, MAX_HEAD)
    }
}

impl Buffer {
    /// A buffer of `start` bytes that a response head may grow up to `max_head`.
    pub fn new(start: usize, max_head: usize) -> Buffer {
        Buffer {
            data: vec![0; start].into_boxed_slice(),
            pos: 0,
            end: 0,
            max_head,
        }
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Moves the waiting bytes into a new buffer of `size` bytes.
    fn grow(&mut self, size: usize) {
        let mut data = vec![0; size].into_boxed_slice();
        let n = self.available();
        data[..n].copy_from_slice(&self.data[self.pos..self.end]);
        self.data = data;
        self.pos = 0;
        self.end = n;
    }

    /// Before consuming `n` more bytes of a body: a buffer too small for them grows once to
    /// [`BODY_BUFFER`], so a large body is read in large pieces.
    fn for_body(&mut self, n: u64) {
        if n > self.available() as u64 && self.data.len() < BODY_BUFFER {
            self.grow(BODY_BUFFER);
        }
    }

    /// Whether bytes are waiting (left over after the last response).
    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    fn available(&self) -> usize {
        self.end - self.pos
    }

    /// Reads more after what is waiting; `Ok(0)` at the end of the stream, and an error when
    /// the buffer is full of unconsumed bytes.
    async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<usize> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.data.len() {
            if self.pos == 0 {
                if self.data.len() >= self.max_head {
                    return Err(io::Error::other("response head or chunk line too long"));
                }
                self.grow((self.data.len() * 2).min(self.max_head));
            } else {
                self.data.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
        }
        let n = io.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Consumes `n` bytes into `sink`, reading as many as needed (each read reuses the whole
    /// buffer).
    async fn skip<R: AsyncRead + Unpin, S: Sink>(
        &mut self,
        io: &mut R,
        mut n: u64,
        sink: &mut S,
    ) -> Result<(), Broken> {
        self.for_body(n);
        loop {
            let here = (self.available() as u64).min(n);
            if S::KEEPS {
                sink.data(&self.data[self.pos..self.pos + here as usize]);
            }
            self.pos += here as usize;
            n -= here;
            if n == 0 {
                return Ok(());
            }
            match self.fill(io).await {
                Ok(0) => {
                    return Err(Broken::Body(format!(
                        "connection closed {n} bytes before the body's end"
                    )));
                }
                Ok(_) => {}
                Err(e) => return Err(Broken::Io(e)),
            }
        }
    }

    /// Consumes everything up to the end of the stream into `sink`; how many bytes that was.
    async fn skip_to_end<R: AsyncRead + Unpin, S: Sink>(
        &mut self,
        io: &mut R,
        sink: &mut S,
    ) -> Result<u64, Broken> {
        self.for_body(u64::MAX);
        let mut n = self.available() as u64;
        if S::KEEPS {
            sink.data(&self.data[self.pos..self.end]);
        }
        self.pos = self.end;
        loop {
            match self.fill(io).await {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k as u64;
                    if S::KEEPS {
                        sink.data(&self.data[self.pos..self.end]);
                    }
                    self.pos = self.end;
                }
                // A TLS peer that closes without close_notify still ends the body.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
                Err(e) => return Err(Broken::Io(e)),
            }
        }
    }

    /// Makes at least `n` bytes available; `false` at the end of the stream.
    async fn want<R: AsyncRead + Unpin>(&mut self, io: &mut R, n: usize) -> Result<bool, Broken> {
        while self.available() < n {
            match self.fill(io).await {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) => return Err(Broken::Io(e)),
            }
        }
        Ok(true)
    }
}

/// A response read to its end.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub status: u16,
    /// Body bytes (chunked framing not counted).
    pub bytes: u64,
    /// The connection may carry the next request.
    pub keep_alive: bool,
    /// `Location`, when asked for and present.
    pub location: Option<String>,
}

/// Why a response could not be read.
#[derive(Debug)]
pub(super) enum Broken {
    /// The connection ended before the first byte of a response: on a kept-alive connection,
    /// the server had closed it meanwhile (the request is sent again on a fresh one).
    Unanswered(Option<io::Error>),
    /// An I/O error after the response began.
    Io(io::Error),
    /// A response that is not HTTP, or ends early.
    Body(String),
}

/// How the body of a response is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    ToEnd,
}

/// Reads one response from `io` into `buf`. `head` is a HEAD request (no body follows);
/// `location` asks for the `Location` header; `sink` gets the final head's headers and the
/// body (`&mut ()` on the plain path).
pub(super) async fn read_response<R: AsyncRead + Unpin, S: Sink>(
    io: &mut R,
    buf: &mut Buffer,
    head: bool,
    location: bool,
    sink: &mut S,
) -> Result<Response, Broken> {
    let mut started = !buf.is_empty();
    let (status, framing, keep_alive, location) = loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf.data[buf.pos..buf.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let parsed = head_fields(&resp, location);
                    buf.pos += n;
                    // Interim responses (100 Continue, 103 Early Hints): the final one follows.
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    let (length, chunked, close, location) = parsed?;
                    if S::KEEPS {
                        sink.head(resp.headers);
                    }
                    let framing = if head || status < 200 || status == 204 || status == 304 {
                        Framing::None
                    } else if chunked {
                        Framing::Chunked
                    } else if let Some(n) = length {
                        Framing::Length(n)
                    } else {
                        Framing::ToEnd
                    };
                    let keep_alive = !close && status != 101 && !matches!(framing, Framing::ToEnd);
                    break (status, framing, keep_alive, location);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(Broken::Body(format!("unparsable response head: {e}"))),
            }
        }
        match buf.fill(io).await {
            Ok(0) if started => {
                return Err(Broken::Body(
                    "connection closed in the response head".into(),
                ));
            }
            Ok(0) => return Err(Broken::Unanswered(None)),
            Ok(_) => started = true,
            Err(e) if started => return Err(Broken::Io(e)),
            Err(e) => return Err(Broken::Unanswered(Some(e))),
        }
    };
    let bytes = match framing {
        Framing::None => 0,
        Framing::Length(n) => {
            buf.skip(io, n, sink).await?;
            n
        }
        Framing::Chunked => chunked(io, buf, sink).await?,
        Framing::ToEnd => buf.skip_to_end(io, sink).await?,
    };
    Ok(Response {
        status,
        bytes,
        keep_alive,
        location,
    })
}

/// What the head says: `Content-Length`, chunked, `Connection: close` (or HTTP/1.0 without
/// keep-alive), and `Location` when asked for.
#[allow(clippy::type_complexity)]
fn head_fields(
    resp: &httparse::Response<'_, '_>,
    want_location: bool,
) -> Result<(Option<u64>, bool, bool, Option<String>), Broken> {
    let mut length = None;
    let mut chunked = false;
    let mut close = None;
    let mut location = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| Broken::Body("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(Broken::Body("conflicting Content-Length headers".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked is the last coding when it is there at all.
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = Some(true);
                } else if token.eq_ignore_ascii_case(b"keep-alive") && close.is_none() {
                    close = Some(false);
                }
            }
        } else if want_location && name.eq_ignore_ascii_case("location") {
            location = Some(String::from_utf8_lossy(h.value).into_owned());
        }
    }
    // HTTP/1.0 closes unless told otherwise; 1.1 keeps alive unless told otherwise.
    let close = close.unwrap_or(resp.version == Some(0));
    Ok((length, chunked, close, location))
}

/// Consumes a chunked body (extensions and trailers skipped); the data bytes.
async fn chunked<R: AsyncRead + Unpin, S: Sink>(
    io: &mut R,
    buf: &mut Buffer,
    sink: &mut S,
) -> Result<u64, Broken> {
    let early = || Broken::Body("connection closed inside a chunked body".into());
    let mut total = 0u64;
    loop {
        let size = loop {
            match httparse::parse_chunk_size(&buf.data[buf.pos..buf.end]) {
                Ok(httparse::Status::Complete((n, size))) => {
                    buf.pos += n;
                    break size;
                }
                Ok(httparse::Status::Partial) => {
                    if !buf.want(io, buf.available() + 1).await? {
                        return Err(early());
                    }
                }
                Err(_) => return Err(Broken::Body("bad chunk size".into())),
            }
        };
        if size == 0 {
            break;
        }
        buf.skip(io, size, sink).await?;
        total += size;
        if !buf.want(io, 2).await? {
            return Err(early());
        }
        if &buf.data[buf.pos..buf.pos + 2] != b"\r\n" {
            return Err(Broken::Body("chunk not followed by CRLF".into()));
        }
        buf.pos += 2;
    }
    // Trailers: header lines up to an empty one.
    loop {
        let line_end = loop {
            if let Some(i) = buf.data[buf.pos..buf.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                break i;
            }
            if !buf.want(io, buf.available() + 1).await? {
                return Err(early());
            }
        };
        buf.pos += line_end + 2;
        if line_end == 0 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests;
