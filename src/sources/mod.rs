//! Event sources that run beside the cores, each on its own thread,
//! feeding the same ingest path (`Prepared` events into the sequencer) as
//! the publishing endpoints.
//!
//! - [`docker_engine`]: follows a Docker Engine's `/events` stream.

pub mod docker_engine;
