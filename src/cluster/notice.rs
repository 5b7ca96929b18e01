//! What the cores are told about the event log: that it went away or came
//! back (every hub subscriber gets a `system` message, and stays), and
//! that it was made anew (every subscriber is closed with 1012, naming the
//! new epoch, so that it resumes with an explicit gap).
//!
//! Layer: cluster. Imports the hub's cores (through the mailbox), its
//! reply builder and the protocol crate's close codes.

use crate::hub::event::reply;
use crate::hub::Shared;
use crate::proto::CloseCode;

/// Tells every hub subscriber that the log is unreachable (`false`) or
/// back (`true`).
pub fn reachable(shared: &Shared, up: bool) {
    let frame = if up {
        reply(
            "system",
            "event log reachable again: publishing resumed, delivery goes on in order",
            r#""body":{"event_log":"reachable"}"#,
        )
    } else {
        reply(
            "system",
            "event log unreachable: publishing is paused; nothing acknowledged is lost and delivery resumes in order when it is back",
            r#""body":{"event_log":"unreachable"}"#,
        )
    };
    for core in 0..shared.mailbox.cores() {
        let frame = frame.clone();
        shared
            .mailbox
            .send_command(core, Box::new(move |hc| hc.notify_subscribers(&frame)));
    }
}

/// Closes every subscriber (1012): the log's seqs started again under
/// `epoch`.
pub fn new_epoch(shared: &Shared, epoch: &str) {
    let reason = format!("event log restarted: new epoch {epoch}; reconnect with since and epoch");
    for core in 0..shared.mailbox.cores() {
        let reason = reason.clone();
        shared.mailbox.send_command(
            core,
            Box::new(move |hc| hc.close_subscribers(CloseCode::SERVICE_RESTART, &reason)),
        );
    }
}
