//! JSON text for the few places that write it by hand: string literals and
//! the `{"error": code, "message": text}` object every refusal carries.
//!
//! Protocol crate, a leaf: it imports nothing. It lives here, beside the HTTP writer, so
//! that a refused handshake (answered by this crate) and the application's
//! own errors (HTTP and in-band) share one escaping rule and one error
//! shape.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"error":code,"message":message}`.
pub fn error_object(code: &str, message: &str) -> String {
    let mut body = String::with_capacity(32 + code.len() + message.len());
    body.push_str("{\"error\":");
    push_string(&mut body, code);
    body.push_str(",\"message\":");
    push_string(&mut body, message);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_quotes_and_backslashes_are_escaped() {
        let mut s = String::new();
        push_string(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
    }

    #[test]
    fn error_object_has_code_then_message() {
        assert_eq!(
            error_object("bad", "say \"hi\""),
            r#"{"error":"bad","message":"say \"hi\""}"#
        );
    }
}
