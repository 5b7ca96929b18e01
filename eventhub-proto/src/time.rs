//! Time as the protocol sees it: milliseconds on the caller's clock.
//!
//! Protocol crate, a leaf. The protocol crate reads no clock; every call that needs the time is
//! given it as a [`Stamp`], milliseconds truncated to 32 bits (a quarter of
//! an `Instant`, and a server keeps one per idle connection). Ages and
//! deadlines use wrapping arithmetic: exact for spans below 24 days, far
//! above the timeouts compared with them.

/// Milliseconds on the caller's clock, truncated to 32 bits.
pub type Stamp = u32;

/// Milliseconds from `then` to `now`.
pub fn age_ms(now: Stamp, then: Stamp) -> u64 {
    u64::from(now.wrapping_sub(then))
}

/// Whether `deadline` is at or before `now`.
pub fn reached(now: Stamp, deadline: Stamp) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_deadlines_across_the_32_bit_wrap_are_exact() {
        assert_eq!(age_ms(5, u32::MAX - 4), 10);
        assert_eq!(age_ms(1_000, 400), 600);
        assert!(reached(5, u32::MAX - 4));
        assert!(reached(7, 7));
        assert!(!reached(u32::MAX - 4, 5));
    }
}
