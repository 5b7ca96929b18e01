//! Negotiating permessage-deflate (RFC 7692 sections 5 and 7.1) on the
//! server side.
//!
//! A client lists its offers in `Sec-WebSocket-Extensions` (RFC 6455
//! section 9.1: a comma-separated list of extensions, each with
//! `;`-separated parameters whose values are tokens or quoted strings).
//! The server takes the first permessage-deflate offer it can accept and
//! answers it; extensions it does not know are ignored. As section 7 says,
//! an offer is declined (not the handshake failed) when it has a parameter
//! not defined for an offer, a parameter with an invalid value, or the same
//! parameter twice.
//!
//! What this server accepts and answers: always `server_no_context_takeover`
//! and `client_no_context_takeover` (a server may add both unrequested,
//! sections 7.1.1.1 and 7.1.1.2), so that every message is compressed and
//! inflated on its own: one compressed frame can go to every subscriber, and
//! one inflater per core serves every connection. A `server_max_window_bits`
//! in the offer is echoed with the same value ([`Agreement::server_window`]
//! tells the compressing side which window it must stay within). A
//! `client_max_window_bits` is accepted and not answered: the server
//! inflates with the largest window, which reads what any smaller one
//! wrote.
//!
//! Protocol crate, a leaf.

/// The extension's name.
pub const NAME: &str = "permessage-deflate";

/// The largest LZ77 window (bits) RFC 7692 allows, and the default.
pub const MAX_WINDOW_BITS: u8 = 15;

/// What was agreed for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The window (bits, 8 to 15) the server's compressed messages must
    /// stay within: 15 unless the client asked for less.
    pub server_window: u8,
}

impl Agreement {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub fn response(&self) -> String {
        let mut s = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
        if self.server_window < MAX_WINDOW_BITS {
            s.push_str(&format!("; server_max_window_bits={}", self.server_window));
        }
        s
    }
}

/// Why one offer was declined (the next offer, if any, is looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Declined {
    #[error("parameter {0:?} is not defined for a permessage-deflate offer")]
    UnknownParameter(String),
    #[error("parameter {name:?} has an invalid value {value:?}")]
    InvalidValue { name: String, value: String },
    #[error("parameter {0:?} appears twice")]
    Repeated(String),
    #[error("the offer is not well-formed: {0}")]
    Malformed(&'static str),
}

/// The outcome of negotiating over every `Sec-WebSocket-Extensions` value
/// of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiation {
    /// The offer accepted, if any.
    pub agreed: Option<Agreement>,
    /// The permessage-deflate offers declined before it (or all of them),
    /// with why, for the log.
    pub declined: Vec<Declined>,
}

/// Negotiates over the values of every `Sec-WebSocket-Extensions` header
/// of the request, in order.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Negotiation {
    let mut declined = Vec::new();
    for value in values {
        let extensions = match split_outside_quotes(value, ',') {
            Ok(list) => list,
            Err(why) => {
                declined.push(Declined::Malformed(why));
                continue;
            }
        };
        for extension in extensions {
            let extension = extension.trim();
            if extension.is_empty() {
                continue;
            }
            match accept(extension) {
                None => {}
                Some(Ok(agreed)) => {
                    return Negotiation {
                        agreed: Some(agreed),
                        declined,
                    }
                }
                Some(Err(why)) => declined.push(why),
            }
        }
    }
    Negotiation {
        agreed: None,
        declined,
    }
}

/// One extension of the list: `None` if it is not permessage-deflate, else
/// the agreement or why it was declined.
fn accept(extension: &str) -> Option<Result<Agreement, Declined>> {
    let parts = match split_outside_quotes(extension, ';') {
        Ok(p) => p,
        Err(why) => {
            let named = extension
                .split(';')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(NAME));
            return named.then_some(Err(Declined::Malformed(why)));
        }
    };
    let mut parts = parts.into_iter();
    let name = parts.next().unwrap_or_default().trim();
    if !name.eq_ignore_ascii_case(NAME) {
        return None;
    }
    Some(parameters(parts))
}

