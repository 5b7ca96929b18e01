//! `GET /ui`: the web view, one page embedded in the binary.
//!
//! The page (`ui/index.html`, `ui/app.js`, `ui/app.css`) is compiled in,
//! so a hub serves it with nothing to install and nothing fetched from
//! elsewhere. It is served with a Content-Security-Policy that allows only
//! this hub's own scripts, styles and sockets (no inline script, no eval,
//! no other site), and may not be framed (clickjacking): a page that holds
//! a token in memory must not run anybody else's code.
//!
//! Layer: API. Imports the protocol crate's response only.

use crate::proto::http::Response;

/// What the page may load and where it may connect: its own origin only.
/// `connect-src 'self'` covers `ws:`/`wss:` to the same host (CSP level 3).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's files: path, content type, body.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "/ui",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "/ui/app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "/ui/app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
];

/// Whether `path` is one of the page's.
pub fn is_asset(path: &str) -> bool {
    path == "/ui/" || ASSETS.iter().any(|(p, _, _)| *p == path)
}

/// The file at `path` with the page's security headers (`/ui/` redirects
/// to `/ui`, where the page's relative links resolve).
pub fn asset(path: &str) -> Option<Response> {
    if path == "/ui/" {
        return Some(redirect_to_ui());
    }
    let (_, content_type, body) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
    let mut resp = Response::json(200, (*body).to_string());
    resp.content_type = content_type;
    Some(
        resp.with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            .with_header("X-Frame-Options", "DENY")
            .with_header("X-Content-Type-Options", "nosniff")
            .with_header("Referrer-Policy", "no-referrer")
            .with_header("Cache-Control", "no-store"),
    )
}

/// `302` to the page (what `GET /` answers while it is enabled).
pub fn redirect_to_ui() -> Response {
    Response::json(302, r#"{"location":"/ui"}"#.to_string()).with_header("Location", "/ui")
}
