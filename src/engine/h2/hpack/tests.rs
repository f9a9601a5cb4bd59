//! RFC 7541 Appendix C, every example, plus the encoder of request heads read back.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    d.decode(&hex(block), |n, v| {
        out.push((
            String::from_utf8(n.to_vec()).unwrap(),
            String::from_utf8(v.to_vec()).unwrap(),
        ))
    })
    .unwrap();
    out
}

fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The dynamic table's entries, newest first.
fn table(d: &Decoder) -> Vec<(String, String)> {
    (0..d.table.entries.len())
        .map(|i| {
            let (n, v) = d.table.get(62 + i).unwrap();
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn c1_integers() {
    // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337; C.1.3: 42 at an octet boundary.
    for (value, n, wire) in [(10, 5, "0a"), (1337, 5, "1f9a0a"), (42, 8, "2a")] {
        let mut out = Vec::new();
        put_integer(&mut out, 0, n, value);
        assert_eq!(out, hex(wire));
        let mut pos = 0;
        assert_eq!(integer(&out, &mut pos, n), Ok(value));
        assert_eq!(pos, out.len());
    }
    let mut pos = 0;
    assert_eq!(
        integer(&hex("1fffffffff7f"), &mut pos, 5),
        Err(HpackError::Truncated)
    );
}

#[test]
fn c2_single_fields() {
    // C.2.1: literal with indexing.
    let mut d = Decoder::new(4096);
    let got = decode(
        &mut d,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    );
    assert_eq!(got, fields(&[("custom-key", "custom-header")]));
    assert_eq!(d.table_size(), 55);
    assert_eq!(table(&d), fields(&[("custom-key", "custom-header")]));
    // C.2.2: literal without indexing.
    let mut d = Decoder::new(4096);
    let got = decode(&mut d, "040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(got, fields(&[(":path", "/sample/path")]));
    assert_eq!(d.table_size(), 0);
    // C.2.3: literal never indexed.
    let mut d = Decoder::new(4096);
    let got = decode(&mut d, "1008 7061 7373 776f 7264 0673 6563 7265 74");
    assert_eq!(got, fields(&[("password", "secret")]));
    assert_eq!(d.table_size(), 0);
    // C.2.4: indexed.
    let mut d = Decoder::new(4096);
    assert_eq!(decode(&mut d, "82"), fields(&[(":method", "GET")]));
    assert_eq!(d.table_size(), 0);
}

const REQUESTS: [&[(&str, &str)]; 3] = [
    &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ],
    &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ],
    &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ],
];

fn requests(blocks: [&str; 3]) {
    let mut d = Decoder::new(4096);
    for ((block, want), size) in blocks.iter().zip(REQUESTS).zip([57, 110, 164]) {
        assert_eq!(decode(&mut d, block), fields(want));
        assert_eq!(d.table_size(), size);
    }
    assert_eq!(
        table(&d),
        fields(&[
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ])
    );
}

#[test]
fn c3_requests_without_huffman() {
    requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c4_requests_with_huffman() {
    requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

/// C.5 and C.6: a 256-byte table, so the third response evicts.
fn responses(blocks: [&str; 3]) {
    let mut d = Decoder::new(256);
    let r1 = fields(&[
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ]);
    assert_eq!(decode(&mut d, blocks[0]), r1);
    assert_eq!(d.table_size(), 222);
    let mut r2 = r1.clone();
    r2[0].1 = "307".into();
    assert_eq!(decode(&mut d, blocks[1]), r2);
    assert_eq!(d.table_size(), 222);
    assert_eq!(table(&d)[0], (":status".into(), "307".into()));
    let r3 = fields(&[
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        ("set-cookie", COOKIE),
    ]);
    assert_eq!(decode(&mut d, blocks[2]), r3);
    assert_eq!(d.table_size(), 215);
    assert_eq!(
        table(&d),
        fields(&[
            ("set-cookie", COOKIE),
            ("content-encoding", "gzip"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ])
    );
}

#[test]
fn c5_responses_without_huffman_evict() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
         3d31",
    ]);
}

#[test]
fn c6_responses_with_huffman_evict() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn size_updates_evict_and_are_bounded() {
    let mut d = Decoder::new(4096);
    decode(
        &mut d,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    );
    assert_eq!(d.table_size(), 55);
    // An update to 0 at the start of a block empties the table; then 4096 again.
    assert_eq!(
        decode(&mut d, "20 3fe1 1f 82"),
        fields(&[(":method", "GET")])
    );
    assert_eq!(d.table_size(), 0);
    assert_eq!(d.table.max, 4096);
    assert_eq!(d.decode(&hex("be"), |_, _| {}), Err(HpackError::Index(62)));
    // Above the limit we announced, or after a field: refused.
    assert_eq!(
        d.decode(&hex("3fe2 1f"), |_, _| {}),
        Err(HpackError::SizeUpdate)
    );
    assert_eq!(
        d.decode(&hex("82 20"), |_, _| {}),
        Err(HpackError::SizeUpdate)
    );
    assert_eq!(d.decode(&hex("80"), |_, _| {}), Err(HpackError::Index(0)));
    assert_eq!(
        d.decode(&hex("400a 6375"), |_, _| {}),
        Err(HpackError::Truncated)
    );
}

#[test]
fn a_long_run_of_inserts_keeps_the_table_exact_and_its_buffer_bounded() {
    // nginx inserts every response header (incremental indexing): the table churns.
    let mut d = Decoder::new(4096);
    let mut block = Vec::new();
    for i in 0..10_000 {
        block.clear();
        let value = format!("value-{i:05}-{}", "x".repeat(i % 50));
        block.push(0x40);
        put_string(&mut block, b"x-header");
        put_string(&mut block, value.as_bytes());
        let mut got = None;
        d.decode(&block, |_, v| got = Some(v.to_vec())).unwrap();
        assert_eq!(got.as_deref(), Some(value.as_bytes()));
        assert_eq!(d.table.get(62).unwrap().1, value.as_bytes());
        assert!(d.table_size() <= 4096);
    }
    assert!(d.table.bytes.len() <= 3 * 4096, "{}", d.table.bytes.len());
    let sum: usize = (0..d.table.entries.len())
        .map(|i| {
            let (n, v) = d.table.get(62 + i).unwrap();
            n.len() + v.len() + 32
        })
        .sum();
    assert_eq!(sum, d.table_size());
}

#[test]
fn request_fields_use_static_entries_and_read_back() {
    let mut block = Vec::new();
    put_field(&mut block, ":method", b"GET");
    put_field(&mut block, ":scheme", b"https");
    put_field(&mut block, ":path", b"/");
    put_field(&mut block, ":authority", b"example.test:8443");
    put_field(&mut block, "user-agent", b"mcpt");
    put_field(&mut block, "x-mcpt-node", b"n1");
    assert_eq!(&block[..3], &[0x82, 0x87, 0x84]);
    let mut d = Decoder::new(4096);
    let mut got = Vec::new();
    d.decode(&block, |n, v| got.push((n.to_vec(), v.to_vec())))
        .unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        (":authority", "example.test:8443"),
        ("user-agent", "mcpt"),
        ("x-mcpt-node", "n1"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(d.table_size(), 0, "the head never inserts");
}

#[test]
fn huffman_values_read_again_from_the_memo_are_the_same() {
    // More distinct values than the memo has slots, each sent several times in turn, some of
    // the same coded length; and a malformed code (EOS padding gone wrong) is refused every
    // time, never remembered.
    let values: Vec<String> = (0..Memo::SLOTS + 3)
        .map(|i| format!("Sun, 06 Dec 2026 22:3{}:0{} GMT", i % 10, i / 10))
        .collect();
    let mut d = Decoder::new(4096);
    for round in 0..4 {
        for (i, value) in values.iter().enumerate().skip(round % 2) {
            let mut code = Vec::new();
            huffman::encode(value.as_bytes(), &mut code);
            let mut block = vec![0x0f, 0x12]; // literal without indexing, name `date` (33)
            put_integer(&mut block, 0x80, 7, code.len());
            block.extend(&code);
            let mut got = Vec::new();
            d.decode(&block, |n, v| got.push((n.to_vec(), v.to_vec())))
                .unwrap();
            assert_eq!(
                got,
                [(b"date".to_vec(), value.as_bytes().to_vec())],
                "round {round}, value {i}"
            );
        }
        // A code of all zeros for one byte: '0' then padding that is not EOS's ones.
        let bad = [0x80 | 1, 0x00];
        assert_eq!(
            d.decode(&[&[0x0f, 0x12][..], &bad].concat(), |_, _| {}),
            Err(HpackError::Huffman)
        );
    }
}
