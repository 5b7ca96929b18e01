//! The certificate served to new handshakes, and its reload.
//!
//! rustls asks a resolver for the certificate of each handshake; this one
//! answers with the pair loaded last. A reload loads and checks the files
//! again ([`super::files::load_pair`]) and swaps the pair whole, so a
//! handshake sees the old pair or the new one, never a certificate with
//! the other's key; a reload that fails keeps the old pair. Connections
//! already up are not touched: their keys came from their own handshake.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::files::{load_pair, Pair};
use super::x509::format_utc;
use super::TlsError;

/// The served pair and where it comes from.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Pair>>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

/// Now, in Unix seconds.
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl CertStore {
    /// Loads the pair once; start-up stops on the error.
    pub(super) fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertStore, TlsError> {
        let pair = load_pair(&cert_path, &key_path, &provider, unix_now())?;
        Ok(CertStore {
            cert_path,
            key_path,
            provider,
            current: RwLock::new(Arc::new(pair)),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// Loads the files again; on success new handshakes get the new pair,
    /// on failure the old one stays (the error says why).
    pub fn reload(&self) -> Result<(), TlsError> {
        match load_pair(&self.cert_path, &self.key_path, &self.provider, unix_now()) {
            Ok(pair) => {
                let expires = format_utc(pair.validity.not_after);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "tls: loaded {} (expires {expires}) for new connections",
                    self.cert_path.display()
                );
                Ok(())
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn current(&self) -> Arc<Pair> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the served certificate expires (Unix seconds).
    pub fn not_after(&self) -> i64 {
        self.current().validity.not_after
    }

    /// Seconds until the served certificate expires (negative once it has).
    pub fn expires_in_s(&self) -> i64 {
        self.not_after() - unix_now()
    }

    /// Successful and refused reloads since start-up.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }

    /// The certificate and key files.
    pub fn paths(&self) -> (&std::path::Path, &std::path::Path) {
        (&self.cert_path, &self.key_path)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}
