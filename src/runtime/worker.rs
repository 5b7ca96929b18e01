//! One worker per core: its runtime, its accept loop, its janitor, and the
//! graceful shutdown.
//!
//! The io driver is chosen per worker: io_uring when the kernel has it
//! (readiness polls and accepts go through the ring), epoll otherwise, or
//! whichever the config or `EVENTHUB_DRIVER` forces. Every worker logs
//! which one it runs.
//!
//! Each core also adopts the connections other cores hand it
//! ([`super::balance`]).
//!
//! The janitor is one timer per core, not one per connection: once a second
//! it walks the core's connections and sends pings to the quiet ones, closes
//! the idle ones, and drops those whose socket has refused bytes, or whose
//! peer has not answered a close, for too long.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use monoio::net::TcpListener;

use super::balance::{Balancer, Handoff};
use super::clock::{age_ms, now_ms, now_s, stamp};
use super::conn::{Conn, Phase};
use super::listener::bind_all;
use super::reactor::{self, EpollSet, ReadyList};
use super::registry::Registry;
use super::stats::{bump, CoreStats, Stats};
use super::ws::Session;
use super::{App, Control, CoreInfo, Settings};
use crate::config::DriverChoice;
use crate::proto::{frame, CloseCode, Opcode};

/// Bytes of the per-core receive buffer every connection reads into.
const READ_BUF_BYTES: usize = 64 * 1024;
/// How often the janitor walks the connections.
const JANITOR_TICK: Duration = Duration::from_millis(500);

/// A core's shared state, one per worker thread.
pub(crate) struct Core<A: App> {
    pub(crate) id: usize,
    pub(crate) app: Rc<A>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) registry: Registry,
    /// The upgraded connections' sockets, watched by the reactor.
    pub(crate) epoll: EpollSet,
    /// Connections with queued work for the reactor.
    pub(crate) ready: Rc<ReadyList>,
    /// The reactor's side of each connection, by slot (taken out while a
    /// connection is being handled). Held inline: a table grows by
    /// doubling, but capacity never written is never backed by memory.
    sessions: RefCell<Vec<Option<Session<A::Handler>>>>,
    /// The receive buffer shared by every connection of this core.
    pub(crate) read_buf: RefCell<Box<[u8]>>,
    /// Shutting down: no new upgrades.
    pub(crate) draining: Cell<bool>,
    /// Where upgraded connections go when another core has fewer.
    pub(crate) balancer: Arc<Balancer<A::Handler>>,
}

impl<A: App> Core<A> {
    pub(crate) fn stats(&self) -> &CoreStats {
        &self.stats.cores[self.id]
    }

    pub(crate) fn set_session(&self, slot: u32, session: Session<A::Handler>) {
        let mut sessions = self.sessions.borrow_mut();
        let i = slot as usize;
        if sessions.len() <= i {
            sessions.resize_with(i + 1, || None);
        }
        sessions[i] = Some(session);
    }

    pub(crate) fn take_session(&self, slot: u32) -> Option<Session<A::Handler>> {
        self.sessions.borrow_mut().get_mut(slot as usize)?.take()
    }
}

/// Starts every worker and the signal thread; returns when all have ended.
pub(crate) fn run_all<A, F>(
    settings: Settings,
    make_app: Arc<F>,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    let driver = resolve_driver(settings.driver)?;
    let (listeners, bound) = bind_all(settings.listen, settings.workers).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", settings.listen),
        )
    })?;
    let settings = Arc::new(settings);
    let stats = Arc::new(Stats::new(settings.workers));
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..settings.workers).map(|_| flume::bounded(4)).unzip();
    let senders = Arc::new(senders);
    let (balancer, inboxes) = Balancer::new(stats.clone(), settings.balance_connections);
    let balancer = Arc::new(balancer);
    spawn_signal_thread(senders.clone())?;
    let mut handles = Vec::new();
    let per_worker = listeners.into_iter().zip(receivers).zip(inboxes);
    for (id, ((listener, ctrl), inbox)) in per_worker.enumerate() {
        let (settings, stats, make_app, senders) = (
            settings.clone(),
            stats.clone(),
            make_app.clone(),
            senders.clone(),
        );
        let channels = WorkerChannels {
            ctrl,
            inbox,
            balancer: balancer.clone(),
        };
        let handle = thread::Builder::new()
            .name(format!("eventhub-w{id}"))
            .spawn(move || {
                let result = run_worker(id, driver, listener, settings, stats, channels, make_app);
                if let Err(e) = &result {
                    log::error!("worker {id} failed: {e}");
                    broadcast(&senders, Control::Shutdown);
                }
                result
            })?;
        handles.push(handle);
    }
    ready(bound);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(io::Error::other("a worker panicked"));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn broadcast(senders: &[flume::Sender<Control>], msg: Control) {
    for s in senders {
        let _ = s.try_send(msg);
    }
}

/// SIGINT/SIGTERM: the first starts the graceful shutdown, a second exits.
fn spawn_signal_thread(senders: Arc<Vec<flume::Sender<Control>>>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new()
        .name("eventhub-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen == 1 {
                    log::info!("signal {sig}: closing connections with 1001 and stopping");
                    broadcast(&senders, Control::Shutdown);
                } else {
                    log::warn!("second signal: exiting at once");
                    std::process::exit(1);
                }
            }
        })?;
    Ok(())
}

