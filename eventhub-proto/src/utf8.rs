//! Incremental UTF-8 validation for text messages.
//!
//! A text message may be split over frames, and a frame over reads, at any
//! byte, including inside a code point. RFC 6455 section 8.1 asks the
//! endpoint to fail the connection as soon as the bytes it has seen cannot be
//! the start of valid UTF-8, so validation keeps state between pieces: the
//! number of continuation bytes still owed and the range the next one must
//! fall in (RFC 3629's table, which rules out overlongs, surrogates and code
//! points above U+10FFFF). Whole runs are checked with the standard library's
//! validator; only the bytes around a split code point go through the byte
//! state machine.
//!
//! Protocol crate, a leaf.

/// Validation state carried between pieces of one text message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Utf8Validator {
    /// Continuation bytes still owed by the current code point.
    need: u8,
    /// Inclusive range the next continuation byte must fall in.
    lo: u8,
    hi: u8,
}

/// The bytes seen so far can never be valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            need: 0,
            lo: 0x80,
            hi: 0xbf,
        }
    }

    /// Feeds the next piece of the message.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        // Finish a code point left open by the previous piece.
        while self.need > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return Ok(());
            };
            self.step(b)?;
            bytes = rest;
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // An incomplete code point at the end: carry its state over.
                for &b in &bytes[e.valid_up_to()..] {
                    self.step(b)?;
                }
                Ok(())
            }
        }
    }

    /// True when the message may end here (no code point left open).
    pub fn is_complete(&self) -> bool {
        self.need == 0
    }

    fn step(&mut self, b: u8) -> Result<(), InvalidUtf8> {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return Err(InvalidUtf8);
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xbf;
            return Ok(());
        }
        let (need, lo, hi) = match b {
            0x00..=0x7f => (0, 0x80, 0xbf),
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            _ => return Err(InvalidUtf8),
        };
        self.need = need;
        self.lo = lo;
        self.hi = hi;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> bool {
        let mut v = Utf8Validator::new();
        v.feed(bytes).is_ok() && v.is_complete()
    }

    fn bytewise(bytes: &[u8]) -> bool {
        let mut v = Utf8Validator::new();
        bytes
            .iter()
            .all(|b| v.feed(std::slice::from_ref(b)).is_ok())
            && v.is_complete()
    }

    #[test]
    fn accepts_what_std_accepts_whole_and_byte_by_byte() {
        let samples: &[&[u8]] = &[
            b"",
            b"hello",
            "κόσμε".as_bytes(),
            "\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}".as_bytes(),
            "\u{d7ff}\u{e000}".as_bytes(),
        ];
        for s in samples {
            assert!(std::str::from_utf8(s).is_ok());
            assert!(whole(s), "{s:?}");
            assert!(bytewise(s), "{s:?}");
        }
    }

    #[test]
    fn rejects_overlongs_surrogates_and_out_of_range() {
        let bad: &[&[u8]] = &[
            &[0xc0, 0xaf],
            &[0xe0, 0x80, 0xaf],
            &[0xed, 0xa0, 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xf5],
            &[0xff],
            &[0x80],
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
        ];
        for s in bad {
            assert!(!whole(s), "{s:?}");
            assert!(!bytewise(s), "{s:?}");
        }
    }

    #[test]
    fn truncated_code_point_is_incomplete_not_invalid() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xf0, 0x9f]).is_ok());
        assert!(!v.is_complete());
        assert!(v.feed(&[0x98, 0x80]).is_ok());
        assert!(v.is_complete());
    }

    #[test]
    fn invalid_byte_is_reported_before_the_message_ends() {
        let mut v = Utf8Validator::new();
        assert!(v.feed("ok so far".as_bytes()).is_ok());
        assert_eq!(v.feed(&[0xce, 0xba, 0xf4, 0x90]), Err(InvalidUtf8));
    }
}
