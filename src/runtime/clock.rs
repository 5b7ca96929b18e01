//! The process-wide millisecond clock that connection timers read.
//!
//! Runtime layer, a leaf beside [`super::sys`]: the protocol crate keeps
//! time as 32-bit millisecond [`Stamp`]s and reads no clock; this is the
//! clock those stamps come from (milliseconds since the first call). A
//! connection's own age, which can be long, is kept in seconds.

use std::sync::OnceLock;
use std::time::Instant;

pub(super) use crate::proto::time::{age_ms, Stamp};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the clock started (the first call).
pub(super) fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Now, as a [`Stamp`].
pub(super) fn stamp() -> Stamp {
    now_ms() as Stamp
}

/// Seconds since the clock started.
pub(super) fn now_s() -> u32 {
    (now_ms() / 1000) as u32
}
