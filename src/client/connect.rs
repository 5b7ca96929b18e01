//! Reaching a hub: its URL, the TCP connection, TLS for https/wss, and the
//! WebSocket upgrade with the credential in its header.
//!
//! A token goes in `Authorization: Bearer`, an API key in `X-Api-Key`
//! (the hub keeps the two apart), never in the query, where access logs
//! and proxies would keep them. An upgrade the hub refuses comes
//! back as [`ClientError::Refused`] with the status, `Retry-After` and
//! the hub's JSON body as it sent it.
//!
//! Layer: client. Imports the module's error; rustls and tungstenite.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::WebSocket;
use zeroize::Zeroizing;

use super::ClientError;

/// The system's CA bundle, trusted for wss unless `--ca` names a file.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The bound on connecting and on the TLS and WebSocket handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits before the caller looks at its stop flag again.
pub const POLL: Duration = Duration::from_millis(250);

/// The hub's address from `--url`: `http`, `https`, `ws` or `wss`, a host,
/// an optional port and an optional path prefix (a hub behind a proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path prefix, without a trailing `/` (empty for none).
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |why| ClientError::Url {
            url: url.to_string(),
            why,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad(
            "expected SCHEME://HOST[:PORT], e.g. http://127.0.0.1:8080",
        ))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return Err(bad("the scheme must be http, https, ws or wss")),
        };
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') || rest.contains(['?', '#']) {
            return Err(bad("give the token with --token, not in the URL; no query"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(bad("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port must be a number"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Target {
            tls,
            host: host.to_string(),
            port,
            prefix: prefix
                .trim_end_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(String::new(), |acc, s| acc + "/" + s),
        })
    }

    /// `host:port`, with brackets around an IPv6 host.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The WebSocket URL of `path_and_query` (which starts with `/`).
    pub fn ws_url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}{path_and_query}",
            self.authority(),
            self.prefix
        )
    }
}

/// What the client says it is to the hub.
pub enum Credential {
    /// Sent as `Authorization: Bearer`.
    Token(Zeroizing<String>),
    /// Sent as `X-Api-Key`.
    ApiKey(Zeroizing<String>),
}

impl Credential {
    /// The one credential the flags give: a token (`token`, which clap
    /// fills from the flag or `EVENTHUB_TOKEN`, else the first line of
    /// `token_file`) or an API key (likewise), or none; both is an error.
    pub fn from_flags(
        token: Option<String>,
        token_file: Option<&Path>,
        api_key: Option<String>,
        api_key_file: Option<&Path>,
    ) -> Result<Option<Credential>, ClientError> {
        let token = secret(token, token_file, "token")?;
        let api_key = secret(api_key, api_key_file, "API key")?;
        match (token, api_key) {
            (Some(_), Some(_)) => Err(ClientError::TwoCredentials),
            (Some(t), None) => Ok(Some(Credential::Token(t))),
            (None, Some(k)) => Ok(Some(Credential::ApiKey(k))),
            (None, None) => Ok(None),
        }
    }

    /// The request header that carries it.
    fn header(&self) -> (&'static str, String) {
        match self {
            Credential::Token(t) => ("Authorization", format!("Bearer {}", t.as_str())),
            Credential::ApiKey(k) => ("X-Api-Key", k.as_str().to_string()),
        }
    }
}

/// `value` trimmed unless blank, else the first line of `file`.
fn secret(
    value: Option<String>,
    file: Option<&Path>,
    what: &'static str,
) -> Result<Option<Zeroizing<String>>, ClientError> {
    let value = value.map(Zeroizing::new);
    match (value.filter(|v| !v.trim().is_empty()), file) {
        (Some(v), _) => Ok(Some(Zeroizing::new(v.trim().to_string()))),
        (None, Some(path)) => read_secret_file(path, what).map(Some),
        (None, None) => Ok(None),
    }
}

