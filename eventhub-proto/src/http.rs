//! An incremental HTTP/1.1 request-head parser and response writer.
//!
//! Only what a WebSocket server and a small JSON API need: the request line,
//! headers, path and query (percent-decoded). [`parse_head`] returns
//! `Ok(None)` until the blank line that ends the head has arrived, consumes
//! nothing until then, and bounds both the head's size and its header count
//! so that a client cannot make the server buffer without limit. Bodies are
//! the caller's business ([`Request::body_length`] says how long).
//!
//! The request line and header syntax are `httparse`'s (hyper's parser:
//! strict about token and field-value bytes, fuzzed for years); the rules of
//! RFC 9112 and RFC 9110 that a server must enforce on top are here, each
//! its own [`HttpError`]: CRLF line endings only (no bare CR or LF); one
//! `Content-Length` of digits only; no `Transfer-Encoding` (this server
//! implements none: 501), and never together with `Content-Length` (400,
//! the request-smuggling shape); exactly one `Host` on HTTP/1.1, without a
//! list or userinfo (RFC 9112 section 3.2).
//!
//! Protocol crate: imports only [`crate::json`] (the error object).

use std::fmt::Write as _;

/// Bounds on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head exceeds {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("request has more than {max} headers")]
    TooManyHeaders { max: usize },
    #[error("malformed request line")]
    MalformedRequestLine,
    #[error("unsupported HTTP version {0}")]
    UnsupportedVersion(String),
    #[error("malformed header line")]
    MalformedHeader,
    #[error("request head is not valid UTF-8")]
    NotUtf8,
    #[error("invalid percent-encoding in the request target")]
    InvalidPercentEncoding,
    #[error("line ending without CRLF (a bare CR or LF) in the request head")]
    BareLineEnding,
    #[error("invalid Content-Length: digits only")]
    InvalidContentLength,
    #[error("more than one Content-Length")]
    DuplicateContentLength,
    #[error("Transfer-Encoding {0:?} is not implemented: send Content-Length")]
    TransferEncodingNotImplemented(String),
    #[error("Transfer-Encoding together with Content-Length")]
    TransferEncodingWithContentLength,
    #[error("missing Host header (required on HTTP/1.1)")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("invalid Host: one host[:port], no list and no userinfo")]
    InvalidHost,
    #[error("request body of {len} bytes exceeds {max}")]
    BodyTooLarge { len: u64, max: usize },
}

impl HttpError {
    /// The status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::UnsupportedVersion(_) => 505,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::TransferEncodingNotImplemented(_) => 501,
            _ => 400,
        }
    }

    /// The machine-readable `error` field of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => {
                "request_header_fields_too_large"
            }
            HttpError::UnsupportedVersion(_) => "http_version_not_supported",
            HttpError::BodyTooLarge { .. } => "payload_too_large",
            HttpError::TransferEncodingNotImplemented(_) => "not_implemented",
            _ => "bad_request",
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    /// Query pairs in order, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names as sent; look them up with [`Request::header`].
    pub headers: Vec<(String, String)>,
    /// The body length `Content-Length` announced (0 without one).
    pub content_length: u64,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The body length announced by `Content-Length` (0 if absent),
    /// checked against `max`.
    pub fn body_length(&self, max: usize) -> Result<usize, HttpError> {
        if self.content_length > max as u64 {
            return Err(HttpError::BodyTooLarge {
                len: self.content_length,
                max,
            });
        }
        Ok(self.content_length as usize)
    }
}

/// Parses a request head from the front of `buf`.
///
/// Returns the request and the number of bytes of the head (including the
/// blank line), or `Ok(None)` if the head is not complete yet.
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Option<(Request, usize)>, HttpError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let Some(end) = find_head_end(window) else {
        if buf.len() >= limits.max_head_bytes {
            return Err(HttpError::HeadTooLarge {
                max: limits.max_head_bytes,
            });
        }
        return Ok(None);
    };
    let head = &buf[..end + 4];
    check_line_endings(&head[..end + 2])?;
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::MalformedRequestLine),
        Err(e) => return Err(syntax_error(e, head, limits)),
    }
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HttpError::MalformedRequestLine);
    };
    if !target.starts_with('/') {
        return Err(HttpError::MalformedRequestLine);
    }
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HttpError::NotUtf8)?;
        headers.push((h.name.to_string(), value.trim().to_string()));
    }
    let content_length = framing(&headers)?;
    if minor_version == 1 {
        check_host(&headers)?;
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path, false)?;
    let query = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect::<Result<_, HttpError>>()?;
    let request = Request {
        method: method.to_string(),
        path,
        query,
        minor_version,
        headers,
        content_length,
    };
    Ok(Some((request, end + 4)))
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Every CR is followed by LF and every LF follows a CR (RFC 9112 section
/// 2.2: a bare CR must be refused; this server refuses a bare LF too, so
/// that every line ends the same way for every reader of it).
fn check_line_endings(head: &[u8]) -> Result<(), HttpError> {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        let bare_cr = prev == b'\r' && b != b'\n';
        let bare_lf = b == b'\n' && prev != b'\r';
        if bare_cr || bare_lf || (b == b'\r' && i + 1 == head.len()) {
            return Err(HttpError::BareLineEnding);
        }
        prev = b;
    }
    Ok(())
}

