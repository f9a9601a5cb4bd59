//! The task that owns an HTTP/2 connection's socket: it reads into one reused buffer, parses
//! frames in place ([`Recv`]) and writes what the handles queued, one write per turn.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Head};
use super::lowat::LowWater;
use super::{
    CONNECTION_WINDOW, ConnError, H2Error, HANDSHAKE_PING, HEADER_TABLE, Inner, MAX_HEADER_BLOCK,
    MAX_STREAM_ID, READ_BUFFER, STREAM_WINDOW, Shared, Transport, hpack,
};

/// Spawns the driver of the connection `shared` over `io` on the current `LocalSet`.
pub(super) fn spawn<T: Transport>(io: T, shared: Rc<Shared>) {
    let mut driver = Driver {
        lowat: io.socket().map(LowWater::new),
        io,
        shared,
        rbuf: vec![0; READ_BUFFER].into_boxed_slice(),
        rlen: 0,
        wbuf: Vec::with_capacity(4096),
        wpos: 0,
        flush: false,
        deferred: false,
        recv: Recv {
            decoder: hpack::Decoder::new(HEADER_TABLE),
            block: Vec::new(),
            continuing: None,
            unacked: 0,
        },
    };
    tokio::task::spawn_local(async move { poll_fn(|cx| driver.poll_drive(cx)).await });
}

/// The receiving half of the protocol state the driver keeps to itself.
struct Recv {
    decoder: hpack::Decoder,
    /// A header block arriving over CONTINUATION frames.
    block: Vec<u8>,
    /// (stream, HEADERS flags) while a header block continues.
    continuing: Option<(u32, u8)>,
    /// Connection-level bytes received and not yet given back.
    unacked: u32,
}

impl Recv {
    fn on_frame(&mut self, inner: &mut Inner, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let first_settings = head.kind == frame::SETTINGS && head.flags & frame::ACK == 0;
        if !(inner.settings_seen || first_settings) {
            return Err(ConnError::protocol(
                "the server's first frame was not SETTINGS",
            ));
        }
        if let Some((stream, _)) = self.continuing
            && (head.kind != frame::CONTINUATION || head.stream != stream)
        {
            return Err(ConnError::protocol("a header block was interrupted"));
        }
        match head.kind {
            frame::DATA => self.on_data(inner, head, payload)?,
            frame::HEADERS | frame::CONTINUATION => self.on_headers(inner, head, payload)?,
            frame::RST_STREAM => {
                if head.len != 4 || head.stream == 0 {
                    return Err(ConnError::new(frame::FRAME_SIZE_ERROR, "bad RST_STREAM"));
                }
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if let Some(&idx) = inner.ids.get(&head.stream) {
                    let err = if code == frame::REFUSED_STREAM {
                        H2Error::Refused
                    } else {
                        H2Error::Body(format!(
                            "stream reset by the server ({})",
                            frame::error_name(code)
                        ))
                    };
                    inner.finish(idx, Err(err), None);
                }
            }
            frame::SETTINGS => {
                if head.stream != 0 {
                    return Err(ConnError::protocol("SETTINGS on a stream"));
                }
                if head.flags & frame::ACK == 0 {
                    if !head.len.is_multiple_of(6) {
                        return Err(ConnError::new(frame::FRAME_SIZE_ERROR, "bad SETTINGS"));
                    }
                    inner.settings_seen = true;
                    inner.apply_settings(payload)?;
                    frame::put_head(&mut inner.out, 0, frame::SETTINGS, frame::ACK, 0);
                }
            }
            frame::PING => {
                if head.len != 8 || head.stream != 0 {
                    return Err(ConnError::new(frame::FRAME_SIZE_ERROR, "bad PING"));
                }
                if head.flags & frame::ACK == 0 {
                    frame::put_ping(&mut inner.out, frame::ACK, payload);
                } else if payload == HANDSHAKE_PING {
                    inner.ready = true;
                    if let Some(w) = inner.waiter.take() {
                        w.wake();
                    }
                }
            }
            frame::GOAWAY => {
                if head.len < 8 || head.stream != 0 {
                    return Err(ConnError::new(frame::FRAME_SIZE_ERROR, "bad GOAWAY"));
                }
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & MAX_STREAM_ID;
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                inner.on_goaway(last, code);
            }
            frame::WINDOW_UPDATE => on_window_update(inner, head, payload)?,
            frame::PUSH_PROMISE => {
                return Err(ConnError::protocol("PUSH_PROMISE with push disabled"));
            }
            // PRIORITY and unknown frame types are ignored.
            _ => {}
        }
        Ok(())
    }

