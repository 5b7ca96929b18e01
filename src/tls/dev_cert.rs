//! A development CA and a certificate it signed for `localhost`,
//! `127.0.0.1` and `::1`: what `eventhub dev-cert` writes and
//! `serve --tls-self-signed` uses, so that wss can be tried without a real
//! certificate. Clients trust the CA (`ca.pem`), not the server
//! certificate itself: rustls-based clients refuse a self-signed leaf as
//! its own trust anchor, and every client accepts a CA.
//!
//! Files already there are reused while the certificate has more than a
//! day left, so a client told to trust `ca.pem` keeps working across runs.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::files::load_pair;
use super::TlsError;
use crate::civil::civil_from_days;

/// The files of a development certificate.
#[derive(Debug, Clone)]
pub struct DevCert {
    /// The CA to tell clients to trust.
    pub ca: PathBuf,
    /// The server certificate (then the CA), for `tls.cert`.
    pub cert: PathBuf,
    /// Its key, for `tls.key`.
    pub key: PathBuf,
    /// Made now (else reused).
    pub generated: bool,
}

/// Days a development certificate is valid.
const VALID_DAYS: i64 = 90;

/// The development certificate in `dir`: the one there if it is still
/// good for a day, else a new CA and certificate.
pub fn ensure_dev_cert(dir: &Path) -> Result<DevCert, TlsError> {
    let mut files = DevCert {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        generated: false,
    };
    let provider = rustls::crypto::ring::default_provider();
    let tomorrow = super::store::unix_now() + 86_400;
    if files.ca.exists() && load_pair(&files.cert, &files.key, &provider, tomorrow).is_ok() {
        return Ok(files);
    }
    let (ca, cert, key) = generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write(&files.ca, &ca, 0o644)?;
    write(&files.cert, &cert, 0o644)?;
    write(&files.key, &key, 0o600)?;
    files.generated = true;
    Ok(files)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// A CA and a server certificate it signed: (CA PEM, chain PEM, key PEM).
fn generate() -> Result<(String, String, String), rcgen::Error> {
    let today = super::store::unix_now().div_euclid(86_400);
    let date = |days: i64| {
        let (y, m, d) = civil_from_days(days);
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    let (from, until) = (date(today - 1), date(today + VALID_DAYS));
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "eventhub development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = from;
    ca_params.not_after = until;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "eventhub development server");
    params.not_before = from;
    params.not_after = until;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((
        ca_cert.pem(),
        format!("{}{}", cert.pem(), ca_cert.pem()),
        key.serialize_pem(),
    ))
}