/// Checks an offer's parameters.
fn parameters<'a>(params: impl Iterator<Item = &'a str>) -> Result<Agreement, Declined> {
    let mut seen: Vec<String> = Vec::new();
    let mut server_window = MAX_WINDOW_BITS;
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (param.trim(), None),
        };
        if !is_token(name) {
            return Err(Declined::Malformed("a parameter name is not a token"));
        }
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return Err(Declined::Repeated(name));
        }
        let invalid = |value: &str| Declined::InvalidValue {
            name: name.clone(),
            value: value.to_string(),
        };
        match (name.as_str(), value.as_deref()) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_no_context_takeover" | "client_no_context_takeover", Some(v)) => {
                return Err(invalid(v))
            }
            ("server_max_window_bits", Some(v)) => {
                server_window = window_bits(v).ok_or_else(|| invalid(v))?
            }
            ("server_max_window_bits", None) => return Err(invalid("")),
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(v)) => {
                window_bits(v).ok_or_else(|| invalid(v))?;
            }
            _ => return Err(Declined::UnknownParameter(name)),
        }
        seen.push(name);
    }
    Ok(Agreement { server_window })
}

/// A window size value: a decimal integer from 8 to 15 with no leading
/// zero (RFC 7692 sections 7.1.2.1 and 7.1.2.2).
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// A parameter value: a token, or a quoted string (RFC 7230 section 3.2.6)
/// unescaped, which must then be a token too (RFC 6455 section 9.1).
fn unquote(v: &str) -> Result<String, Declined> {
    let out = match v.strip_prefix('"') {
        None => v.to_string(),
        Some(rest) => {
            let inner = rest
                .strip_suffix('"')
                .ok_or(Declined::Malformed("an unterminated quoted string"))?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(
                        chars
                            .next()
                            .ok_or(Declined::Malformed("a quoted string ends in a backslash"))?,
                    ),
                    '"' => return Err(Declined::Malformed("a quote inside a quoted string")),
                    c => out.push(c),
                }
            }
            out
        }
    };
    if !is_token(&out) {
        return Err(Declined::Malformed("a parameter value is not a token"));
    }
    Ok(out)
}

/// An RFC 7230 token: one or more tchars.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits `s` at `sep` outside quoted strings.
fn split_outside_quotes(s: &str, sep: char) -> Result<Vec<&str>, &'static str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("an unterminated quoted string");
    }
    out.push(&s[start..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(values: &[&str]) -> Option<Agreement> {
        negotiate(values.iter().copied()).agreed
    }

    #[test]
    fn a_plain_offer_is_answered_with_no_context_takeover_both_ways() {
        let a = agreed(&["permessage-deflate"]).unwrap();
        assert_eq!(a.server_window, 15);
        assert_eq!(
            a.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        // What browsers, Python websockets and Node ws send.
        let a = agreed(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(a.server_window, 15);
    }

    #[test]
    fn a_server_window_asked_for_is_echoed_and_kept_to() {
        let a = agreed(&["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(a.server_window, 10);
        assert!(a.response().ends_with("; server_max_window_bits=10"));
        let a = agreed(&["permessage-deflate; server_max_window_bits=\"8\""]).unwrap();
        assert_eq!(a.server_window, 8);
    }

    #[test]
    fn malformed_unknown_and_repeated_parameters_decline_the_offer() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "permessage-deflate; server_max_window_bits=\"1",
        ] {
            let n = negotiate([bad]);
            assert_eq!(n.agreed, None, "{bad}");
            assert_eq!(n.declined.len(), 1, "{bad}: {:?}", n.declined);
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins_and_other_extensions_are_ignored() {
        let n = negotiate([
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=99",
            "permessage-deflate; server_max_window_bits=12, permessage-deflate",
        ]);
        assert_eq!(n.agreed, Some(Agreement { server_window: 12 }));
        assert_eq!(n.declined.len(), 1);
        assert_eq!(agreed(&["foo; bar=\"a,b\"", "bar"]), None);
        assert_eq!(
            agreed(&["foo; bar=\"a,b\", PerMessage-Deflate"]),
            Some(Agreement { server_window: 15 })
        );
    }
}