    /// HEADERS and CONTINUATION: a header block, whole or in fragments.
    fn on_headers(
        &mut self,
        inner: &mut Inner,
        head: Head,
        payload: &[u8],
    ) -> Result<(), ConnError> {
        if head.kind == frame::HEADERS {
            if head.stream == 0 {
                return Err(ConnError::protocol("HEADERS on stream 0"));
            }
            let fragment = frame::unpad(&head, payload)
                .ok_or_else(|| ConnError::protocol("HEADERS padding too long"))?;
            if head.flags & frame::END_HEADERS != 0 {
                self.on_block(inner, head.stream, head.flags, fragment)?;
            } else {
                self.block.clear();
                self.block.extend_from_slice(fragment);
                self.continuing = Some((head.stream, head.flags));
            }
        } else {
            let Some((stream, flags)) = self.continuing else {
                return Err(ConnError::protocol("CONTINUATION without HEADERS"));
            };
            self.block.extend_from_slice(payload);
            if self.block.len() > MAX_HEADER_BLOCK {
                return Err(ConnError::protocol("response header block too large"));
            }
            if head.flags & frame::END_HEADERS != 0 {
                self.continuing = None;
                let block = std::mem::take(&mut self.block);
                let done = self.on_block(inner, stream, flags, &block);
                self.block = block;
                done?;
            }
        }
        Ok(())
    }

    fn on_data(&mut self, inner: &mut Inner, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError::protocol("DATA on stream 0"));
        }
        let data = frame::unpad(&head, payload)
            .ok_or_else(|| ConnError::protocol("DATA padding too long"))?;
        // The whole payload counts against the windows, padding included. Bodies are counted,
        // not kept, so every byte is given back as it arrives: the windows we gave never run
        // out, and a server cannot overrun them.
        let len = head.len as u32;
        self.unacked += len;
        if self.unacked >= CONNECTION_WINDOW / 2 {
            frame::put_window_update(&mut inner.out, 0, self.unacked);
            self.unacked = 0;
        }
        let Some(&idx) = inner.ids.get(&head.stream) else {
            return Ok(());
        };
        let e = &mut inner.entries[idx];
        if e.status == 0 {
            let err = H2Error::Body("DATA before the response head".into());
            inner.finish(idx, Err(err), Some(frame::PROTOCOL_ERROR));
            return Ok(());
        }
        e.bytes += data.len() as u64;
        if let Some(kept) = e.keep.as_deref_mut() {
            kept.data(data);
        }
        if head.flags & frame::END_STREAM != 0 {
            inner.complete(idx);
        } else {
            e.unacked += len;
            if e.unacked >= STREAM_WINDOW / 2 {
                frame::put_window_update(&mut inner.out, e.id, e.unacked);
                e.unacked = 0;
            }
        }
        Ok(())
    }

    /// A complete header block on `stream`: decoded always (the dynamic table must follow
    /// the server's), kept when it is the response head of a stream of ours.
    fn on_block(
        &mut self,
        inner: &mut Inner,
        stream: u32,
        flags: u8,
        block: &[u8],
    ) -> Result<(), ConnError> {
        let idx = inner.ids.get(&stream).copied();
        let want = idx.is_some_and(|i| inner.entries[i].status == 0);
        let mut status = 0u16;
        let mut location = None;
        let kept = match idx {
            Some(i) if want => inner.entries[i].keep.as_deref_mut(),
            _ => None,
        };
        let decoded = match kept {
            None => self.decoder.decode(block, |name, value| {
                if !want {
                    return;
                }
                if name == b":status" {
                    status = parse_status(value);
                } else if name == b"location" && (300..400).contains(&status) {
                    location = Some(String::from_utf8_lossy(value).into_owned());
                }
            }),
            // A flow's exchange keeps every header besides the pseudo-headers.
            Some(kept) => self.decoder.decode(block, |name, value| {
                if name == b":status" {
                    status = parse_status(value);
                } else if !name.starts_with(b":") {
                    if name == b"location" && (300..400).contains(&status) {
                        location = Some(String::from_utf8_lossy(value).into_owned());
                    }
                    kept.header(name, value);
                }
            }),
        };
        decoded.map_err(|e| ConnError::new(frame::COMPRESSION_ERROR, e.to_string()))?;
        let Some(idx) = idx else {
            return Ok(());
        };
        let end = flags & frame::END_STREAM != 0;
        if want {
            if status == 0 {
                let err = H2Error::Body("response head without a valid :status".into());
                inner.finish(idx, Err(err), Some(frame::PROTOCOL_ERROR));
                return Ok(());
            }
            if (100..200).contains(&status) {
                // Informational: the final head follows.
                if let Some(kept) = inner.entries[idx].keep.as_deref_mut() {
                    kept.interim();
                }
                if end {
                    let err = H2Error::Body("stream ended after an informational head".into());
                    inner.finish(idx, Err(err), None);
                }
                return Ok(());
            }
            let e = &mut inner.entries[idx];
            e.status = status;
            e.location = location;
        }
        if end {
            inner.complete(idx);
        }
        Ok(())
    }
}

