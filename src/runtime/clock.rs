//! A process-wide millisecond clock for connection timers.
//!
//! Connection timestamps are milliseconds since the first call, not
//! `Instant`s, and truncated to 32 bits ([`Stamp`]): a quarter of the size
//! (every idle connection keeps three), and plenty precise for timeouts
//! measured in seconds. Ages are taken with wrapping subtraction, exact
//! below 49 days, far above the timeouts they are compared with; a
//! connection's own age, which can be long, is kept in seconds.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the clock started (the first call).
pub fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Milliseconds on this clock, truncated to 32 bits.
pub type Stamp = u32;

/// Now, as a [`Stamp`].
pub fn stamp() -> Stamp {
    now_ms() as Stamp
}

/// Milliseconds from `then` to `now` (both stamps).
pub fn age_ms(now: Stamp, then: Stamp) -> u64 {
    u64::from(now.wrapping_sub(then))
}

/// Seconds since the clock started.
pub fn now_s() -> u32 {
    (now_ms() / 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_across_the_32_bit_wrap_are_exact() {
        assert_eq!(age_ms(5, u32::MAX - 4), 10);
        assert_eq!(age_ms(1_000, 400), 600);
    }
}
