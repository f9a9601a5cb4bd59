//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the types and flags the client uses,
//! and writers that append a frame to a buffer.

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The frame size every peer accepts until it says otherwise (and the most we accept).
pub const DEFAULT_MAX_FRAME: usize = 16_384;
/// The largest window the protocol allows.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    pub fn parse(b: &[u8]) -> Head {
        Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }
}

pub fn put_head(buf: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    buf.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    buf.extend_from_slice(&stream.to_be_bytes());
}

pub fn put_settings(buf: &mut Vec<u8>, settings: &[(u16, u32)]) {
    put_head(buf, settings.len() * 6, SETTINGS, 0, 0);
    for (id, value) in settings {
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn put_window_update(buf: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(buf, 4, WINDOW_UPDATE, 0, stream);
    buf.extend_from_slice(&increment.to_be_bytes());
}

pub fn put_rst(buf: &mut Vec<u8>, stream: u32, code: u32) {
    put_head(buf, 4, RST_STREAM, 0, stream);
    buf.extend_from_slice(&code.to_be_bytes());
}

pub fn put_ping(buf: &mut Vec<u8>, flags: u8, payload: &[u8]) {
    put_head(buf, 8, PING, flags, 0);
    buf.extend_from_slice(payload);
}

pub fn put_goaway(buf: &mut Vec<u8>, last: u32, code: u32) {
    put_head(buf, 8, GOAWAY, 0, 0);
    buf.extend_from_slice(&last.to_be_bytes());
    buf.extend_from_slice(&code.to_be_bytes());
}

/// A header block split into HEADERS and CONTINUATION frames of at most `max` bytes.
pub fn put_headers(buf: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool, max: usize) {
    let end = if end_stream { END_STREAM } else { 0 };
    let mut chunks = block.chunks(max.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let mut rest = chunks.peekable();
    let last = rest.peek().is_none();
    put_head(
        buf,
        first.len(),
        HEADERS,
        end | if last { END_HEADERS } else { 0 },
        stream,
    );
    buf.extend_from_slice(first);
    while let Some(chunk) = rest.next() {
        let flags = if rest.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        put_head(buf, chunk.len(), CONTINUATION, flags, stream);
        buf.extend_from_slice(chunk);
    }
}

/// The payload without its padding (and without the priority fields of HEADERS); `None`
/// when the padding is longer than the frame.
pub fn unpad<'a>(head: &Head, payload: &'a [u8]) -> Option<&'a [u8]> {
    let mut p = payload;
    let mut pad = 0;
    if head.flags & PADDED != 0 && (head.kind == DATA || head.kind == HEADERS) {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    if head.kind == HEADERS && head.flags & PRIORITY != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// The name of an error code, for messages.
pub fn error_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("error code {code:#x}"),
    };
    name.to_string()
}