/// The error for what `httparse` refused.
fn syntax_error(e: httparse::Error, head: &[u8], limits: &HeadLimits) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders {
            max: limits.max_headers,
        },
        httparse::Error::HeaderName | httparse::Error::HeaderValue => HttpError::MalformedHeader,
        httparse::Error::Version => {
            let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
            match std::str::from_utf8(version) {
                Ok(v) if v.starts_with("HTTP/") && line.split(|&b| b == b' ').count() == 3 => {
                    HttpError::UnsupportedVersion(v.to_string())
                }
                _ => HttpError::MalformedRequestLine,
            }
        }
        _ => HttpError::MalformedRequestLine,
    }
}

/// The body's framing: one `Content-Length` of digits, no
/// `Transfer-Encoding`. Returns the length (0 without one).
fn framing(headers: &[(String, String)]) -> Result<u64, HttpError> {
    fn named<'a>(
        headers: &'a [(String, String)],
        name: &'static str,
    ) -> impl Iterator<Item = &'a (String, String)> + 'a {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
    }
    let mut lengths = named(headers, "content-length");
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(HttpError::DuplicateContentLength);
    }
    if let Some((_, te)) = named(headers, "transfer-encoding").next() {
        return Err(if length.is_some() {
            HttpError::TransferEncodingWithContentLength
        } else {
            HttpError::TransferEncodingNotImplemented(te.clone())
        });
    }
    let Some((_, v)) = length else {
        return Ok(0);
    };
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::InvalidContentLength);
    }
    v.parse().map_err(|_| HttpError::InvalidContentLength)
}

/// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`, and
/// it names one host (and port), not a list and not a userinfo.
fn check_host(headers: &[(String, String)]) -> Result<(), HttpError> {
    let mut hosts = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"));
    let Some((_, host)) = hosts.next() else {
        return Err(HttpError::MissingHost);
    };
    if hosts.next().is_some() {
        return Err(HttpError::DuplicateHost);
    }
    if host.contains([',', '@', ' ', '\t', '/']) {
        return Err(HttpError::InvalidHost);
    }
    Ok(())
}

fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, HttpError> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or(HttpError::InvalidPercentEncoding)?;
                let hex =
                    std::str::from_utf8(hex).map_err(|_| HttpError::InvalidPercentEncoding)?;
                let v =
                    u8::from_str_radix(hex, 16).map_err(|_| HttpError::InvalidPercentEncoding)?;
                out.push(v);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::InvalidPercentEncoding)
}

