//! When the certificate is loaded again: on SIGHUP (`systemctl reload`,
//! a certbot deploy hook) at once, and when the files change, found by a
//! look at their metadata every `tls.reload_check_s` (renewal tools that
//! replace the files without signalling are common; a look at two
//! `stat`s is cheap enough not to need inotify).
//!
//! Both run on one thread of their own, off the workers. A reload that
//! fails is logged and the served pair stays; a file change that failed
//! is not tried again until the files change again (a half-written
//! renewal is tried once more when its second file lands).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::CertStore;

/// What identifies a file's content without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// The reload thread's handle (it runs until the process exits).
#[derive(Debug)]
pub struct Reloader {
    _thread: std::thread::JoinHandle<()>,
}

/// Starts the reload thread: SIGHUP reloads `store` (or, without one, is
/// logged and ignored rather than ending the process), and every `check`
/// (if not zero) a change of its files does.
pub fn spawn_reloader(store: Option<Arc<CertStore>>, check: Duration) -> std::io::Result<Reloader> {
    let hup = Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    let thread = std::thread::Builder::new()
        .name("eventhub-tls-reload".into())
        .spawn(move || {
            let tick = Duration::from_millis(200);
            let stamps = |s: &CertStore| {
                let (cert, key) = s.paths();
                (stamp(cert), stamp(key))
            };
            let mut seen = store.as_deref().map(stamps);
            let mut since_check = Duration::ZERO;
            loop {
                std::thread::sleep(tick);
                since_check += tick;
                let signalled = hup.swap(false, std::sync::atomic::Ordering::Relaxed);
                let Some(store) = store.as_deref() else {
                    if signalled {
                        log::info!("SIGHUP: no TLS configured, nothing to reload");
                    }
                    continue;
                };
                let mut changed = false;
                if !check.is_zero() && since_check >= check {
                    since_check = Duration::ZERO;
                    let now = Some(stamps(store));
                    changed = now != seen;
                    seen = now;
                }
                if !(signalled || changed) {
                    continue;
                }
                let why = if signalled { "SIGHUP" } else { "files changed" };
                if let Err(e) = store.reload() {
                    log::warn!("tls: {why}: keeping the current certificate: {e}");
                }
            }
        })?;
    Ok(Reloader { _thread: thread })
}
