//! wss: the certificate side of TLS. Loading and checking the files named
//! in `[tls]`, the reloadable certificate every new handshake is served
//! ([`CertStore`]), its reload on SIGHUP and on file changes, the rustls
//! [`ServerConfig`] the runtime hands each connection, and a development
//! CA and certificate for trying wss on a laptop.
//!
//! Layer: beside the config, below the runtime. It knows files, rustls
//! and the config's `[tls]`; the per-connection TLS state (the handshake,
//! records in and out, on the reactor's sockets) is the runtime's
//! (`runtime::tls_link`), which takes only the [`ServerConfig`] from here.
//!
//! - `files`: reading a certificate chain, its key, client CAs; every
//!   check that stops start-up with a message naming the file;
//! - `x509`: the certificate's validity, read from its DER;
//! - `store`: the served pair, swapped whole on reload;
//! - `watch`: SIGHUP and the periodic look at the files;
//! - `dev_cert`: `eventhub dev-cert` and `serve --tls-self-signed`.

mod dev_cert;
mod files;
mod store;
mod watch;
pub mod x509;

use std::path::PathBuf;
use std::sync::Arc;

pub use dev_cert::{ensure_dev_cert, DevCert};
pub use rustls::ServerConfig;
pub use store::CertStore;
pub use watch::{spawn_reloader, Reloader};

use crate::config::{TlsConfig, TlsVersion};

/// Why TLS could not be set up (or a reload was refused). Each names the
/// file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no CERTIFICATE block", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key block (PKCS#8, RSA or EC)", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable private key: {reason}", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("{} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: cannot read the certificate: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: x509::X509Error,
    },
    #[error("{}: the certificate expired at {not_after}", path.display())]
    Expired { path: PathBuf, not_after: String },
    #[error("{}: the certificate is not valid before {not_before}", path.display())]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("{}: unusable client CA: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a development certificate: {0}")]
    Generate(String),
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the runtime is given for wss: the config every handshake starts
/// from, and the store behind it (for reloads and `/metrics`).
#[derive(Debug, Clone)]
pub struct TlsSetup {
    pub server_config: Arc<ServerConfig>,
    pub store: Arc<CertStore>,
}

/// ring's provider with the hub's order of cipher suites, which the hub
/// applies whatever the client prefers: AES-128-GCM first (with AES
/// instructions the cheapest per record, and SHA-256 the cheaper hash in
/// the handshake; 128-bit security), then AES-256-GCM, then
/// ChaCha20-Poly1305, in TLS 1.3 and in TLS 1.2.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

/// Loads and checks `[tls]`'s files and builds the server config: TLS 1.3
/// (and 1.2 unless `min_version` says 1.3), ALPN `http/1.1`, client
/// certificates when `client_ca` is set.
pub fn setup(config: &TlsConfig) -> Result<TlsSetup, TlsError> {
    let provider = Arc::new(provider());
    let store = Arc::new(CertStore::load(
        PathBuf::from(&config.cert),
        PathBuf::from(&config.key),
        provider.clone(),
    )?);
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = if config.client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let path = PathBuf::from(&config.client_ca);
        let roots = files::client_roots(&path)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if config.client_cert_required {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier.build().map_err(|e| TlsError::ClientCa {
            path,
            reason: e.to_string(),
        })?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut server_config = builder.with_cert_resolver(store.clone());
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    server_config.ignore_client_order = true;
    // TLS 1.3 connections' records are the runtime's own after the
    // handshake (`runtime::tls_records`), with the keys rustls hands over.
    server_config.enable_secret_extraction = true;
    Ok(TlsSetup {
        server_config: Arc::new(server_config),
        store,
    })
}
