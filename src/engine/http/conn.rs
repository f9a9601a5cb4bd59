//! Opening a connection to a target: the name resolved and every address checked against the
//! allowlist before any socket connects ([`Allowlist::resolve`]), `TCP_NODELAY`, then TLS
//! (rustls, aws-lc-rs) when the URL is `https`. One rustls [`ClientConfig`] per distinct TLS
//! setting of a sender, built once: its session store is shared by all its connections, so
//! reconnects resume their sessions.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::allowlist::Allowlist;
use crate::engine::target::{HttpVersion, Tls};
use crate::stats::{ErrorKind, Handshake};

/// Why a request failed, and the words to log about it.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub kind: ErrorKind,
    pub reason: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Failure {
        Failure {
            kind,
            reason: reason.into(),
        }
    }

    /// An I/O error on an open connection: a TLS error (an alert from the server, a bad
    /// record) is `tls`, anything else `kind`.
    pub fn io(kind: ErrorKind, what: &str, e: &io::Error) -> Failure {
        match tls_error(e) {
            Some(tls) => Failure::new(ErrorKind::Tls, format!("{what}: {tls}")),
            None => Failure::new(kind, format!("{what}: {e}")),
        }
    }
}

/// The rustls error inside an I/O error, if that is what it is.
pub(super) fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A connection to a target, in clear or over TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl crate::engine::h2::Transport for Stream {
    fn socket(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Stream::Plain(s) => Some(s.as_raw_fd()),
            Stream::Tls(s) => Some(s.get_ref().0.as_raw_fd()),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// How to secure the connections of one endpoint.
#[derive(Clone)]
pub(super) struct TlsTarget {
    pub config: Arc<ClientConfig>,
    /// The name sent in SNI and verified.
    pub name: ServerName<'static>,
}

/// A connection just opened.
pub(super) struct Opened {
    pub stream: Stream,
    /// How the TLS handshake went (`None` in clear).
    pub handshake: Option<Handshake>,
    /// The server chose HTTP/2 by ALPN.
    pub h2: bool,
}

/// Resolves `host`, checks every address against the allowlist, connects to the first that
/// answers (only checked addresses), then shakes hands over TLS when `tls` is given.
pub(super) async fn connect(
    allowlist: &Allowlist,
    host: &str,
    port: u16,
    tls: Option<&TlsTarget>,
) -> Result<Opened, Failure> {
    let addrs = allowlist
        .resolve(host, port)
        .await
        .map_err(|why| Failure::new(ErrorKind::Connect, format!("connection refused: {why}")))?;
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(format!("connecting to {addr}: {e}")),
        }
    }
    let Some(tcp) = tcp else {
        return Err(Failure::new(
            ErrorKind::Connect,
            last.unwrap_or_else(|| format!("{host} has no address")),
        ));
    };
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let Some(tls) = tls else {
        return Ok(Opened {
            stream: Stream::Plain(tcp),
            handshake: None,
            h2: false,
        });
    };
    let stream = TlsConnector::from(tls.config.clone())
        .connect(tls.name.clone(), tcp)
        .await
        .map_err(|e| {
            let reason = match tls_error(&e) {
                Some(tls) => tls.to_string(),
                None => e.to_string(),
            };
            Failure::new(
                ErrorKind::Tls,
                format!("TLS handshake with {host}:{port} failed: {reason}"),
            )
        })?;
    let session = stream.get_ref().1;
    let handshake = match session.handshake_kind() {
        Some(HandshakeKind::Resumed) => Handshake::Resumed,
        _ => Handshake::Full,
    };
    let h2 = session.alpn_protocol() == Some(b"h2");
    Ok(Opened {
        stream: Stream::Tls(Box::new(stream)),
        handshake: Some(handshake),
        h2,
    })
}

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "a system root certificate could not be read");
        }
        found.certs
    })
}

/// The ALPN protocols offered for an `http_version`.
fn alpn(version: HttpVersion) -> Vec<Vec<u8>> {
    match version {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    }
}

/// The rustls configuration of a task's (or target's) `tls` and `http_version`: the system's
/// roots plus `ca`, or no verification with `insecure`; the client certificate if given.
/// An unusable setting (no certificate in `ca`, a key that does not parse) is the reason.
pub(super) fn client_config(tls: &Tls, version: HttpVersion) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )))
    } else {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(ca) = &tls.ca {
            let certs = pem_certs(&ca.pem).map_err(|e| format!("tls.ca {}: {e}", ca.path))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca {}: {e}", ca.path))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &tls.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let certs =
                pem_certs(&id.cert.pem).map_err(|e| format!("tls.cert {}: {e}", id.cert.path))?;
            let key = PrivateKeyDer::from_pem_slice(id.key.pem.as_bytes())
                .map_err(|e| format!("tls.key {}: {e}", id.key.path))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls.cert/tls.key: {e}"))?
        }
    };
    config.alpn_protocols = alpn(version);
    Ok(Arc::new(config))
}

/// Every certificate of a PEM text; at least one.
fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// The verifier of `insecure: true`: any certificate is accepted, but the handshake's
/// signatures are still checked against it (a server still proves it holds the key).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
