//! TLS for the integration tests: a test PKI made with rcgen (a CA, server
//! certificates it signs, client certificates for mutual TLS), written to
//! PEM files the hub's `[tls]` section names; and a rustls client (an
//! implementation independent of the server's use of rustls: the client
//! side of the library) to speak https and wss to the hub.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::TIMEOUT;

/// A wss stream as the tests read it.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
pub type Wss = tungstenite::WebSocket<TlsStream>;

/// A CA that signs the tests' certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

/// A certificate with its key, as PEM.
pub struct Leaf {
    /// The certificate followed by its CA.
    pub chain_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for localhost and 127.0.0.1 named `cn`, valid
    /// from 2020 to 2090, with an ECDSA P-256 key.
    pub fn server(&self, cn: &str) -> Leaf {
        self.server_with_key(cn, KeyPair::generate().unwrap())
    }

    /// A server certificate that expired on 2021-01-01.
    pub fn expired_server(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        self.leaf("expired", ExtendedKeyUsagePurpose::ServerAuth, true, key)
    }

    /// A server certificate for `key` (Ed25519, RSA from a PEM, ...).
    pub fn server_with_key(&self, cn: &str, key: KeyPair) -> Leaf {
        self.leaf(cn, ExtendedKeyUsagePurpose::ServerAuth, false, key)
    }

    /// A client certificate (for mutual TLS) named `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        self.leaf(cn, ExtendedKeyUsagePurpose::ClientAuth, false, key)
    }

    fn leaf(&self, cn: &str, usage: ExtendedKeyUsagePurpose, expired: bool, key: KeyPair) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = if expired {
            rcgen::date_time_ymd(2021, 1, 1)
        } else {
            rcgen::date_time_ymd(2090, 1, 1)
        };
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client config that trusts this CA only.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_with(None, None)
    }

    /// A client config that trusts this CA, limited to `version` if given,
    /// presenting `identity` (a client certificate) if given.
    pub fn client_config_with(
        &self,
        version: Option<&'static rustls::SupportedProtocolVersion>,
        identity: Option<&Leaf>,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
            Some(v) => vec![v],
            None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(leaf) => {
                use rustls::pki_types::pem::PemObject;
                let chain: Vec<CertificateDer<'static>> = vec![leaf.der.clone()];
                let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// PEM files in a directory of their own under the test target dir.
pub struct TlsFiles {
    pub dir: PathBuf,
}

impl TlsFiles {
    pub fn new(name: &str) -> TlsFiles {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TlsFiles { dir }
    }

    /// Writes `text` to `name` here; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        // Replaced whole (a new inode), as certbot and most deploys do.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    /// Writes `leaf` as cert.pem and key.pem; returns the `[tls]` lines
    /// that name them.
    pub fn pair(&self, leaf: &Leaf) -> String {
        let cert = self.write("cert.pem", &leaf.chain_pem);
        let key = self.write("key.pem", &leaf.key_pem);
        format!("cert = {:?}\nkey = {:?}\n", path_str(&cert), path_str(&key))
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A TLS connection to `addr` with `config`, handshake done (an error if
/// it fails).
pub fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The server certificate a handshake with `addr` presents.
pub fn served_certificate(addr: SocketAddr, config: Arc<ClientConfig>) -> CertificateDer<'static> {
    let stream = tls_connect(addr, config).expect("TLS handshake");
    stream
        .conn
        .peer_certificates()
        .expect("a server certificate")[0]
        .clone()
}

/// An HTTPS request (read to the end of the stream); returns the status
/// and the body.
pub fn https_request(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = tls_connect(addr, config).expect("TLS handshake");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A wss connection to `path` with `headers`, through `config`.
pub fn wss_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> Wss {
    let stream = tls_connect(addr, config).expect("TLS handshake");
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "wss://localhost:{}{path}",
        addr.port()
    ))
    .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (ws, resp) = tungstenite::client(req, stream).expect("wss upgrade");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next text message of `ws` as JSON.
pub fn wss_json(ws: &mut Wss) -> serde_json::Value {
    loop {
        match ws.read().expect("read a message") {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}
