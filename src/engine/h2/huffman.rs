//! The Huffman code of HPACK (RFC 7541 Appendix B) and its decoder: a table walked four bits
//! at a time (one state per internal node of the code's tree, at most one symbol per nibble:
//! the shortest code has five bits), built once from the code table on first use.

use std::sync::LazyLock;

/// The code of each byte, right-aligned (RFC 7541 Appendix B).
const CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];
/// The bit length of each byte's code.
const LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];
/// EOS, the 257th symbol: 30 ones. A string that contains it is an error.
const EOS: (u32, u8) = (0x3fff_ffff, 30);

/// A symbol was emitted by this nibble.
const EMIT: u8 = 1;
/// This nibble reached EOS: the string is malformed.
const FAIL: u8 = 2;

/// One step of the decoder: from a state (an internal node), four bits lead to `next`,
/// emitting `symbol` if `flags & EMIT`.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    symbol: u8,
    flags: u8,
}

struct Machine {
    steps: Vec<[Step; 16]>,
    /// A string may end in this state: the root, or a run of at most seven 1 bits from it
    /// (the padding, the most significant bits of EOS).
    accept: Vec<bool>,
}

static MACHINE: LazyLock<Machine> = LazyLock::new(build);

/// A child in the code tree: an internal node's index, or a leaf's symbol (256 is EOS).
#[derive(Clone, Copy)]
enum Child {
    Node(usize),
    Leaf(u16),
}

fn build() -> Machine {
    // The tree: node 0 is the root; each node has two children, None until placed.
    let mut tree: Vec<[Option<Child>; 2]> = vec![[None, None]];
    let codes = (0..256u16)
        .map(|s| (s, CODES[s as usize], LENGTHS[s as usize]))
        .chain(std::iter::once((256, EOS.0, EOS.1)));
    for (symbol, code, len) in codes {
        let mut node = 0;
        for i in (0..len).rev() {
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                tree[node][bit] = Some(Child::Leaf(symbol));
            } else {
                node = match tree[node][bit] {
                    Some(Child::Node(n)) => n,
                    _ => {
                        tree.push([None, None]);
                        let n = tree.len() - 1;
                        tree[node][bit] = Some(Child::Node(n));
                        n
                    }
                };
            }
        }
    }
    assert_eq!(
        tree.len(),
        256,
        "a complete code of 257 symbols has 256 internal nodes"
    );
    // Which nodes a run of 1 bits from the root reaches, and at what depth.
    let mut accept = vec![false; tree.len()];
    accept[0] = true;
    let mut node = 0;
    for _ in 0..7 {
        match tree[node][1] {
            Some(Child::Node(n)) => {
                accept[n] = true;
                node = n;
            }
            _ => break,
        }
    }
    let steps = (0..tree.len())
        .map(|state| {
            let mut row = [Step::default(); 16];
            for (nibble, step) in row.iter_mut().enumerate() {
                let mut node = state;
                for i in (0..4).rev() {
                    match tree[node][(nibble >> i) & 1].expect("complete code") {
                        Child::Node(n) => node = n,
                        Child::Leaf(256) => {
                            step.flags |= FAIL;
                            break;
                        }
                        Child::Leaf(s) => {
                            step.symbol = s as u8;
                            step.flags |= EMIT;
                            node = 0;
                        }
                    }
                }
                step.next = node as u8;
            }
            row
        })
        .collect();
    Machine { steps, accept }
}

/// The Huffman string was malformed: it held EOS, or ended in padding that is not a prefix of
/// EOS or is longer than seven bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Decodes `src`, appending the text to `dst`.
pub fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), Malformed> {
    let m = &*MACHINE;
    let mut state = 0usize;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0xf] {
            let step = m.steps[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return Err(Malformed);
            }
            if step.flags & EMIT != 0 {
                dst.push(step.symbol);
            }
            state = step.next as usize;
        }
    }
    if m.accept[state] {
        Ok(())
    } else {
        Err(Malformed)
    }
}

/// Encodes `src` (for tests: the engine sends its strings raw).
#[cfg(test)]
pub fn encode(src: &[u8], dst: &mut Vec<u8>) {
    let mut bits: u64 = 0;
    let mut n = 0u32;
    for &b in src {
        bits = (bits << LENGTHS[b as usize]) | u64::from(CODES[b as usize]);
        n += u32::from(LENGTHS[b as usize]);
        while n >= 8 {
            n -= 8;
            dst.push((bits >> n) as u8);
        }
    }
    if n > 0 {
        // Pad with the most significant bits of EOS (ones).
        dst.push(((bits << (8 - n)) as u8) | (0xff >> n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_and_rfc_strings_decode() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        let mut dec = Vec::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(dec, all);
        // RFC 7541 C.4.1: "www.example.com".
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        decode(&www, &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        let mut again = Vec::new();
        encode(b"www.example.com", &mut again);
        assert_eq!(again, www);
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // '0' (00000) then three zero bits: padding must be ones.
        assert_eq!(decode(&[0x00], &mut Vec::new()), Err(Malformed));
        // A whole byte of ones after a complete symbol: padding longer than seven bits.
        let mut a = Vec::new();
        encode(b"a", &mut a); // 00011 + 111 padding
        a.push(0xff);
        assert_eq!(decode(&a, &mut Vec::new()), Err(Malformed));
        // EOS itself (30 ones) inside the string.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(Malformed)
        );
        // Empty is fine.
        assert_eq!(decode(&[], &mut Vec::new()), Ok(()));
    }
}
