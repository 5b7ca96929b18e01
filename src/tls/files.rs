//! Reading the PEM files of `[tls]` and checking them before anything is
//! served: the chain parses, the key is one rustls can sign with, the key
//! belongs to the certificate, and the certificate is valid now. Each
//! failure names its file, so a bad deploy stops start-up (or is refused
//! by a reload) with a message an operator can act on.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use zeroize::Zeroizing;

use super::x509::{self, Validity};
use super::TlsError;

/// A checked certificate chain and key, ready to serve.
#[derive(Debug)]
pub(super) struct Pair {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) validity: Validity,
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Every CERTIFICATE block of a PEM file, in order.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Loads `cert` (the leaf, then its intermediates) and `key`, and checks
/// them against each other and against the clock (`now`, Unix seconds).
pub(super) fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
    now: i64,
) -> Result<Pair, TlsError> {
    let chain = certificates(cert)?;
    let validity = x509::validity(&chain[0]).map_err(|source| TlsError::BadCertificate {
        path: cert.to_path_buf(),
        source,
    })?;
    if now >= validity.not_after {
        return Err(TlsError::Expired {
            path: cert.to_path_buf(),
            not_after: x509::format_utc(validity.not_after),
        });
    }
    if now < validity.not_before {
        return Err(TlsError::NotYetValid {
            path: cert.to_path_buf(),
            not_before: x509::format_utc(validity.not_before),
        });
    }
    let key_pem = read(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key.to_path_buf(),
        },
        e => TlsError::Pem {
            path: key.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::UnsupportedKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
    }
    Ok(Pair {
        key: Arc::new(certified),
        validity,
    })
}

/// The CAs of `tls.client_ca`.
pub(super) fn client_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::ClientCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}
