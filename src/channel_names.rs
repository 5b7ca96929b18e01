//! The rules a channel name follows, and the names that are built in.
//!
//! Both the config (which refuses a bad `hub.channels` at load, naming the
//! key) and the hub (which builds its channel table from the same list)
//! need these rules; they live here, in a leaf below both, so that the
//! config imports nothing of the hub and the rule is written once.
//!
//! Layer: below the runtime, beside [`crate::config`]: imports nothing.

/// At most this many channels, built-in ones included (one mask word).
pub const MAX_CHANNELS: usize = 64;

/// The built-in channels, in id order (this order is also the order in
/// which subscription lists are reported, `global` last). The hub's
/// channel ids are positions in this list.
pub const BUILTIN: [&str; 6] = [
    "global",
    "pdfm",
    "health",
    "orchestrator",
    "system",
    "container",
];

/// Why a list of custom channel names was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    #[error("channel name {0:?} must be 1-64 characters of a-z, 0-9, '_' or '-'")]
    Syntax(String),
    #[error("channel {0:?} is declared twice or is built in")]
    Duplicate(String),
    #[error("at most {max} custom channels")]
    TooMany { max: usize },
}

/// Whether `name` is 1-64 characters of `a-z`, `0-9`, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks custom channel names: each valid, none twice or built in, and
/// not too many.
pub fn check(custom: &[String]) -> Result<(), ChannelNameError> {
    for (i, name) in custom.iter().enumerate() {
        if !valid_name(name) {
            return Err(ChannelNameError::Syntax(name.clone()));
        }
        if BUILTIN.contains(&name.as_str()) || custom[..i].contains(name) {
            return Err(ChannelNameError::Duplicate(name.clone()));
        }
    }
    if BUILTIN.len() + custom.len() > MAX_CHANNELS {
        return Err(ChannelNameError::TooMany {
            max: MAX_CHANNELS - BUILTIN.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_has_its_message() {
        let e = |names: &[&str]| {
            check(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(&["Bad Name"]),
            "channel name \"Bad Name\" must be 1-64 characters of a-z, 0-9, '_' or '-'"
        );
        assert_eq!(
            e(&["a", "a"]),
            "channel \"a\" is declared twice or is built in"
        );
        assert_eq!(
            e(&["pdfm"]),
            "channel \"pdfm\" is declared twice or is built in"
        );
        let many: Vec<String> = (0..59).map(|i| format!("c{i}")).collect();
        assert_eq!(
            check(&many).unwrap_err().to_string(),
            "at most 58 custom channels"
        );
        assert!(check(&many[..58]).is_ok());
    }
}
