//! Events as the stream holds them: one message per event on the subject
//! `<prefix>.<channel>`, its payload the envelope without `seq` (made
//! once, by the node that took the event), its `Nats-Msg-Id` the event id.
//!
//! Each node turns a message back into the frames its cores share by
//! appending the stream's sequence number to the payload
//! ([`crate::hub::event::Prepared::from_record`]); nothing is serialized
//! again, and a container event's Docker frame is made from its body.
//!
//! Layer: cluster. Imports the hub's event frames and channels.

use crate::hub::event::{EventFrame, Prepared};
use crate::hub::Shared;

/// The subject of channel `name`.
pub fn subject(prefix: &str, name: &str) -> String {
    format!("{prefix}.{name}")
}

/// The frames of the message on `subject` with `payload`, numbered `seq`;
/// or why it is not an event this hub can deliver.
pub fn frame(
    shared: &Shared,
    prefix: &str,
    subject: &str,
    payload: &[u8],
    seq: u64,
) -> Result<EventFrame, String> {
    let name = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| format!("subject {subject:?} is not under {prefix:?}"))?;
    let channel = shared.channels.id(name).map_err(|e| e.to_string())?;
    let prepared =
        Prepared::from_record(channel, name, payload).map_err(|e| format!("{subject}: {e}"))?;
    Ok(prepared.finish(seq))
}