/// The reason phrase of the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// An HTTP response to be written in one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into_bytes(),
            content_type: "application/json",
        }
    }

    /// The API's error shape: `{"error": code, "message": text}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, crate::json::error_object(code, message))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; the connection closes after an error, so every
    /// response says `Connection: close` unless it is a keep-alive success.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut head = String::with_capacity(128);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let _ = write!(
            head,
            "Content-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET /v1/ws/subscribe?event_types=pdfm%2Chealth&x=a+b HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";

    #[test]
    fn complete_head_parses_path_query_and_headers() {
        let (req, n) = parse_head(REQ, &HeadLimits::default()).unwrap().unwrap();
        assert_eq!(n, REQ.len());
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/v1/ws/subscribe");
        assert_eq!(req.query_param("event_types"), Some("pdfm,health"));
        assert_eq!(req.query_param("x"), Some("a b"));
        assert_eq!(req.header("UPGRADE"), Some("websocket"));
        assert_eq!(req.minor_version, 1);
    }

    #[test]
    fn incomplete_head_needs_more_at_every_cut() {
        for cut in 0..REQ.len() {
            assert_eq!(
                parse_head(&REQ[..cut], &HeadLimits::default()),
                Ok(None),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn bytes_after_the_head_are_not_consumed() {
        let mut buf = REQ.to_vec();
        buf.extend_from_slice(b"\x81\x80");
        let (_, n) = parse_head(&buf, &HeadLimits::default()).unwrap().unwrap();
        assert_eq!(n, REQ.len());
    }

    #[test]
    fn oversized_head_is_431() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            max_headers: 10,
        };
        let mut buf = b"GET / HTTP/1.1\r\nX: ".to_vec();
        buf.extend(std::iter::repeat_n(b'a', 100));
        let err = parse_head(&buf, &limits).unwrap_err();
        assert_eq!(err, HttpError::HeadTooLarge { max: 64 });
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = HeadLimits {
            max_head_bytes: 4096,
            max_headers: 2,
        };
        let buf = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(
            parse_head(buf, &limits),
            Err(HttpError::TooManyHeaders { max: 2 })
        );
    }

    #[test]
    fn malformed_heads_are_400() {
        let limits = HeadLimits::default();
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET nopath HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad name: v\r\n\r\n",
            b"GET /%zz HTTP/1.1\r\n\r\n",
            b"GET /?a=%ff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n",
        ] {
            let err = parse_head(bad, &limits).unwrap_err();
            assert_eq!(
                err.status(),
                400,
                "{:?} -> {err}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn body_length_is_bounded() {
        let parse = |h: &str| {
            parse_head(h.as_bytes(), &HeadLimits::default())
                .unwrap()
                .unwrap()
                .0
        };
        let req = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(req.body_length(10), Ok(10));
        let e = req.body_length(9).unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(parse("GET / HTTP/1.0\r\n\r\n").body_length(0), Ok(0));
    }

    /// Each framing rule of RFC 9112/9110 a server must enforce, with the
    /// status it earns.
    #[test]
    fn framing_and_host_rules_refuse_what_a_server_must_not_accept() {
        let cases: [(&str, HttpError); 16] = [
            (
                "Host: h\r\nContent-Length: 5\r\nContent-Length: 5",
                HttpError::DuplicateContentLength,
            ),
            (
                "Host: h\r\nContent-Length: 5\r\nContent-Length: 6",
                HttpError::DuplicateContentLength,
            ),
            (
                "Host: h\r\nContent-Length: +5",
                HttpError::InvalidContentLength,
            ),
            (
                "Host: h\r\nContent-Length: -1",
                HttpError::InvalidContentLength,
            ),
            (
                "Host: h\r\nContent-Length: 5, 5",
                HttpError::InvalidContentLength,
            ),
            (
                "Host: h\r\nContent-Length: 0x10",
                HttpError::InvalidContentLength,
            ),
            (
                "Host: h\r\nContent-Length: 99999999999999999999",
                HttpError::InvalidContentLength,
            ),
            (
                "Host: h\r\nTransfer-Encoding: chunked",
                HttpError::TransferEncodingNotImplemented("chunked".into()),
            ),
            (
                "Host: h\r\nTransfer-Encoding: gzip, chunked",
                HttpError::TransferEncodingNotImplemented("gzip, chunked".into()),
            ),
            (
                "Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
                HttpError::TransferEncodingWithContentLength,
            ),
            ("X: y", HttpError::MissingHost),
            ("Host: a\r\nHost: b", HttpError::DuplicateHost),
            ("Host: a, b", HttpError::InvalidHost),
            ("Host: user@h", HttpError::InvalidHost),
            ("Host: h\r\nX: a\x00b", HttpError::MalformedHeader),
            ("Host: h\r\nX: a\rb", HttpError::BareLineEnding),
        ];
        for (headers, want) in cases {
            let head = format!("POST /v1/events HTTP/1.1\r\n{headers}\r\n\r\n");
            let got = parse_head(head.as_bytes(), &HeadLimits::default());
            assert_eq!(got, Err(want.clone()), "{headers:?}");
            let status = want.status();
            assert!(status == 400 || status == 501, "{headers:?}: {status}");
        }
        let bare_lf = b"GET / HTTP/1.1\nHost: h\r\n\r\n";
        assert_eq!(
            parse_head(bare_lf, &HeadLimits::default()),
            Err(HttpError::BareLineEnding)
        );
        assert_eq!(
            HttpError::TransferEncodingNotImplemented("chunked".into()).status(),
            501
        );
        let ok = parse_head(
            b"GET / HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 007\r\n\r\n",
            &HeadLimits::default(),
        );
        assert_eq!(ok.unwrap().unwrap().0.content_length, 7);
        let http10 = parse_head(b"GET / HTTP/1.0\r\n\r\n", &HeadLimits::default());
        assert!(http10.unwrap().is_some(), "HTTP/1.0 needs no Host");
    }

    #[test]
    fn http_2_request_line_is_505() {
        let err = parse_head(b"GET / HTTP/2.0\r\n\r\n", &HeadLimits::default()).unwrap_err();
        assert_eq!(err.status(), 505);
    }

    #[test]
    fn error_response_is_json_with_content_length() {
        let bytes = Response::error(400, "bad_request", "say \"hi\"\n").to_bytes(false);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body, r#"{"error":"bad_request","message":"say \"hi\"\n"}"#);
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
