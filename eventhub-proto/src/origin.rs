//! The `Origin` header (RFC 6454) and the check RFC 6455 section 10.2
//! asks of a server whose WebSockets a browser may open.
//!
//! A browser sends the origin of the page that opens a WebSocket (and of
//! the page that makes a cross-site `fetch`), and a page cannot forge it.
//! A server that accepts any origin lets another site's page open a socket
//! with whatever credentials that page got hold of. Clients that are not
//! browsers send no `Origin` (wscat, k6, the hub's own CLI) and are not
//! concerned.
//!
//! An origin is `scheme://host[:port]`, compared as RFC 6454 section 6.1
//! serializes it: scheme and host lower-case, the scheme's default port
//! left out. `null` (opaque origins: `data:` and sandboxed pages, files) is
//! never anybody's own and matches no listed origin.

use std::fmt;

/// A serialized origin, normalized for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    /// `host[:port]`, lower-case, the scheme's default port left out.
    authority: String,
}

/// Why a configured origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("{0:?}: expected scheme://host[:port], e.g. https://dash.example.com")]
    Shape(String),
    #[error("{0:?}: the scheme must be http or https")]
    Scheme(String),
    #[error("{0:?}: an origin has no path, query or user")]
    Extra(String),
}

impl Origin {
    /// Parses an `Origin` header's value or a configured origin.
    pub fn parse(value: &str) -> Result<Origin, OriginError> {
        let value = value.trim();
        let (scheme, rest) = value
            .split_once("://")
            .ok_or_else(|| OriginError::Shape(value.to_string()))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => ":80",
            "https" => ":443",
            _ => return Err(OriginError::Scheme(value.to_string())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(OriginError::Shape(value.to_string()));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(OriginError::Extra(value.to_string()));
        }
        Ok(Origin {
            scheme,
            authority: authority(rest, default_port),
        })
    }

    /// Whether this origin is the one a request to `host` (its `Host`
    /// header) comes from when the page was served by that same server:
    /// same host and port, whatever the scheme (a proxy in front may
    /// speak https to the browser and http to the hub).
    pub fn is_host(&self, host: &str) -> bool {
        let default_port = if self.scheme == "https" {
            ":443"
        } else {
            ":80"
        };
        self.authority == authority(host.trim(), default_port)
    }
}

/// `host[:port]` lower-case, without `default_port`.
fn authority(host: &str, default_port: &str) -> String {
    let lower = host.to_ascii_lowercase();
    match lower.strip_suffix(default_port) {
        Some(bare) if !bare.is_empty() && !bare.ends_with(':') => bare.to_string(),
        _ => lower,
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_as_rfc_6454_serializes_them() {
        let a = Origin::parse("HTTPS://Dash.Example.com:443").unwrap();
        let b = Origin::parse("https://dash.example.com/").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "https://dash.example.com");
        assert_ne!(a, Origin::parse("http://dash.example.com").unwrap());
        assert_ne!(a, Origin::parse("https://dash.example.com:8443").unwrap());
    }

    #[test]
    fn an_origin_is_its_own_host_with_or_without_the_default_port() {
        let o = Origin::parse("http://127.0.0.1:8080").unwrap();
        assert!(o.is_host("127.0.0.1:8080"));
        assert!(!o.is_host("127.0.0.1:8081"));
        assert!(!o.is_host("localhost:8080"));
        let o = Origin::parse("http://localhost").unwrap();
        assert!(o.is_host("LOCALHOST:80"));
        assert!(o.is_host("localhost"));
        let o = Origin::parse("http://[::1]:8080").unwrap();
        assert!(o.is_host("[::1]:8080"));
    }

    #[test]
    fn null_and_malformed_origins_are_refused() {
        assert!(matches!(Origin::parse("null"), Err(OriginError::Shape(_))));
        assert!(matches!(
            Origin::parse("ftp://x"),
            Err(OriginError::Scheme(_))
        ));
        assert!(matches!(
            Origin::parse("https://x/path"),
            Err(OriginError::Extra(_))
        ));
        assert!(matches!(
            Origin::parse("https://u@x"),
            Err(OriginError::Extra(_))
        ));
        assert!(matches!(
            Origin::parse("https://"),
            Err(OriginError::Shape(_))
        ));
    }
}
