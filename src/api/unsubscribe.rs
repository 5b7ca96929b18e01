//! `POST /v1/ws/unsubscribe` with `{"client_id": "...", "event_types":
//! [...]}`: removes channels from a connection that may live on another
//! core.
//!
//! The client id says which core and slot hold the connection (see
//! [`crate::hub::client_id`]); the change is sent to that core as a command
//! and the answer awaited, so the subscriber table and index are only ever
//! touched by their own core, which also checks the whole id and the
//! principal.
//!
//! Layer: API. Imports the hub (client ids, the core, the mailbox through
//! `Shared`, principal rights), the API's [`replies`] and
//! the runtime's route.

use serde::Deserialize;
use uuid::Uuid;

use super::replies;
use super::{HubApp, HubHandler};
use crate::hub::client_id;
use crate::hub::core::HubCore;
use crate::hub::metrics::Refusal;
use crate::proto::http::{Request, Response};
use crate::runtime::{Peer, Route};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeBody {
    client_id: String,
    event_types: Vec<String>,
}

/// `POST /v1/ws/unsubscribe`.
pub async fn route(app: &HubApp, req: &Request, body: &[u8], peer: &Peer) -> Route<HubHandler> {
    let principal = match app.authenticate(req, peer) {
        Ok(p) => p,
        Err(resp) => return Route::Respond(resp),
    };
    let parsed: UnsubscribeBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("expected {{\"client_id\": \"<uuid>\", \"event_types\": [\"<channel>\", ...]}}: {e}");
            return app.bad_request("bad_request", &msg);
        }
    };
    let Ok(client_id) = Uuid::parse_str(&parsed.client_id) else {
        return app.bad_request("bad_request", "client_id is not a UUID");
    };
    if parsed.event_types.is_empty() {
        return app.bad_request("bad_request", "event_types is empty");
    }
    let remove = match app
        .shared
        .channels
        .parse(parsed.event_types.iter().map(String::as_str))
    {
        Ok(set) => set,
        Err(e) => return app.bad_request("unknown_channel", &e.to_string()),
    };
    if let Err(e) = app.shared.auth.principal(principal).may_unsubscribe(remove) {
        return app.bad_request("bad_request", &e.to_string());
    }
    let (at_core, slot) = client_id::locate(&client_id);
    let (tx, rx) = flume::bounded(1);
    let command = move |core: &HubCore| {
        let found = core
            .subscriber(slot as usize)
            .filter(|sub| sub.client_id == client_id);
        let result = match found {
            None => Err(Unsubscribe::NotFound),
            Some(sub) if sub.principal as usize != principal => Err(Unsubscribe::Forbidden),
            Some(sub) => {
                let next = sub.channels.minus(remove);
                if let Some(conn) = core.set_channels(slot as usize, next) {
                    conn.send(replies::subscriptions(&core.shared, "unsubscribe", next));
                }
                Ok(next)
            }
        };
        let _ = tx.send(result);
    };
    if !app.shared.mailbox.send_command(at_core, Box::new(command)) {
        return not_found(app, client_id);
    }
    match rx.recv_async().await {
        Ok(Ok(remaining)) => Route::Respond(Response::json(
            200,
            replies::unsubscribed(&app.shared, remaining),
        )),
        Ok(Err(Unsubscribe::Forbidden)) => {
            app.forbidden("the subscription belongs to another principal")
        }
        Ok(Err(Unsubscribe::NotFound)) | Err(_) => not_found(app, client_id),
    }
}

/// Why the core holding a client id did not change its subscriptions.
enum Unsubscribe {
    NotFound,
    Forbidden,
}

fn not_found(app: &HubApp, id: Uuid) -> Route<HubHandler> {
    app.refuse(
        Refusal::NotFound,
        Response::error(
            404,
            "not_found",
            &format!("no connected client with id {id}"),
        ),
    )
}
