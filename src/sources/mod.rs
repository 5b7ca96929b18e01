//! Event sources that run beside the cores, each on its own thread,
//! feeding the hub's one publish service ([`crate::hub::publish`]) as the
//! publishing endpoints do.
//!
//! Layer: beside the API, over the hub; imports nothing of the API and
//! names no async runtime (a source runs on a plain thread).
//!
//! - [`docker_engine`]: follows a Docker Engine's `/events` stream.

pub mod docker_engine;
