//! TLS for `mcpt target`: the server's certificate, generated at start (a fresh CA signs a leaf
//! for `localhost`, `127.0.0.1`, `::1` and any extra names) or read from PEM files; client
//! certificates demanded when a CA is given for them; the protocols offered by ALPN. rustls
//! with the aws-lc-rs provider, as the load engine's client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

/// The names every generated certificate holds.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// TLS sessions the server remembers for resumption by session id.
const SESSIONS_KEPT: usize = 16_384;

/// Why the target's TLS could not be set up: a bad file or name given on the command line.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{flag} {}: {reason}", path.display())]
    File {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("--tls-cert and --tls-key do not make a TLS configuration: {0}")]
    Config(rustls::Error),
}

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// A fresh CA signs a leaf for the loopback names and these extra names (DNS names or IP
    /// addresses).
    Generated { extra_names: Vec<String> },
    /// A certificate chain and its private key, PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// How the target serves TLS.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub cert: CertSource,
    /// Demand a client certificate signed by a CA of this PEM file (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Offer HTTP/2 by ALPN beside HTTP/1.1 (otherwise HTTP/1.1 only).
    pub h2: bool,
}

/// A TLS configuration ready to serve, and the PEM of the CA that signed a generated
/// certificate (clients trust it to verify the target).
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub ca_pem: Option<String>,
}

/// rustls with aws-lc-rs, as the load engine's client.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the server's TLS configuration from `options`.
pub fn server_tls(options: &TlsOptions) -> Result<ServerTls, TlsSetupError> {
    let (chain, key, ca_pem) = match &options.cert {
        CertSource::Generated { extra_names } => {
            let (chain, key, ca_pem) = generate(extra_names)?;
            (chain, key, Some(ca_pem))
        }
        CertSource::Files { cert, key } => (
            read_certs("--tls-cert", cert)?,
            read_key("--tls-key", key)?,
            None,
        ),
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?;
    let builder = match &options.client_ca {
        Some(path) => builder.with_client_cert_verifier(client_verifier(path)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(TlsSetupError::Config)?;
    config.alpn_protocols = if options.h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.session_storage = ServerSessionMemoryCache::new(SESSIONS_KEPT);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsSetupError::Config)?;
    Ok(ServerTls {
        config: Arc::new(config),
        ca_pem,
    })
}

type Chain = Vec<CertificateDer<'static>>;

/// A fresh CA and a leaf it signs for the loopback names and `extra_names`: the leaf's chain,
/// the leaf's key and the CA certificate's PEM.
fn generate(
    extra_names: &[String],
) -> Result<(Chain, PrivateKeyDer<'static>, String), rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mcpt target CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let names: Vec<String> = LOOPBACK_NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(extra_names.iter().cloned())
        .collect();
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    Ok((vec![leaf_cert.der().clone()], key, ca_pem))
}

/// The certificates of a PEM file (at least one).
fn read_certs(flag: &'static str, path: &Path) -> Result<Chain, TlsSetupError> {
    let error = |reason: String| TlsSetupError::File {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Chain, _>>())
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsSetupError::File {
        flag,
        path: path.to_path_buf(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in the file".into(),
            e => e.to_string(),
        },
    })
}

/// Verifies client certificates against the CAs of `path`; a client without one fails the
/// handshake.
fn client_verifier(
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsSetupError> {
    const FLAG: &str = "--require-client-cert";
    let error = |reason: String| TlsSetupError::File {
        flag: FLAG,
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(FLAG, path)? {
        roots.add(cert).map_err(|e| error(e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| error(e.to_string()))
}
