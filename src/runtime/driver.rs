//! Which io driver a worker runs, and running a core's future on it.
//!
//! Runtime layer, a leaf over monoio: io_uring when the kernel has it
//! (readiness polls and accepts go through the ring), epoll otherwise, or
//! whichever the config or `EVENTHUB_DRIVER` forces. Every worker logs
//! which one it runs and whether it is pinned.

use std::future::Future;
use std::io;
use std::thread;

use crate::config::DriverChoice;

/// Config, then `EVENTHUB_DRIVER`, then what the kernel offers.
pub(super) fn resolve(configured: DriverChoice) -> io::Result<DriverChoice> {
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

/// Pins the calling thread to core `id` (modulo the cores there are) when
/// asked; says what it did, for the log.
pub(super) fn pin(id: usize, wanted: bool) -> String {
    if !wanted {
        return "unpinned".to_string();
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = id % cores;
    match monoio::utils::bind_to_cpu_set([cpu]) {
        Ok(()) => format!("pinned to core {cpu}"),
        Err(e) => {
            log::warn!("worker {id}: cannot pin to core {cpu}: {e}");
            "unpinned".to_string()
        }
    }
}

/// Builds worker `id`'s runtime on `driver` (resolved: not `Auto`) and runs
/// `serve` on it to the end.
pub(super) fn block_on<F, Fut>(
    id: usize,
    driver: DriverChoice,
    pinned: &str,
    serve: F,
) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
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
