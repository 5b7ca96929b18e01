//! The janitor: one timer per core, not one per connection.
//!
//! Runtime layer: imports the core, the connection and the clock. Twice a
//! second it gives the application its tick, then walks the core's
//! connections: a socket that has accepted no bytes for the write timeout
//! is dropped (one that accepts them slowly is not), a connection past its maximum age is asked to reconnect (1001),
//! and every other deadline (pings, the idle close, a closing handshake
//! that never finishes) is the protocol session's own, acted on through
//! [`super::conn::Conn::on_timeout`].

use std::rc::Rc;
use std::time::Duration;

use super::app::App;
use super::clock::{age_ms, now_s, stamp};
use super::core::Core;
use super::stats::bump;
use crate::proto::CloseCode;

/// How often the janitor walks the connections.
const TICK: Duration = Duration::from_millis(500);

/// Runs the core's janitor until the runtime ends.
pub(super) async fn run<A: App>(core: Rc<Core<A>>) {
    let limits = &core.settings.limits;
    let write = limits.write_timeout().as_millis() as u64;
    let max_age = limits.max_connection_age().as_secs();
    loop {
        monoio::time::sleep(TICK).await;
        core.app.on_tick();
        let (now, now_s) = (stamp(), now_s());
        core.registry.for_each(|c| {
            if c.is_dead() {
                return;
            }
            if c.take_held() {
                // Ask the application again whether it wants the input.
                c.wake();
            }
            let blocked = c.blocked_since();
            if blocked != 0 && age_ms(now, blocked) >= write {
                bump(&core.stats().timeouts);
                c.kill();
                return;
            }
            if u64::from(now_s.saturating_sub(c.opened_at_s())) >= max_age {
                c.close(
                    CloseCode::GOING_AWAY,
                    "max connection age reached; reconnect",
                );
            }
            if c.on_timeout(&core.session, now) {
                bump(&core.stats().timeouts);
            }
        });
    }
}
