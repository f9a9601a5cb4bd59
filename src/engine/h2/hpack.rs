//! HPACK (RFC 7541) for the client: the decoder of response header blocks (static table,
//! dynamic table with eviction and size updates, integers, Huffman strings), which allocates
//! nothing once its buffers have grown, and the encoder of a request head, run once per
//! target: indexed static entries where one matches (`:method GET`, `:scheme https`,
//! `:path /`), else literals without indexing that name a static entry where they can. It
//! never inserts into the server's dynamic table, so the block is the same on every
//! connection and every request.

use std::collections::VecDeque;

use super::huffman;

/// RFC 7541 Appendix A.
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Why a header block could not be decoded (a COMPRESSION_ERROR for the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// An index naming no entry.
    Index(usize),
    /// An integer too large, or a block that ends in the middle of a field.
    Truncated,
    Huffman,
    /// A dynamic table size update above the limit we announced, or after a field.
    SizeUpdate,
}

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HpackError::Index(i) => write!(f, "HPACK index {i} names no entry"),
            HpackError::Truncated => f.write_str("truncated HPACK block"),
            HpackError::Huffman => f.write_str("malformed Huffman string"),
            HpackError::SizeUpdate => f.write_str("invalid dynamic table size update"),
        }
    }
}

/// The dynamic table: the entries' bytes appended to one buffer (newest last), compacted once
/// the evicted bytes at its front pass the table's size, so inserts stop allocating.
#[derive(Debug, Default)]
struct Table {
    bytes: Vec<u8>,
    /// (start in `bytes`, name length, value length), newest first.
    entries: VecDeque<(usize, usize, usize)>,
    /// The RFC's size: each entry's name and value lengths plus 32.
    size: usize,
    max: usize,
}

impl Table {
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::Index(0)),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => {
                let &(start, n, v) = self
                    .entries
                    .get(index - 62)
                    .ok_or(HpackError::Index(index))?;
                Ok((
                    &self.bytes[start..start + n],
                    &self.bytes[start + n..start + n + v],
                ))
            }
        }
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let (_, n, v) = self.entries.pop_back().expect("size counts entries");
            self.size -= n + v + 32;
        }
        if self.entries.is_empty() {
            self.bytes.clear();
        }
    }

    fn set_max(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + 32;
        if size > self.max {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max - size);
        let low = self.entries.back().map_or(self.bytes.len(), |e| e.0);
        if low >= self.max.max(256) {
            self.bytes.drain(..low);
            for e in &mut self.entries {
                e.0 -= low;
            }
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.entries.push_front((start, name.len(), value.len()));
        self.size += size;
    }
}

/// The decoder of one connection's response header blocks.
#[derive(Debug)]
pub struct Decoder {
    table: Table,
    /// The most the server may size the table to: the SETTINGS_HEADER_TABLE_SIZE we announced.
    limit: usize,
    name: Vec<u8>,
    value: Vec<u8>,
    memo: Memo,
}

/// The Huffman strings decoded last, by their code: servers send the same values over and
/// over (nginx sends `date`, `content-type` and `server` Huffman-coded in every response), and
/// comparing a few bytes costs less than decoding them again.
#[derive(Debug, Default)]
struct Memo {
    /// (code, decoded), reused in turn.
    slots: Vec<(Vec<u8>, Vec<u8>)>,
    next: usize,
}

impl Memo {
    const SLOTS: usize = 8;
    /// Longer codes are decoded every time (they are rarely repeated).
    const MAX_CODE: usize = 64;

