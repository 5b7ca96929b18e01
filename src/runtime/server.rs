//! The whole server: bind every listener, start one worker thread per core
//! and the signal thread, and wait for them all.
//!
//! Runtime layer: imports the listener, the balancer, the worker and the
//! [`App`] contract. SIGINT/SIGTERM start the graceful shutdown (every
//! worker stops accepting and closes its connections with 1001); a second
//! signal exits at once. A worker that fails stops the others too.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use super::app::{App, Bound, CoreInfo, Settings};
use super::balance::Balancer;
use super::driver;
use super::listener::bind_all;
use super::pre_auth::PreAuth;
use super::stats::Stats;
use super::worker::{self, Control, WorkerChannels};

/// Starts every worker and the signal thread; returns when all have ended.
pub(super) fn run_all<A, F>(
    settings: Settings,
    make_app: Arc<F>,
    ready: impl FnOnce(Bound),
) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    let driver = driver::resolve(settings.driver)?;
    let bind = |addr: SocketAddr| {
        bind_all(addr, settings.workers)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
    };
    let (main, main_addr) = bind(settings.listen)?;
    let tls = settings.tls.as_ref();
    let (extra, bound) = match tls.map(|t| t.listen) {
        None => (
            None,
            Bound {
                plain: Some(main_addr),
                tls: None,
            },
        ),
        Some(None) => (
            None,
            Bound {
                plain: None,
                tls: Some(main_addr),
            },
        ),
        Some(Some(addr)) => {
            let (extra, tls_addr) = bind(addr)?;
            (
                Some(extra),
                Bound {
                    plain: Some(main_addr),
                    tls: Some(tls_addr),
                },
            )
        }
    };
    if let Some(t) = tls {
        report_ktls(t.ktls);
    }
    // Each worker's listeners, with whether each speaks TLS.
    let main_tls = bound.plain.is_none();
    let mut extra = extra.map(Vec::into_iter);
    let listeners: Vec<Vec<(std::net::TcpListener, bool)>> = main
        .into_iter()
        .map(|l| {
            let mut mine = vec![(l, main_tls)];
            if let Some(e) = extra.as_mut().and_then(Iterator::next) {
                mine.push((e, true));
            }
            mine
        })
        .collect();
    let settings = Arc::new(settings);
    let stats = Arc::new(Stats::new(
        settings.workers,
        settings.tls.as_ref().map(|t| t.store.clone()),
    ));
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..settings.workers).map(|_| flume::bounded(4)).unzip();
    let senders = Arc::new(senders);
    let (balancer, inboxes) = Balancer::new(stats.clone(), settings.balance_connections);
    let balancer = Arc::new(balancer);
    let pre_auth = Arc::new(PreAuth::new(
        settings.limits.max_pre_auth_per_ip,
        settings.limits.max_pre_auth_connections,
    ));
    spawn_signal_thread(senders.clone())?;
    let mut handles = Vec::new();
    let per_worker = listeners.into_iter().zip(receivers).zip(inboxes);
    for (id, ((listeners, ctrl), inbox)) in per_worker.enumerate() {
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
            pre_auth: pre_auth.clone(),
        };
        let handle = thread::Builder::new()
            .name(format!("eventhub-w{id}"))
            .spawn(move || {
                let result =
                    worker::run(id, driver, listeners, settings, stats, channels, make_app);
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

/// `tls.ktls = "auto"`: says at start-up whether the kernel could take
/// TLS records over (and that eventhub encrypts in user space either way:
/// handing keys to the kernel is not built yet, since no machine it is
/// developed and tested on has kTLS).
fn report_ktls(choice: crate::config::KtlsChoice) {
    if choice == crate::config::KtlsChoice::Off {
        return;
    }
    match super::sys::probe_ktls() {
        Ok(()) => log::info!(
            "tls: the kernel offers kTLS; eventhub encrypts in user space (kTLS hand-off is not implemented)"
        ),
        Err(e) => log::info!("tls: no kernel TLS here ({e}); encrypting in user space"),
    }
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
