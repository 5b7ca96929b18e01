//! One worker: a core's life from its first accept to its graceful stop.
//!
//! Runtime layer: imports the core, the driver, the reactor, the janitor,
//! the HTTP phase and [`super::ws::adopt`]. A worker makes its core's
//! application and [`Core`], starts the reactor, the janitor and the
//! adoption of connections other cores hand it ([`super::balance`]), then
//! accepts until told to stop; stopping closes every connection with 1001
//! and waits, bounded by the shutdown timeout, for their closing
//! handshakes.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;

use super::app::{App, CoreInfo, Settings};
use super::balance::{Balancer, Handoff};
use super::clock::now_ms;
use super::core::Core;
use super::driver;
use super::pre_auth::PreAuth;
use super::stats::{bump, Stats};
use super::ws::adopt;
use super::yielding;
use super::{http, janitor, reactor};
use crate::config::DriverChoice;
use crate::proto::CloseCode;

/// What a worker is told from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    /// Stop accepting, close every connection with 1001, exit.
    Shutdown,
}

/// What connects a worker to the others.
pub(super) struct WorkerChannels<H> {
    pub(super) ctrl: flume::Receiver<Control>,
    /// Connections handed to this worker.
    pub(super) inbox: flume::Receiver<Handoff<H>>,
    pub(super) balancer: Arc<Balancer<H>>,
    /// The cap on connections in their HTTP phase, shared by every core.
    pub(super) pre_auth: Arc<PreAuth>,
}

/// Runs worker `id` on the calling thread until it has stopped.
pub(super) fn run<A, F>(
    id: usize,
    driver: DriverChoice,
    listeners: Vec<(std::net::TcpListener, bool)>,
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    channels: WorkerChannels<A::Handler>,
    make_app: Arc<F>,
) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    let pinned = driver::pin(id, settings.pin_workers);
    let code = if driver == DriverChoice::Epoll { 2 } else { 1 };
    stats.cores[id]
        .driver
        .store(code, std::sync::atomic::Ordering::Relaxed);
    driver::block_on(id, driver, &pinned, move || async move {
        monoio::spawn(yielding::relay());
        let app = Rc::new(make_app(CoreInfo {
            id,
            stats: stats.clone(),
        }));
        app.start();
        let core = Rc::new(Core::new(
            id,
            app,
            settings,
            stats,
            channels.balancer,
            channels.pre_auth,
        )?);
        monoio::spawn(adopt_handoffs(core.clone(), channels.inbox));
        serve(core, listeners, channels.ctrl).await
    })
}

/// Accepts until told to stop, then stops gracefully.
async fn serve<A: App>(
    core: Rc<Core<A>>,
    listeners: Vec<(std::net::TcpListener, bool)>,
    ctrl: flume::Receiver<Control>,
) -> io::Result<()> {
    monoio::spawn(janitor::run(core.clone()));
    let waiter = reactor::driver_handle(&core)?;
    monoio::spawn(reactor::run(core.clone(), waiter));
    // One task per listener (plain, TLS); dropping `stop` ends them, and
    // each drops its listener and its `done` sender as it ends.
    let (stop, stopping) = flume::bounded::<()>(0);
    let mut ended = Vec::new();
    for (listener, tls) in listeners {
        let listener = TcpListener::from_std(listener)?;
        let (done, end) = flume::bounded::<()>(0);
        monoio::spawn(accept(core.clone(), listener, tls, stopping.clone(), done));
        ended.push(end);
    }
    let _ = ctrl.recv_async().await;
    drop(stop);
    for end in ended {
        let _ = end.recv_async().await;
    }
    core.draining.set(true);
    core.app.on_shutdown();
    let open = core.registry.len();
    core.registry
        .for_each(|c| c.close(CloseCode::GOING_AWAY, "server restart"));
    let deadline = now_ms() + core.settings.limits.shutdown_timeout().as_millis() as u64;
    while !core.registry.is_empty() && now_ms() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    log::info!(
        "worker {}: stopped ({open} connections closed, {} did not finish in time)",
        core.id,
        core.registry.len()
    );
    Ok(())
}

/// Accepts on one listener (`tls`: a wss one) until `stop` is dropped.
async fn accept<A: App>(
    core: Rc<Core<A>>,
    listener: TcpListener,
    tls: bool,
    stop: flume::Receiver<()>,
    _done: flume::Sender<()>,
) {
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    bump(&core.stats().accepted);
                    monoio::spawn(http::serve_connection(core.clone(), stream, peer, tls));
                }
                Err(e) => {
                    log::warn!("worker {}: accept failed: {e}", core.id);
                    // Out of descriptors or memory: back off instead of spinning.
                    monoio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.recv_async() => return,
        }
    }
}

/// Adopts the connections other cores hand over (dropped while shutting
/// down: the client sees its connection closed and reconnects elsewhere).
async fn adopt_handoffs<A: App>(core: Rc<Core<A>>, inbox: flume::Receiver<Handoff<A::Handler>>) {
    while let Ok(h) = inbox.recv_async().await {
        core.balancer.arrived(core.id);
        if !core.draining.get() {
            adopt(&core, h);
        }
    }
}