/// The first line of `path`, trimmed: a secret kept out of the command
/// line and the environment.
fn read_secret_file(path: &Path, what: &'static str) -> Result<Zeroizing<String>, ClientError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        ClientError::SecretFile {
            what,
            path: path.to_path_buf(),
            source,
        }
    })?);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(ClientError::EmptySecretFile {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// The TLS client config: the CAs of `ca` (PEM), else the system's.
fn tls_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, ClientError> {
    let path = ca.unwrap_or(Path::new(SYSTEM_ROOTS));
    let bad = |why: String| ClientError::Ca {
        path: path.to_path_buf(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no usable CERTIFICATE block".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection to the hub, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An open WebSocket to the hub.
pub type Ws = WebSocket<Stream>;

/// Whether a read (or a write behind it) only timed out, or a signal
/// interrupted it: look at the stop flag and read again.
pub fn timed_out(e: &tungstenite::Error) -> bool {
    use io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), WouldBlock | TimedOut | Interrupted))
}

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Reads until the closing handshake completes (tungstenite answers the
/// hub's close itself), within [`CLOSE_WAIT`].
pub fn drain(ws: &mut Ws) {
    let end = std::time::Instant::now() + CLOSE_WAIT;
    while std::time::Instant::now() < end {
        match ws.read() {
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(_) => return,
        }
    }
}

/// Our closing handshake: 1000, then the hub's close (or the deadline).
pub fn close(ws: &mut Ws) {
    let _ = ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    drain(ws);
}

/// Where the hub is and who we are to it.
pub struct Hub {
    target: Target,
    credential: Option<Credential>,
    tls: Option<Arc<ClientConfig>>,
}

impl Hub {
    /// `url` with `credential` and, for https/wss, the CAs of `ca` or
    /// the system's.
    pub fn new(
        url: &str,
        credential: Option<Credential>,
        ca: Option<&Path>,
    ) -> Result<Hub, ClientError> {
        let target = Target::parse(url)?;
        let tls = target.tls.then(|| tls_config(ca)).transpose()?;
        Ok(Hub {
            target,
            credential,
            tls,
        })
    }

    /// Connects and upgrades `path_and_query`; the socket reads with a
    /// [`POLL`] timeout afterwards.
    pub fn open(&self, path_and_query: &str) -> Result<Ws, ClientError> {
        let url = self.target.ws_url(path_and_query);
        let addr = self.target.authority();
        let connect_err = |source| ClientError::Connect {
            addr: addr.clone(),
            source,
        };
        let tcp = connect(&self.target).map_err(connect_err)?;
        tcp.set_nodelay(true).map_err(connect_err)?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(connect_err)?;
        tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(connect_err)?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from(self.target.host.clone()).map_err(|_| {
                    ClientError::Url {
                        url: url.clone(),
                        why: "the host is not a valid TLS server name",
                    }
                })?;
                let conn = ClientConnection::new(config.clone(), name)?;
                Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        };
        let handshake_err = |source| ClientError::Handshake {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut request = url.as_str().into_client_request().map_err(handshake_err)?;
        if let Some(credential) = &self.credential {
            let (name, value) = credential.header();
            let value = HeaderValue::from_str(&value)
                .map_err(|e| handshake_err(tungstenite::Error::HttpFormat(e.into())))?;
            request.headers_mut().insert(name, value);
        }
        let ws = match tungstenite::client::client(request, stream) {
            Ok((ws, _)) => ws,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                return Err(ClientError::Refused {
                    url,
                    status: resp.status().as_u16(),
                    retry_after_s: resp
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse().ok()),
                    body: resp
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).trim().to_string())
                        .unwrap_or_default(),
                })
            }
            Err(tungstenite::HandshakeError::Failure(e)) => return Err(handshake_err(e)),
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                return Err(handshake_err(tungstenite::Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the handshake timed out",
                ))))
            }
        };
        // Reads come back every POLL to look at the stop flag; writes
        // block (a hub that stops reading a publisher is pushing back).
        let tcp = ws.get_ref().tcp();
        tcp.set_read_timeout(Some(POLL)).map_err(connect_err)?;
        tcp.set_write_timeout(None).map_err(connect_err)?;
        Ok(ws)
    }
}

/// The first of the host's addresses that accepts, within the timeout.
fn connect(target: &Target) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (target.host.as_str(), target.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `s` percent-encoded for a query parameter's value.
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_scheme_parse_with_default_ports_and_prefixes() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 8080));
        assert_eq!(t.ws_url("/x?a=1"), "ws://127.0.0.1:8080/x?a=1");
        let t = Target::parse("wss://hub.example/eventhub/").unwrap();
        assert_eq!((t.tls, t.port), (true, 443));
        assert_eq!(t.ws_url("/v1"), "wss://hub.example:443/eventhub/v1");
        let t = Target::parse("ws://[::1]:9000").unwrap();
        assert_eq!(t.ws_url("/"), "ws://[::1]:9000/");
        assert_eq!(Target::parse("HTTPS://h").unwrap().port, 443);
        assert_eq!(Target::parse("ws://h").unwrap().port, 80);
        for bad in [
            "127.0.0.1:8080",
            "ftp://h",
            "ws://:80",
            "ws://h:port",
            "ws://u:p@h",
            "ws://h/?access_token=x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_value(r#"{"event":{"stop":true}}"#),
            "%7B%22event%22%3A%7B%22stop%22%3Atrue%7D%7D"
        );
        assert_eq!(query_value("a-b_c.d~e"), "a-b_c.d~e");
    }
}
