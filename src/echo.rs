//! `eventhub echo`: every text and binary message is sent straight back.
//!
//! It exists to hold the framing layer to RFC 6455 with the Autobahn
//! fuzzingclient, so it uses exactly the hub's listener, handshake, codec
//! and connection machinery; only the handler differs. `GET /metrics`
//! (without an upgrade) shows the runtime counters per core. With
//! permessage-deflate negotiated, each echo is compressed on its own (no
//! context takeover), with the core's one compressor, when that makes it
//! smaller.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::proto::deflate::Deflater;
use crate::proto::handshake::check_upgrade;
use crate::proto::http::{Request, Response};
use crate::proto::{frame, MessageKind, Opcode};
use crate::runtime::{App, Conn, CoreInfo, Decision, Peer, Route, Stats};

/// The echo application of one core.
pub struct Echo {
    stats: Arc<Stats>,
    deflater: RefCell<Deflater>,
}

impl Echo {
    /// The echo of one core, compressing at `level` where negotiated.
    pub fn new(core: CoreInfo, level: u32) -> Echo {
        Echo {
            stats: core.stats,
            deflater: RefCell::new(Deflater::new(level)),
        }
    }
}

/// An echo connection: no state of its own.
pub struct EchoHandler;

impl App for Echo {
    type Handler = EchoHandler;

    /// Every request is answered on its head; no body is read.
    fn route_head(&self, req: &Request, _peer: &Peer) -> Decision<EchoHandler> {
        if req.path == "/metrics" && req.header("upgrade").is_none() {
            let mut body = String::new();
            self.stats.render(&mut body);
            let mut resp = Response::json(200, body);
            resp.content_type = "text/plain; version=0.0.4";
            return Route::Respond(resp).into();
        }
        match check_upgrade(req) {
            Ok(accept) => Route::Upgrade {
                accept,
                handler: EchoHandler,
            }
            .into(),
            Err(e) => Route::Respond(e.response()).into(),
        }
    }

    /// Never called: [`Self::route_head`] asks for no body.
    async fn route(&self, _: &Request, _body: Vec<u8>, _peer: &Peer) -> Route<EchoHandler> {
        Route::Respond(Response::error(404, "not_found", "no such route"))
    }

    /// Sends each message back as one frame of the same kind.
    fn on_message(
        &self,
        _: &mut EchoHandler,
        kind: MessageKind,
        payload: &mut [u8],
        conn: &Rc<Conn>,
    ) {
        let opcode = match kind {
            MessageKind::Text => Opcode::Text,
            MessageKind::Binary => Opcode::Binary,
        };
        if conn.takes_compressed() {
            if let Some(compressed) = self.deflater.borrow_mut().frame(opcode, payload) {
                return conn.send(compressed);
            }
        }
        conn.send(frame(opcode, payload));
    }
}
