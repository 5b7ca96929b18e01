//! eventhub: a real-time WebSocket event hub.
//!
//! # Layout
//!
//! The crate is layered; inner layers know nothing of outer ones.
//!
//! - [`proto`]: RFC 6455 and HTTP/1.1, sans-IO: request heads, the upgrade
//!   handshake, frames, masking, UTF-8, close codes. Pure functions over
//!   bytes; fuzzed in `fuzz/`, benchmarked in `benches/`.
//! - [`runtime`]: the shell, the only place that knows the async runtime
//!   underneath (nothing else names it): one pinned
//!   thread per core, `SO_REUSEPORT` listeners, connection event loops,
//!   timers, graceful shutdown.
//! - [`hub`]: the hub core: channels, events serialized once, sequencing
//!   and replay, the per-core bitmask index and fan-out, auth, per-IP rules.
//! - [`api`]: the routes and JSON shapes of the public API, over the hub.
//! - [`sources`]: producers beside the cores (the Docker Engine source).
//! - [`echo`]: the echo application, the conformance target.
//! - [`config`], [`cli`]: the TOML config with its embedded default, and
//!   the command line over it; [`channel_names`]: the rules of channel
//!   names, a leaf the config and the hub share.

pub mod api;
pub mod channel_names;
pub mod cli;
pub mod config;
pub mod echo;
pub mod hub;
pub mod runtime;

/// The protocol layer, a crate of its own (`eventhub-proto`).
pub use eventhub_proto as proto;
pub mod sources;