/// Config, then `EVENTHUB_DRIVER`, then what the kernel offers.
fn resolve_driver(configured: DriverChoice) -> io::Result<DriverChoice> {
    let choice = match std::env::var("EVENTHUB_DRIVER") {
        Ok(v) => match v.as_str() {
            "auto" => DriverChoice::Auto,
            "io_uring" | "iouring" => DriverChoice::IoUring,
            "epoll" | "legacy" => DriverChoice::Epoll,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("EVENTHUB_DRIVER={other:?}: expected auto, io_uring or epoll"),
                ))
            }
        },
        Err(_) => configured,
    };
    let uring = monoio::utils::detect_uring();
    match choice {
        DriverChoice::Auto if uring => Ok(DriverChoice::IoUring),
        DriverChoice::Auto => Ok(DriverChoice::Epoll),
        DriverChoice::IoUring if !uring => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "driver io_uring was asked for but this kernel does not offer it",
        )),
        other => Ok(other),
    }
}

/// What connects a worker to the others.
struct WorkerChannels<H> {
    ctrl: flume::Receiver<Control>,
    /// Connections handed to this worker.
    inbox: flume::Receiver<Handoff<H>>,
    balancer: Arc<Balancer<H>>,
}

fn run_worker<A, F>(
    id: usize,
    driver: DriverChoice,
    listener: std::net::TcpListener,
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    channels: WorkerChannels<A::Handler>,
    make_app: Arc<F>,
) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    let mut pinned = None;
    if settings.pin_workers {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = id % cores;
        match monoio::utils::bind_to_cpu_set([cpu]) {
            Ok(()) => pinned = Some(cpu),
            Err(e) => log::warn!("worker {id}: cannot pin to core {cpu}: {e}"),
        }
    }
    let pinned = pinned.map_or("unpinned".to_string(), |c| format!("pinned to core {c}"));
    let serve = move || async move {
        let app = Rc::new(make_app(CoreInfo {
            id,
            stats: stats.clone(),
        }));
        app.start();
        let core = Rc::new(Core {
            id,
            app,
            settings,
            stats,
            registry: Registry::default(),
            epoll: EpollSet::new()?,
            ready: Rc::default(),
            sessions: RefCell::default(),
            read_buf: RefCell::new(vec![0u8; READ_BUF_BYTES].into_boxed_slice()),
            draining: Cell::new(false),
            balancer: channels.balancer,
        });
        monoio::spawn(adopt_handoffs(core.clone(), channels.inbox));
        serve_core(core, listener, channels.ctrl).await
    };
    match driver {
        DriverChoice::Epoll => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()?;
            log::info!("worker {id}: epoll driver, {pinned}");
            rt.block_on(serve())
        }
        _ => {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()?;
            log::info!("worker {id}: io_uring driver, {pinned}");
            rt.block_on(serve())
        }
    }
}

async fn serve_core<A: App>(
    core: Rc<Core<A>>,
    listener: std::net::TcpListener,
    ctrl: flume::Receiver<Control>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    monoio::spawn(janitor(core.clone()));
    let waiter = reactor::driver_handle(&core.epoll)?;
    monoio::spawn(reactor::run(core.clone(), waiter));
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    bump(&core.stats().accepted);
                    monoio::spawn(super::http::serve_connection(core.clone(), stream, peer));
                }
                Err(e) => {
                    log::warn!("worker {}: accept failed: {e}", core.id);
                    // Out of descriptors or memory: back off instead of spinning.
                    monoio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = ctrl.recv_async() => break,
        }
    }
    drop(listener);
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

/// Adopts the connections other cores hand over (dropped while shutting
/// down: the client sees its connection closed and reconnects elsewhere).
async fn adopt_handoffs<A: App>(core: Rc<Core<A>>, inbox: flume::Receiver<Handoff<A::Handler>>) {
    while let Ok(h) = inbox.recv_async().await {
        core.balancer.arrived(core.id);
        if !core.draining.get() {
            reactor::adopt(&core, h.fd, &h.accept, h.handler, h.leftover);
        }
    }
}

/// Pings, idle closes and the timeouts, for every connection of the core.
async fn janitor<A: App>(core: Rc<Core<A>>) {
    let limits = &core.settings.limits;
    let ms = |d: Duration| d.as_millis() as u64;
    let (idle, ping, write, close, max_age) = (
        ms(limits.idle_timeout()),
        ms(limits.ping_interval()),
        ms(limits.write_timeout()),
        ms(limits.close_timeout()),
        limits.max_connection_age().as_secs(),
    );
    let ping_frame = frame(Opcode::Ping, b"");
    loop {
        monoio::time::sleep(JANITOR_TICK).await;
        core.app.on_tick();
        let (now, now_s) = (stamp(), now_s());
        core.registry.for_each(|c: &Rc<Conn>| {
            if c.is_dead() {
                return;
            }
            let blocked = c.blocked_since();
            let timed_out = match c.phase() {
                _ if blocked != 0 && age_ms(now, blocked) >= write => true,
                Phase::CloseSent(t) | Phase::ReplyQueued(t) => age_ms(now, t) >= close,
                Phase::Open => {
                    let quiet = age_ms(now, c.last_rx());
                    if u64::from(now_s.saturating_sub(c.opened_at_s())) >= max_age {
                        c.close(
                            CloseCode::GOING_AWAY,
                            "max connection age reached; reconnect",
                        );
                    } else if quiet >= idle {
                        bump(&core.stats().timeouts);
                        c.close(CloseCode::GOING_AWAY, "idle timeout");
                    } else if quiet >= ping && !c.ping_outstanding() {
                        c.send_ping(ping_frame.clone());
                    }
                    false
                }
            };
            if timed_out {
                bump(&core.stats().timeouts);
                c.kill();
            }
        });
    }
}
