//! eventhub: a real-time WebSocket event hub.
//!
//! # Layers
//!
//! Each layer imports only the layers before it in this list, and no two
//! files import each other in a loop (`../shared/tools/rs-import-loops.py`
//! checks it):
//!
//! 1. [`proto`] (the `eventhub-proto` crate): RFC 6455 and HTTP/1.1,
//!    sans-IO: request heads, the upgrade handshake, the PROXY protocol
//!    header and `X-Forwarded-For` (who the client is behind a trusted
//!    proxy; which peers are trusted is the runtime's policy), frames, masking,
//!    UTF-8, close codes, and the connection [`proto::Session`] (the
//!    closing handshake, ping/pong, deadlines; time passed in). Its
//!    `Cargo.toml` names no runtime; fuzzed in `fuzz/`, benchmarked in
//!    `benches/`.
//! 2. [`config`] and [`channel_names`]: the TOML config with its embedded
//!    default, and the rules of channel names; leaves the layers above
//!    share. [`tls`]: the certificate side of wss (loading and checking
//!    the files, the reloadable served pair, the development CA), over
//!    the config.
//! 3. [`runtime`]: the shell, the only place that knows the async runtime
//!    underneath: one pinned thread per core, `SO_REUSEPORT` listeners, one
//!    reactor per core driving each connection's session, the janitor,
//!    graceful shutdown, every raw syscall.
//! 4. [`hub`]: channels, events serialized once, the publish service,
//!    sequencing and replay, the cores' mailbox, the per-core bitmask
//!    indexes and fan-out, Docker's event model and filters, auth, per-IP
//!    rules.
//! 5. [`api`]: the routes and JSON shapes of the public API, over the hub;
//!    [`sources`]: producers beside the cores (the Docker Engine source);
//!    [`cluster`]: NATS JetStream as the event log of several hubs, on a
//!    thread of its own, behind the hub's [`hub::log`] seam;
//!    [`echo`]: the echo application, the conformance target.
//! 6. [`cli`] and `main.rs`: the command line.
//!
//! # The hot path, in order
//!
//! From `POST /v1/events` to `sendmsg`, an event passes through six files:
//!
//! 1. `api/publish.rs`: the route authenticates and hands the body to
//! 2. `hub/publish.rs`: validation ([`hub::ingest`]), the principal's
//!    rights, and each event's one frame ([`hub::event::Prepared`]), built
//!    outside any lock;
//! 3. `hub/sequencer.rs`: the `seq` under a short lock, the replay ring,
//!    and batches of up to 64 events handed to every core's channel
//!    ([`hub::mailbox`]); in a cluster, the stream numbers the events
//!    instead and the node's consumer hands them to the sequencer
//!    ([`cluster`]);
//! 4. `hub/core.rs`: on each core, the event's channel row of the
//!    subscriber index; each match's connection queues the shared frame
//!    ([`runtime::Conn::send_tagged`], which puts it on the core's ready
//!    list);
//! 5. `runtime/ws.rs`: the core's reactor steps each ready connection and
//!    flushes its queue;
//! 6. `runtime/outbox.rs`: one `sendmsg` over every queued frame (the
//!    syscall itself is in `runtime/sys.rs`).

pub mod api;
pub mod channel_names;
pub mod civil;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod echo;
pub mod hub;
pub mod runtime;
pub mod sources;
pub mod tls;

/// The protocol layer, a crate of its own (`eventhub-proto`).
pub use eventhub_proto as proto;
