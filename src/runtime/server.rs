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

use super::app::{App, CoreInfo, Settings};
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
    ready: impl FnOnce(SocketAddr),
) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    let driver = driver::resolve(settings.driver)?;
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
    let pre_auth = Arc::new(PreAuth::new(
        settings.limits.max_pre_auth_per_ip,
        settings.limits.max_pre_auth_connections,
    ));
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
            pre_auth: pre_auth.clone(),
        };
        let handle = thread::Builder::new()
            .name(format!("eventhub-w{id}"))
            .spawn(move || {
                let result = worker::run(id, driver, listener, settings, stats, channels, make_app);
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
