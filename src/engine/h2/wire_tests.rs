//! Tests of the client against a scripted peer: an in-memory socket whose reads hand out the
//! chunks a test queues (one chunk per read, so a frame split between two chunks reaches the
//! parser in two reads) and whose writes are kept for the test to parse.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::spawn_local;

use super::frame::{self, Head};
use super::tests::run;
use super::{Exchange, H2Conn, H2Error, H2Head, HANDSHAKE_PING, handshake, hpack, huffman};

#[derive(Default)]
struct Peer {
    chunks: VecDeque<Vec<u8>>,
    written: Vec<u8>,
    reader: Option<Waker>,
}

#[derive(Clone, Default)]
struct Mock(Rc<RefCell<Peer>>);

impl Mock {
    /// Queues bytes for the client to read, as one read.
    fn push(&self, bytes: Vec<u8>) {
        let mut p = self.0.borrow_mut();
        p.chunks.push_back(bytes);
        if let Some(w) = p.reader.take() {
            w.wake();
        }
    }

    /// The frames the client wrote after its preface.
    fn frames(&self) -> Vec<(Head, Vec<u8>)> {
        let p = self.0.borrow();
        let mut rest = &p.written[frame::PREFACE.len()..];
        let mut out = Vec::new();
        while rest.len() >= 9 {
            let head = Head::parse(rest);
            out.push((head, rest[9..9 + head.len].to_vec()));
            rest = &rest[9 + head.len..];
        }
        assert!(rest.is_empty(), "a partial frame was written");
        out
    }
}

