//! An HTTPS (or plain HTTP/1.1) server of the tests' own that counts connections,
//! handshakes and requests itself, and the certificates it needs (rcgen). Included by path
//! by the tests that use it.
#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use mcp_testing::engine::target::Pem;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate authority of the test's own.
pub fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `localhost` and 127.0.0.1 signed by `ca`: (cert PEM, key PEM).
pub fn issue(ca: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub fn pem(text: &str) -> Pem {
    Pem {
        path: "test.pem".into(),
        pem: text.into(),
    }
}

#[derive(Default)]
pub struct Counts {
    pub connections: AtomicU64,
    pub handshakes: AtomicU64,
    pub requests: AtomicU64,
    pub paths: Mutex<Vec<String>>,
}

#[derive(Clone, Default)]
pub struct Behaviour {
    /// Close the connection after each response without saying so.
    pub close_silently: bool,
    /// Answer with `Connection: close`.
    pub close: bool,
    pub delay: Duration,
}

/// A small HTTP/1.1 server (TLS when given a config) on its own thread.
pub struct Server {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

impl Server {
    pub fn start(tls: Option<ServerConfig>, behaviour: Behaviour) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let c = counts.clone();
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(Arc::new(t)));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        a = listener.accept() => a.unwrap(),
                        _ = &mut stopped => return,
                    };
                    c.connections.fetch_add(1, Ordering::SeqCst);
                    let (c, acceptor, b) = (c.clone(), acceptor.clone(), behaviour.clone());
                    tokio::spawn(async move {
                        match acceptor {
                            None => serve(tcp, &c, &b).await,
                            Some(acceptor) => {
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    c.handshakes.fetch_add(1, Ordering::SeqCst);
                                    serve(tls, &c, &b).await;
                                }
                            }
                        }
                    });
                }
            });
        });
        Server {
            addr,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::SeqCst)
    }
}

/// Reads request heads (no bodies) and answers each: `/redirect?to=X` with a 302 to X,
/// anything else with 200 and "ok".
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, counts: &Counts, b: &Behaviour) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        counts.requests.fetch_add(1, Ordering::SeqCst);
        let path = head.split(' ').nth(1).unwrap_or_default().to_string();
        counts.paths.lock().unwrap().push(path.clone());
        tokio::time::sleep(b.delay).await;
        let close = if b.close { "Connection: close\r\n" } else { "" };
        let resp = match path.strip_prefix("/redirect?to=") {
            Some(to) => {
                format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n{close}\r\n")
            }
            None => format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{close}\r\nok"),
        };
        if s.write_all(resp.as_bytes()).await.is_err() || s.flush().await.is_err() {
            return;
        }
        if b.close || b.close_silently {
            let _ = s.shutdown().await;
            return;
        }
    }
}

/// A server config with a certificate from `ca`; demanding a client certificate signed by
/// `clients` when given.
pub fn server_tls(
    ca: &CertifiedIssuer<'static, KeyPair>,
    clients: Option<&CertifiedIssuer<'static, KeyPair>>,
) -> ServerConfig {
    let (cert, key) = issue(ca);
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(clients) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(clients.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
