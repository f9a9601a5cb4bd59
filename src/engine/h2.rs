//! HTTP/2 connections for the load engine: the interface the sender uses. Helper `h2` writes
//! the implementation; until it is merged every handshake fails with a clear reason.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

/// One HTTP/2 connection, multiplexing streams.
pub struct H2Conn {
    _private: (),
}

/// Why an HTTP/2 exchange failed.
#[derive(Debug)]
pub enum H2Error {
    Connect(String),
    Body(String),
    /// The server refused the stream before processing it: send again on another connection.
    Refused,
}

/// A response read to its end.
pub struct Exchange {
    pub status: u16,
    pub location: Option<String>,
    pub bytes: u64,
}

/// Starts HTTP/2 on `io` (TLS with ALPN h2, or h2c with prior knowledge).
pub async fn handshake<T: AsyncRead + AsyncWrite + Unpin + 'static>(
    io: T,
) -> Result<H2Conn, H2Error> {
    drop(io);
    Err(H2Error::Connect("HTTP/2 not built yet".into()))
}

impl H2Conn {
    pub async fn send(
        &self,
        _req: http::Request<()>,
        _body: Option<Bytes>,
    ) -> Result<Exchange, H2Error> {
        Err(H2Error::Connect("HTTP/2 not built yet".into()))
    }

    pub fn is_closed(&self) -> bool {
        true
    }
}
