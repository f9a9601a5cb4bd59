use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::*;

/// A reader that hands out its data in the given pieces, then the end of the stream (an
/// empty read), so empty pieces are left out.
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    fn new<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Pieces {
        Pieces(
            parts
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(<[u8]>::to_vec)
                .collect(),
        )
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn read(parts: &[&[u8]], head: bool) -> Result<Response, Broken> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut io = Pieces::new(parts.iter().copied());
        let mut buf = Buffer::new(64, 256);
        read_response(&mut io, &mut buf, head, true, &mut ()).await
    })
}

fn ok(status: u16, bytes: u64, keep_alive: bool) -> Response {
    Response {
        status,
        bytes,
        keep_alive,
        location: None,
    }
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
    5;name=value;other\r\nhello\r\n7\r\n, world\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";

#[test]
fn chunked_bodies_with_extensions_and_trailers_are_counted() {
    assert_eq!(read(&[CHUNKED], false).unwrap(), ok(200, 12, true));
}

#[test]
fn a_response_split_at_any_byte_reads_the_same() {
    let cases: [(&[u8], Response); 4] = [
        (CHUNKED, ok(200, 12, true)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
            ok(200, 10, true),
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
            Response {
                location: Some("/next".into()),
                ..ok(302, 0, true)
            },
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc",
            ok(200, 3, false),
        ),
    ];
    for (whole, expected) in cases {
        for at in 0..=whole.len() {
            let (a, b) = whole.split_at(at);
            assert_eq!(read(&[a, b], false).unwrap(), expected, "split at {at}");
        }
        // And one byte at a time.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(read(&bytes, false).unwrap(), expected);
    }
}

#[test]
fn bodies_larger_than_the_buffer_are_counted_not_kept() {
    let body = vec![b'x'; 10_000];
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(3000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(read(&[&chunked], false).unwrap(), ok(200, 10_000, true));
    let mut sized = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n".to_vec();
    sized.extend_from_slice(&body);
    assert_eq!(read(&[&sized], false).unwrap(), ok(200, 10_000, true));
}

#[test]
fn responses_without_a_body() {
    // Content-Length: 0.
    let r = read(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], false);
    assert_eq!(r.unwrap(), ok(200, 0, true));
    // HEAD: the length is that of the GET, no body follows.
    let r = read(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"], true);
    assert_eq!(r.unwrap(), ok(200, 0, true));
    // 204 and 304 never have one.
    let r = read(&[b"HTTP/1.1 204 No Content\r\n\r\n"], false);
    assert_eq!(r.unwrap(), ok(204, 0, true));
    let r = read(
        &[b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"],
        false,
    );
    assert_eq!(r.unwrap(), ok(304, 0, true));
}

#[test]
fn connection_close_and_http_1_0_end_the_connection() {
    let r = read(
        &[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"],
        false,
    );
    assert_eq!(r.unwrap(), ok(200, 2, false));
    // Neither a length nor chunked: the body runs to the end of the connection.
    let r = read(&[b"HTTP/1.0 200 OK\r\n\r\nabc", b"def"], false);
    assert_eq!(r.unwrap(), ok(200, 6, false));
    let r = read(
        &[b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"],
        false,
    );
    assert_eq!(r.unwrap(), ok(200, 1, true));
}

#[test]
fn broken_responses_are_body_errors() {
    for broken in [
        &b"HTTP/1.1 abc OK\r\n\r\n"[..],
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-",
    ] {
        match read(&[broken], false) {
            Err(Broken::Body(_)) => {}
            other => panic!("{}: {other:?}", String::from_utf8_lossy(broken)),
        }
    }
}

#[test]
fn a_connection_that_ends_before_any_byte_is_unanswered() {
    assert!(matches!(read(&[], false), Err(Broken::Unanswered(None))));
}

#[test]
fn a_head_larger_than_the_buffer_is_refused() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    head.extend_from_slice(format!("X-Long: {}\r\n\r\n", "y".repeat(400)).as_bytes());
    assert!(matches!(read(&[&head], false), Err(Broken::Io(_))));
}

#[test]
fn the_buffer_grows_only_for_a_long_head_or_a_large_body() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let small = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let mut long_head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
    long_head.extend_from_slice(format!("X-Long: {}\r\n\r\nhi", "y".repeat(3000)).as_bytes());
    let mut large = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    large.extend_from_slice(&[b'z'; 100_000]);
    rt.block_on(async {
        let mut buf = Buffer::default();
        let mut capacities = Vec::new();
        for (response, bytes) in [(&small, 5), (&small, 5), (&long_head, 2), (&large, 100_000)] {
            let mut io = Pieces::new([response.as_slice()]);
            let r = read_response(&mut io, &mut buf, false, false, &mut ())
                .await
                .unwrap();
            assert_eq!(r, ok(200, bytes, true));
            capacities.push(buf.capacity());
        }
        // Small responses keep the starting size; a 3 KB head doubles it to 4 KiB; a large
        // body takes the body buffer.
        assert_eq!(capacities, [START, START, 4 * START, BODY_BUFFER]);
    });
}

#[test]
fn requests_are_encoded_once_with_their_headers_and_body() {
    let url = Url::parse("http://127.0.0.1:8080/a/b?x=1").unwrap();
    let headers = vec![("content-type".to_string(), "text/plain".to_string())];
    let bytes = encode_request("POST", &url, &headers, Some("n-1"), Some(b"hello"));
    let expected = format!(
        "POST /a/b?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nuser-agent: {USER_AGENT}\r\n\
         x-mcpt-node: n-1\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
    );
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
    // GET sends no body; a target's own Host and User-Agent replace ours.
    let url = Url::parse("https://example.com/").unwrap();
    let headers = vec![
        ("Host".to_string(), "other".to_string()),
        ("User-Agent".to_string(), "me".to_string()),
    ];
    let bytes = encode_request("GET", &url, &headers, None, Some(b"ignored"));
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        "GET / HTTP/1.1\r\nHost: other\r\nUser-Agent: me\r\n\r\n"
    );
}