/// Three ASCII digits, or 0.
fn parse_status(value: &[u8]) -> u16 {
    match value {
        [a, b, c] if value.iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => 0,
    }
}

/// The task that owns the socket.
struct Driver<T> {
    io: T,
    shared: Rc<Shared>,
    rbuf: Box<[u8]>,
    rlen: usize,
    /// The bytes being written, and how far.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Bytes were written since the last flush.
    flush: bool,
    /// New frames wait for the worker's next turn (see `poll_write_out`).
    deferred: bool,
    /// The socket's receive low-water mark, where there is a socket.
    lowat: Option<LowWater>,
    recv: Recv,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Polled again: frames held back on the last poll go out now.
        let hold = !std::mem::take(&mut self.deferred);
        {
            let mut inner = self.shared.inner.borrow_mut();
            inner.notified = false;
            if !inner
                .driver
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.driver = Some(cx.waker().clone());
            }
        }
        loop {
            let mut read = false;
            let mut rb = ReadBuf::new(&mut self.rbuf[self.rlen..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        return self.end("the server closed the connection".into());
                    }
                    self.rlen += n;
                    if let Some(lowat) = &mut self.lowat {
                        lowat.read(n);
                    }
                    if let Err(e) = self.process() {
                        let mut inner = self.shared.inner.borrow_mut();
                        let last = inner.next_id.saturating_sub(2);
                        frame::put_goaway(&mut inner.out, last, e.code);
                        drop(inner);
                        // Best effort: the GOAWAY may not get out before the socket closes.
                        let _ = self.poll_write_out(cx, false);
                        return self.end(format!("protocol error: {}", e.why));
                    }
                    read = true;
                }
                Poll::Ready(Err(e)) => return self.end(format!("reading: {e}")),
                Poll::Pending => {}
            }
            if let Err(e) = self.poll_write_out(cx, hold) {
                return self.end(format!("writing: {e}"));
            }
            if self.shared.handles.get() == 0 && self.shared.in_flight.get() == 0 {
                let mut inner = self.shared.inner.borrow_mut();
                frame::put_goaway(&mut inner.out, 0, frame::NO_ERROR);
                drop(inner);
                let _ = self.poll_write_out(cx, false);
                let _ = Pin::new(&mut self.io).poll_shutdown(cx);
                return self.end("the connection was closed".into());
            }
            if !read {
                if let Some(lowat) = &mut self.lowat {
                    let inner = self.shared.inner.borrow();
                    lowat.tune(inner.open, inner.completed, cx);
                }
                return Poll::Pending;
            }
        }
    }

    /// Parses the complete frames in the read buffer and keeps the rest for the next read.
    fn process(&mut self) -> Result<(), ConnError> {
        let mut inner = self.shared.inner.borrow_mut();
        let mut pos = 0;
        while self.rlen - pos >= 9 {
            let head = Head::parse(&self.rbuf[pos..pos + 9]);
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(ConnError::new(
                    frame::FRAME_SIZE_ERROR,
                    format!(
                        "a frame of {} bytes, above SETTINGS_MAX_FRAME_SIZE",
                        head.len
                    ),
                ));
            }
            if self.rlen - pos - 9 < head.len {
                break;
            }
            let payload = &self.rbuf[pos + 9..pos + 9 + head.len];
            self.recv.on_frame(&mut inner, head, payload)?;
            pos += 9 + head.len;
        }
        self.rbuf.copy_within(pos..self.rlen, 0);
        self.rlen -= pos;
        Ok(())
    }

    /// Writes what is queued until done or the socket would block, then flushes.
    ///
    /// With `hold`, new frames are not written yet: the driver asks tokio to poll it again once
    /// the worker has run the tasks that are ready (`yield_now`'s deferred wake), and writes
    /// then. The requests those tasks start on this connection join the same write, so the
    /// server reads them in one go. The wake is the scheduler's, so nothing waits on the
    /// server (a server that answers only once it has many requests still gets them).
    fn poll_write_out(&mut self, cx: &mut Context<'_>, hold: bool) -> std::io::Result<()> {
        loop {
            if self.wpos == self.wbuf.len() {
                self.wbuf.clear();
                self.wpos = 0;
                let mut inner = self.shared.inner.borrow_mut();
                if inner.out.is_empty() {
                    break;
                }
                if hold {
                    if !self.deferred {
                        self.deferred = true;
                        // The deferred wake comes anyway: senders need not wake the driver.
                        inner.notified = true;
                        // Always pending on its first poll; outside a runtime it wakes at once.
                        let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
                    }
                    break;
                }
                std::mem::swap(&mut self.wbuf, &mut inner.out);
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    self.flush = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    fn end(&mut self, why: String) -> Poll<()> {
        self.shared.inner.borrow_mut().end(H2Error::Connect(why));
        Poll::Ready(())
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        // The task was dropped (the runtime shut down) or ended: nothing waits forever.
        if let Ok(mut inner) = self.shared.inner.try_borrow_mut() {
            inner.end(H2Error::Connect("the connection's task ended".into()));
        }
    }
}

/// WINDOW_UPDATE: more room to send, on the connection or on one stream.
fn on_window_update(inner: &mut Inner, head: Head, payload: &[u8]) -> Result<(), ConnError> {
    if head.len != 4 {
        return Err(ConnError::new(frame::FRAME_SIZE_ERROR, "bad WINDOW_UPDATE"));
    }
    let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & MAX_STREAM_ID;
    if head.stream == 0 {
        if inc == 0 {
            return Err(ConnError::protocol("WINDOW_UPDATE of 0"));
        }
        inner.send_window += i64::from(inc);
        if inner.send_window > frame::MAX_WINDOW {
            return Err(ConnError::new(
                frame::FLOW_CONTROL_ERROR,
                "connection window above 2^31-1",
            ));
        }
    } else if let Some(&idx) = inner.ids.get(&head.stream) {
        // A stream's window errors end that stream only (RFC 9113 §6.9).
        let window = inner.entries[idx].send_window + i64::from(inc);
        let bad = match (inc, window > frame::MAX_WINDOW) {
            (0, _) => Some((frame::PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")),
            (_, true) => Some((frame::FLOW_CONTROL_ERROR, "a window above 2^31-1")),
            _ => None,
        };
        if let Some((code, why)) = bad {
            let err = H2Error::Body(format!("the server sent {why}"));
            inner.finish(idx, Err(err), Some(code));
            return Ok(());
        }
        inner.entries[idx].send_window = window;
    }
    inner.push_bodies();
    Ok(())
}