    /// Decodes the Huffman code `raw` into `buf`.
    fn decode(&mut self, raw: &[u8], buf: &mut Vec<u8>) -> Result<(), HpackError> {
        buf.clear();
        if let Some((_, text)) = self.slots.iter().find(|(code, _)| code == raw) {
            buf.extend_from_slice(text);
            return Ok(());
        }
        huffman::decode(raw, buf).map_err(|_| HpackError::Huffman)?;
        if raw.len() <= Self::MAX_CODE {
            if self.slots.len() < Self::SLOTS {
                self.slots.push((raw.to_vec(), buf.clone()));
            } else {
                let (code, text) = &mut self.slots[self.next];
                code.clear();
                code.extend_from_slice(raw);
                text.clear();
                text.extend_from_slice(buf);
                self.next = (self.next + 1) % Self::SLOTS;
            }
        }
        Ok(())
    }
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            table: Table {
                max: limit,
                ..Table::default()
            },
            limit,
            name: Vec::new(),
            value: Vec::new(),
            memo: Memo::default(),
        }
    }

    /// The dynamic table's size by the RFC's count.
    #[cfg(test)]
    pub fn table_size(&self) -> usize {
        self.table.size
    }

    /// Decodes one complete header block, calling `field` with each name and value in order.
    pub fn decode(
        &mut self,
        src: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let Decoder {
            table,
            limit,
            name: name_buf,
            value: value_buf,
            memo,
        } = self;
        let mut pos = 0;
        let mut fields = false;
        while pos < src.len() {
            let b = src[pos];
            if b & 0x80 != 0 {
                let index = integer(src, &mut pos, 7)?;
                let (n, v) = table.get(index)?;
                field(n, v);
            } else if b & 0x40 != 0 {
                // Literal with incremental indexing.
                let index = integer(src, &mut pos, 6)?;
                let name: &[u8] = if index == 0 {
                    string(src, &mut pos, name_buf, memo)?
                } else {
                    // Copied: inserting may evict the entry it names.
                    name_buf.clear();
                    name_buf.extend_from_slice(table.get(index)?.0);
                    name_buf
                };
                let value = string(src, &mut pos, value_buf, memo)?;
                field(name, value);
                table.insert(name, value);
            } else if b & 0x20 != 0 {
                if fields {
                    return Err(HpackError::SizeUpdate);
                }
                let size = integer(src, &mut pos, 5)?;
                if size > *limit {
                    return Err(HpackError::SizeUpdate);
                }
                table.set_max(size);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                let index = integer(src, &mut pos, 4)?;
                let name: &[u8] = if index == 0 {
                    string(src, &mut pos, name_buf, memo)?
                } else {
                    table.get(index)?.0
                };
                let value = string(src, &mut pos, value_buf, memo)?;
                field(name, value);
            }
            fields = true;
        }
        Ok(())
    }
}

/// Reads an integer with an `n`-bit prefix at `src[*pos]` (RFC 7541 §5.1), at most 2^28.
fn integer(src: &[u8], pos: &mut usize, n: u8) -> Result<usize, HpackError> {
    let mask = (1usize << n) - 1;
    let mut value = usize::from(src[*pos]) & mask;
    *pos += 1;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let &b = src.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 21 {
            return Err(HpackError::Truncated);
        }
    }
}

/// Reads a string literal: raw (a slice of `src`) or Huffman-coded (decoded into `buf`).
fn string<'a>(
    src: &'a [u8],
    pos: &mut usize,
    buf: &'a mut Vec<u8>,
    memo: &mut Memo,
) -> Result<&'a [u8], HpackError> {
    let &first = src.get(*pos).ok_or(HpackError::Truncated)?;
    let len = integer(src, pos, 7)?;
    let raw = src.get(*pos..*pos + len).ok_or(HpackError::Truncated)?;
    *pos += len;
    if first & 0x80 == 0 {
        return Ok(raw);
    }
    memo.decode(raw, buf)?;
    Ok(buf)
}

/// Writes an integer with an `n`-bit prefix; `first` holds the representation's flag bits.
pub fn put_integer(dst: &mut Vec<u8>, first: u8, n: u8, value: usize) {
    let mask = (1usize << n) - 1;
    if value < mask {
        dst.push(first | value as u8);
        return;
    }
    dst.push(first | mask as u8);
    let mut rest = value - mask;
    while rest >= 128 {
        dst.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    dst.push(rest as u8);
}

fn put_string(dst: &mut Vec<u8>, s: &[u8]) {
    put_integer(dst, 0, 7, s.len());
    dst.extend_from_slice(s);
}

/// Appends one field of a request head: the static entry when name and value match one,
/// else a literal without indexing, naming a static entry's name where there is one.
pub fn put_field(dst: &mut Vec<u8>, name: &str, value: &[u8]) {
    let mut name_index = 0;
    for (i, (n, v)) in STATIC.iter().enumerate() {
        if *n == name {
            if v.as_bytes() == value {
                put_integer(dst, 0x80, 7, i + 1);
                return;
            }
            if name_index == 0 {
                name_index = i + 1;
            }
        }
    }
    put_integer(dst, 0x00, 4, name_index);
    if name_index == 0 {
        put_string(dst, name.as_bytes());
    }
    put_string(dst, value);
}

#[cfg(test)]
mod tests;
