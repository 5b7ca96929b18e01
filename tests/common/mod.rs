//! Test harness shared by the integration tests: the real `eventhub` binary
//! as a child process, and a raw-socket WebSocket client that can send bytes
//! no well-behaved client library would.
//!
//! Every wait is bounded by a generous timeout ([`TIMEOUT`]); nothing here
//! depends on how fast the machine is beyond that.
//!
//! - [`server`]: the server process (start, stop, config).
//! - [`http`]: plain HTTP requests and what is read from the answers.
//! - [`raw_client`]: the raw-socket client.
//! - [`ws`]: the `tungstenite` client helpers.
//! - [`api`]: the principals, config and requests the hub API tests
//!   (`tests/api_*.rs`) share; used as `common::api::...`.
//! - [`tls`]: a test PKI and a rustls client for https and wss; used as
//!   `common::tls::...`.
//! - [`nats`]: a real nats-server with JetStream for the cluster tests;
//!   used as `common::nats::...`.
//!
//! Everything but `api`, `tls` and `nats` is re-exported here, so tests use it as `common::...`.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub mod api;
mod http;
pub mod nats;
mod raw_client;
mod server;
pub mod tls;
mod ws;

pub use http::*;
pub use raw_client::*;
pub use server::*;
pub use ws::*;

/// The bound on every wait: server start, reads, process exit.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A well-formed `Sec-WebSocket-Key` (the RFC 6455 sample).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that goes with [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// `127.0.0.last`, a source address of its own for `SO_REUSEPORT` hashing
/// and per-IP rules.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}
