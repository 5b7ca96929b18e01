//! The server side of the opening handshake (RFC 6455 section 4.2).
//!
//! [`check_upgrade`] decides whether a parsed request is a valid WebSocket
//! upgrade and computes `Sec-WebSocket-Accept`; each way a request can fall
//! short is its own [`HandshakeError`] variant with its own status, so a
//! client is told exactly what to fix.
//!
//! Protocol crate: imports [`crate::http`] (the request it checks) and the
//! SHA-1 and base64 crates.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::http::{Request, Response};

/// The GUID of RFC 6455 section 1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("WebSocket upgrade must use GET, not {0}")]
    MethodNotGet(String),
    #[error("WebSocket upgrade needs HTTP/1.1")]
    HttpVersionTooOld,
    #[error("missing or empty Host header")]
    MissingHost,
    #[error("missing or wrong Upgrade header: expected 'websocket'")]
    NotWebSocketUpgrade,
    #[error("Connection header does not contain 'upgrade'")]
    MissingConnectionUpgrade,
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes")]
    InvalidKey,
    #[error("unsupported Sec-WebSocket-Version {0:?}: only 13 is supported")]
    UnsupportedVersion(String),
}

impl HandshakeError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotGet(_) => 405,
            HandshakeError::NotWebSocketUpgrade | HandshakeError::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }

    /// The full HTTP response: JSON body, plus the headers RFC 6455 asks
    /// for (`Sec-WebSocket-Version` on a version mismatch).
    pub fn response(&self) -> Response {
        let code = match self.status() {
            405 => "method_not_allowed",
            426 => "upgrade_required",
            _ => "bad_handshake",
        };
        let resp = Response::error(self.status(), code, &self.to_string());
        match self {
            HandshakeError::MethodNotGet(_) => resp.with_header("Allow", "GET"),
            HandshakeError::UnsupportedVersion(_) => {
                resp.with_header("Sec-WebSocket-Version", "13")
            }
            HandshakeError::NotWebSocketUpgrade => resp.with_header("Upgrade", "websocket"),
            _ => resp,
        }
    }
}

/// Checks a request against section 4.2.1; on success returns the value of
/// `Sec-WebSocket-Accept`.
pub fn check_upgrade(req: &Request) -> Result<String, HandshakeError> {
    if req.method != "GET" {
        return Err(HandshakeError::MethodNotGet(req.method.clone()));
    }
    if req.minor_version < 1 {
        return Err(HandshakeError::HttpVersionTooOld);
    }
    if req.header("host").is_none_or(|h| h.is_empty()) {
        return Err(HandshakeError::MissingHost);
    }
    if !req
        .header("upgrade")
        .is_some_and(|u| has_token(u, "websocket"))
    {
        return Err(HandshakeError::NotWebSocketUpgrade);
    }
    if !req
        .headers_named("connection")
        .any(|c| has_token(c, "upgrade"))
    {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or(HandshakeError::MissingKey)?;
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    match req.header("sec-websocket-version") {
        Some("13") => {}
        other => {
            return Err(HandshakeError::UnsupportedVersion(
                other.unwrap_or("").to_string(),
            ))
        }
    }
    Ok(accept_key(key))
}

/// `base64(SHA-1(key + GUID))`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// The `101 Switching Protocols` response, with the extensions agreed
/// (`Sec-WebSocket-Extensions`), if any.
pub fn switching_protocols(accept: &str, extensions: Option<&str>) -> Vec<u8> {
    let extensions = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extensions}\r\n"
    )
    .into_bytes()
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, HeadLimits};

    fn req(extra: &str, method: &str, version: &str) -> Request {
        let mut head = format!("{method} /ws {version}\r\nHost: localhost\r\n");
        head.push_str(extra);
        head.push_str("\r\n");
        parse_head(head.as_bytes(), &HeadLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    const GOOD: &str = "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn rfc_sample_key_gives_rfc_sample_accept() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn valid_upgrade_with_token_list_and_mixed_case_is_accepted() {
        let accept = check_upgrade(&req(GOOD, "GET", "HTTP/1.1")).unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let resp = String::from_utf8(switching_protocols(&accept, None)).unwrap();
        assert!(resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    }

    #[test]
    fn post_is_405_with_allow() {
        let e = check_upgrade(&req(GOOD, "POST", "HTTP/1.1")).unwrap_err();
        assert_eq!(e.status(), 405);
        assert!(e.response().headers.contains(&("Allow", "GET".to_string())));
    }

    #[test]
    fn http_1_0_is_400() {
        assert_eq!(
            check_upgrade(&req(GOOD, "GET", "HTTP/1.0")),
            Err(HandshakeError::HttpVersionTooOld)
        );
    }

    /// HTTP/1.1 allows an empty `Host`; an upgrade must name the server
    /// (RFC 6455 section 4.1). A missing `Host` is already refused with the
    /// request head (`HttpError::MissingHost`).
    #[test]
    fn empty_host_is_400() {
        let head = format!("GET / HTTP/1.1\r\nHost:\r\n{GOOD}\r\n");
        let r = parse_head(head.as_bytes(), &HeadLimits::default())
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(check_upgrade(&r), Err(HandshakeError::MissingHost));
        assert_eq!(HandshakeError::MissingHost.status(), 400);
    }

    #[test]
    fn missing_upgrade_is_426() {
        let e = check_upgrade(&req(
            &GOOD.replace("Upgrade: WebSocket\r\n", ""),
            "GET",
            "HTTP/1.1",
        ))
        .unwrap_err();
        assert_eq!(e, HandshakeError::NotWebSocketUpgrade);
        assert_eq!(e.status(), 426);
    }

    #[test]
    fn connection_without_upgrade_token_is_400() {
        let r = req(
            &GOOD.replace("keep-alive, Upgrade", "keep-alive"),
            "GET",
            "HTTP/1.1",
        );
        assert_eq!(
            check_upgrade(&r),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
    }

    #[test]
    fn key_that_is_not_16_bytes_is_400() {
        let r = req(
            &GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            "GET",
            "HTTP/1.1",
        );
        assert_eq!(check_upgrade(&r), Err(HandshakeError::InvalidKey));
        let r = req(
            &GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!"),
            "GET",
            "HTTP/1.1",
        );
        assert_eq!(check_upgrade(&r), Err(HandshakeError::InvalidKey));
        let r = req(
            &GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            "GET",
            "HTTP/1.1",
        );
        assert_eq!(check_upgrade(&r), Err(HandshakeError::MissingKey));
    }

    #[test]
    fn other_version_is_426_naming_13() {
        let r = req(
            &GOOD.replace("Version: 13", "Version: 8"),
            "GET",
            "HTTP/1.1",
        );
        let e = check_upgrade(&r).unwrap_err();
        assert_eq!(e.status(), 426);
        let bytes = String::from_utf8(e.response().to_bytes(false)).unwrap();
        assert!(bytes.contains("Sec-WebSocket-Version: 13\r\n"), "{bytes}");
    }
}
