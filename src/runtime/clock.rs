//! A process-wide millisecond clock for connection timers.
//!
//! Connection timestamps are `u64` milliseconds since the first call, not
//! `Instant`s: half the size, trivially comparable, and plenty precise for
//! timeouts measured in seconds.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the clock started (the first call).
pub fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}
