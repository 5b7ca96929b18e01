//! `POST /v1/tickets`: a one-time ticket for a WebSocket, for a page.
//!
//! The caller authenticates as for any other route (a header: `Bearer` or
//! `X-Api-Key`), and gets a ticket to open one WebSocket with
//! (`?ticket=...` on `/v1/ws/subscribe`, `/events/ws` or
//! `/v1/ws/publish`) from the same address within `ui.ticket_ttl_s`, plus
//! the principal's rights. A ticket cannot buy another ticket: tickets are
//! taken only by the WebSocket routes ([`crate::hub::tickets`] says why
//! they exist).
//!
//! Layer: API. Imports the hub's tickets (through [`crate::hub::Shared`]),
//! the API's [`replies`](super::replies).

use std::time::Instant;

use super::replies;
use super::{HubApp, HubHandler};
use crate::proto::forwarded::canonical;
use crate::proto::http::{Request, Response};
use crate::runtime::{Peer, Route};

/// `POST /v1/tickets` (its body, if any, is not read).
pub fn issue(app: &HubApp, req: &Request, peer: &Peer) -> Route<HubHandler> {
    let principal = match app.authenticate(req, peer) {
        Ok(p) => p,
        Err(resp) => return Route::Respond(resp),
    };
    let tickets = &app.shared.tickets;
    match tickets.issue(principal, canonical(peer.ip()), Instant::now()) {
        Ok(ticket) => {
            let who = app.shared.auth.principal(principal);
            let body = replies::ticket(&app.shared, &ticket, tickets.ttl().as_secs(), who);
            Route::Respond(Response::json(201, body).with_header("Cache-Control", "no-store"))
        }
        Err(e) => Route::Respond(
            Response::error(503, "too_many_tickets", &e.to_string())
                .with_header("Retry-After", "1"),
        ),
    }
}
