//! Docker-style container events: the `container` channel as Docker's own
//! events API shows it at `/events/ws`.
//!
//! - [`event`]: the event model in Docker's JSON shape, and the keys the
//!   filters match it on;
//! - [`filter`]: Docker's `filters` parameter, parsed and evaluated;
//! - [`index`]: every `/events/ws` subscriber of one core, by filter, as
//!   bit rows.
//!
//! Layer: hub. These files import one another (`index` and `filter` read
//! `event`), the hub's [`bitrow`](super::bitrow) and the protocol crate's
//! JSON escaping; nothing of the cores, the API or the runtime.

pub mod event;
pub mod filter;
pub mod index;

pub use event::{untagged, Action, ContainerEvent, ContainerEventError, DockerKeys};
pub use filter::{DockerFilter, FilterError};
pub use index::FilterIndex;