impl AsyncRead for Mock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut p = self.0.borrow_mut();
        match p.chunks.pop_front() {
            Some(mut chunk) => {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    p.chunks.push_front(chunk.split_off(n));
                }
                Poll::Ready(Ok(()))
            }
            None => {
                p.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl super::Transport for Mock {
    fn socket(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

impl AsyncWrite for Mock {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.0.borrow_mut().written.extend_from_slice(b);
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Lets the driver and the sends run until nothing is left to do (scheduling, not time).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    frame::put_head(&mut b, payload.len(), kind, flags, stream);
    b.extend_from_slice(payload);
    b
}

fn settings(list: &[(u16, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    frame::put_settings(&mut b, list);
    b
}

/// A connection over a mock whose server announced `list`.
async fn connect(list: &[(u16, u32)]) -> (H2Conn, Mock) {
    let mock = Mock::default();
    let mut hello = settings(list);
    hello.extend(frame_bytes(frame::SETTINGS, frame::ACK, 0, &[]));
    hello.extend(frame_bytes(frame::PING, frame::ACK, 0, &HANDSHAKE_PING));
    mock.push(hello);
    let conn = handshake(mock.clone()).await.expect("handshake");
    (conn, mock)
}

fn post(path: &str) -> H2Head {
    let url = url::Url::parse(&format!("https://example.test{path}")).unwrap();
    H2Head::new("POST", &url, std::iter::empty()).unwrap()
}

/// The DATA frames the client wrote on `stream`: (length, END_STREAM).
fn data_frames(mock: &Mock, stream: u32) -> Vec<(usize, bool)> {
    mock.frames()
        .iter()
        .filter(|(h, _)| h.kind == frame::DATA && h.stream == stream)
        .map(|(h, _)| (h.len, h.flags & frame::END_STREAM != 0))
        .collect()
}

/// A response of 200 with `body` bytes in one DATA frame, ending the stream.
fn ok_response(stream: u32, body: usize) -> Vec<u8> {
    let mut b = frame_bytes(frame::HEADERS, frame::END_HEADERS, stream, &[0x88]);
    b.extend(frame_bytes(
        frame::DATA,
        frame::END_STREAM,
        stream,
        &vec![0; body],
    ));
    b
}

#[test]
fn frames_split_at_every_byte_parse_the_same() {
    // A redirect head over HEADERS (padded, with priority) and CONTINUATION, a Huffman value
    // the table keeps, a PING, a padded DATA frame and the last DATA.
    let mut block = Vec::new();
    hpack::put_integer(&mut block, 0x40, 6, 8); // :status, incremental indexing
    block.extend([3, b'3', b'0', b'2']);
    hpack::put_field(&mut block, "location", b"https://elsewhere.test/next");
    let mut nginx = Vec::new();
    huffman::encode(b"nginx", &mut nginx);
    hpack::put_integer(&mut block, 0x40, 6, 54); // server, incremental indexing
    hpack::put_integer(&mut block, 0x80, 7, nginx.len());
    block.extend(&nginx);
    let (first, second) = block.split_at(10);
    let mut headers = vec![2u8]; // pad length
    headers.extend([0, 0, 0, 0, 16]); // priority: stream dependency 0, weight 16
    headers.extend(first);
    headers.extend([0, 0]);
    let flags = frame::PADDED | frame::PRIORITY;
    let mut response = frame_bytes(frame::HEADERS, flags, 1, &headers);
    response.extend(frame_bytes(
        frame::CONTINUATION,
        frame::END_HEADERS,
        1,
        second,
    ));
    response.extend(frame_bytes(frame::PING, 0, 0, b"12345678"));
    let mut padded = vec![3u8];
    padded.extend([9u8; 100]);
    padded.extend([0, 0, 0]);
    response.extend(frame_bytes(frame::DATA, frame::PADDED, 1, &padded));
    response.extend(frame_bytes(frame::DATA, frame::END_STREAM, 1, &[9u8; 23]));
    let want = Exchange {
        status: 302,
        location: Some("https://elsewhere.test/next".into()),
        bytes: 123,
    };
    for split in 1..response.len() {
        run(async {
            let (conn, mock) = connect(&[]).await;
            let get = H2Head::new(
                "GET",
                &url::Url::parse("https://example.test/").unwrap(),
                std::iter::empty(),
            )
            .unwrap();
            let task = spawn_local(async move { conn.send(&get, None).await });
            settle().await;
            mock.push(response[..split].to_vec());
            mock.push(response[split..].to_vec());
            assert_eq!(task.await.unwrap(), Ok(want.clone()), "split at {split}");
            // Frames go out on the driver's next turn.
            settle().await;
            let acked = mock.frames().iter().any(|(h, p)| {
                h.kind == frame::PING && h.flags & frame::ACK != 0 && p == b"12345678"
            });
            assert!(
                acked,
                "split at {split}: the server's PING was not answered"
            );
        });
    }
}

#[test]
fn a_body_larger_than_the_windows_waits_for_window_updates() {
    run(async {
        // Stream window 1000 at first; the connection's is the default 65,535.
        let (conn, mock) = connect(&[(frame::SETTINGS_INITIAL_WINDOW_SIZE, 1000)]).await;
        let conn = Rc::new(conn);
        let c = conn.clone();
        let body = Bytes::from(vec![5u8; 70_000]);
        let task = spawn_local(async move { c.send(&post("/up"), Some(body)).await });
        settle().await;
        assert_eq!(data_frames(&mock, 1), [(1000, false)]);
        // More stream window: 1,500 more bytes.
        let mut inc = Vec::new();
        frame::put_window_update(&mut inc, 1, 1500);
        mock.push(inc);
        settle().await;
        assert_eq!(data_frames(&mock, 1), [(1000, false), (1500, false)]);
        // A larger initial window applies to the open stream too; the connection's window
        // (65,535) now binds, in frames of at most 16,384 bytes.
        mock.push(settings(&[(
            frame::SETTINGS_INITIAL_WINDOW_SIZE,
            1_000_000,
        )]));
        settle().await;
        let sent: usize = data_frames(&mock, 1).iter().map(|f| f.0).sum();
        assert_eq!(sent, 65_535);
        assert!(data_frames(&mock, 1).iter().all(|f| f.0 <= 16_384 && !f.1));
        let mut inc = Vec::new();
        frame::put_window_update(&mut inc, 0, 10_000);
        mock.push(inc);
        settle().await;
        let frames = data_frames(&mock, 1);
        assert_eq!(frames.iter().map(|f| f.0).sum::<usize>(), 70_000);
        assert_eq!(frames.last(), Some(&(70_000 - 65_535, true)));
        mock.push(ok_response(1, 5));
        let got = task.await.unwrap();
        assert_eq!(got.map(|e| e.bytes), Ok(5));
    });
}

#[test]
fn frame_sizes_follow_the_servers_max_frame_size_and_large_heads_continue() {
    run(async {
        let (conn, mock) = connect(&[(frame::SETTINGS_MAX_FRAME_SIZE, 20_000)]).await;
        let conn = Rc::new(conn);
        let c = conn.clone();
        let body = Bytes::from(vec![1u8; 50_000]);
        let first = spawn_local(async move { c.send(&post("/a"), Some(body)).await });
        settle().await;
        let lens: Vec<usize> = data_frames(&mock, 1).iter().map(|f| f.0).collect();
        assert_eq!(lens, [20_000, 20_000, 10_000]);
        mock.push(ok_response(1, 0));
        assert!(first.await.unwrap().is_ok());
        // The server lowers it again: frames shrink, and a head above it continues. (And
        // gives the connection's window back: the first body used 50,000 of it.)
        let mut lower = settings(&[(frame::SETTINGS_MAX_FRAME_SIZE, 16_384)]);
        frame::put_window_update(&mut lower, 0, 50_000);
        mock.push(lower);
        settle().await;
        let url = url::Url::parse("https://example.test/b").unwrap();
        let big = "v".repeat(40_000);
        let head = H2Head::new("POST", &url, [("x-big", big.as_bytes())]).unwrap();
        let c = conn.clone();
        let body = Bytes::from(vec![2u8; 40_000]);
        let second = spawn_local(async move { c.send(&head, Some(body)).await });
        settle().await;
        let frames: Vec<(Head, Vec<u8>)> = mock
            .frames()
            .into_iter()
            .filter(|(h, _)| h.stream == 3)
            .collect();
        assert!(frames.iter().all(|(h, _)| h.len <= 16_384));
        let kinds: Vec<u8> = frames.iter().map(|(h, _)| h.kind).collect();
        use frame::{CONTINUATION as C, DATA as D, HEADERS as H};
        assert_eq!(kinds, [H, C, C, D, D, D]);
        assert_eq!(frames[2].0.flags & frame::END_HEADERS, frame::END_HEADERS);
        assert_eq!(frames[0].0.flags & frame::END_HEADERS, 0);
        // The head reads back whole.
        let block: Vec<u8> = frames[..3].iter().flat_map(|(_, p)| p.clone()).collect();
        let mut got = None;
        hpack::Decoder::new(4096)
            .decode(&block, |n, v| {
                if n == b"x-big" {
                    got = Some(v.len());
                }
            })
            .unwrap();
        assert_eq!(got, Some(40_000));
        mock.push(ok_response(3, 0));
        assert!(second.await.unwrap().is_ok());
    });
}

#[test]
fn a_frame_above_our_max_frame_size_fails_the_connection() {
    run(async {
        let (conn, mock) = connect(&[]).await;
        let conn = Rc::new(conn);
        let c = conn.clone();
        let task = spawn_local(async move { c.send(&post("/"), None).await });
        settle().await;
        let mut big = frame_bytes(frame::HEADERS, frame::END_HEADERS, 1, &[0x88]);
        big.extend(frame_bytes(frame::DATA, 0, 1, &vec![0; 16_385]));
        mock.push(big);
        let got = task.await.unwrap();
        assert!(
            matches!(&got, Err(H2Error::Connect(why)) if why.contains("16385")),
            "{got:?}"
        );
        assert!(conn.is_closed());
        let goaway = mock
            .frames()
            .into_iter()
            .find(|(h, _)| h.kind == frame::GOAWAY);
        let code = goaway.map(|(_, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        assert_eq!(code, Some(frame::FRAME_SIZE_ERROR));
    });
}

#[test]
fn a_dropped_exchange_resets_its_stream_and_frees_its_slot() {
    run(async {
        let (conn, mock) = connect(&[(frame::SETTINGS_MAX_CONCURRENT_STREAMS, 1)]).await;
        let head = post("/");
        {
            let send = conn.send(&head, None);
            let _ = tokio::time::timeout(std::time::Duration::ZERO, send).await;
        }
        assert_eq!(conn.in_flight(), 0);
        settle().await;
        let rst = mock
            .frames()
            .into_iter()
            .find(|(h, _)| h.kind == frame::RST_STREAM);
        let rst = rst.map(|(h, p)| (h.stream, u32::from_be_bytes([p[0], p[1], p[2], p[3]])));
        assert_eq!(rst, Some((1, frame::CANCEL)));
        // The slot is free: the next exchange opens stream 3 at once.
        let conn = Rc::new(conn);
        let c = conn.clone();
        let task = spawn_local(async move { c.send(&post("/"), None).await });
        settle().await;
        mock.push(ok_response(3, 7));
        assert_eq!(task.await.unwrap().map(|e| e.bytes), Ok(7));
    });
}

#[test]
fn a_bad_window_update_on_a_stream_ends_that_stream_only() {
    run(async {
        let (conn, mock) = connect(&[]).await;
        let conn = Rc::new(conn);
        let (a, b) = (conn.clone(), conn.clone());
        let zero = spawn_local(async move { a.send(&post("/"), None).await });
        let over = spawn_local(async move { b.send(&post("/"), None).await });
        settle().await;
        // Stream 1: an increment of 0; stream 3: past 2^31-1 (our window starts at 65,535).
        let mut bad = frame_bytes(frame::WINDOW_UPDATE, 0, 1, &0u32.to_be_bytes());
        bad.extend(frame_bytes(
            frame::WINDOW_UPDATE,
            0,
            3,
            &0x7fff_ffffu32.to_be_bytes(),
        ));
        mock.push(bad);
        let zero = zero.await.unwrap();
        assert!(
            matches!(&zero, Err(H2Error::Body(why)) if why.contains("of 0")),
            "{zero:?}"
        );
        let over = over.await.unwrap();
        assert!(
            matches!(&over, Err(H2Error::Body(why)) if why.contains("2^31")),
            "{over:?}"
        );
        settle().await;
        let rst: Vec<_> = mock
            .frames()
            .into_iter()
            .filter(|(h, _)| h.kind == frame::RST_STREAM)
            .map(|(h, p)| (h.stream, u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
            .collect();
        assert_eq!(
            rst,
            [(1, frame::PROTOCOL_ERROR), (3, frame::FLOW_CONTROL_ERROR)]
        );
        // The connection goes on: the next exchange opens stream 5.
        assert!(!conn.is_closed());
        let c = conn.clone();
        let task = spawn_local(async move { c.send(&post("/"), None).await });
        settle().await;
        mock.push(ok_response(5, 3));
        assert_eq!(task.await.unwrap().map(|e| e.bytes), Ok(3));
    });
}
