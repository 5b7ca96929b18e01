//! One `SO_REUSEPORT` listener per worker, all on the same address.
//!
//! The listeners are bound on the main thread before any worker starts, so
//! `--listen 127.0.0.1:0` resolves to one port that every worker shares,
//! and a bind error stops start-up with a clear message instead of killing
//! one worker. The kernel then spreads incoming connections across the
//! listeners by hashing each connection's addresses.
//!
//! `SO_REUSEPORT` would also let a second eventhub (same user) bind the
//! same port and silently take half of the connections, so a fixed port is
//! first claimed by a plain socket: if anything listens there already, that
//! bind fails with "address in use" and start-up stops.
//!
//! A port that is busy at start-up is tried again for a short while
//! ([`BUSY_RETRY`]) before start-up gives up: a hub killed on io_uring
//! leaves its listeners open for a moment after the process is gone (the
//! kernel tears the ring down, with the accepts it had pending, after the
//! exit), and a supervisor restarting it at once would otherwise see
//! "address in use" for its own previous run.
//!
//! Runtime layer, a leaf over `socket2`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of each listener (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// How long a busy port is tried again before start-up fails.
const BUSY_RETRY: Duration = Duration::from_secs(2);

/// Binds `count` listeners on `addr`; returns them and the bound address.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    if addr.port() != 0 {
        claim(addr, BUSY_RETRY)?;
    }
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_one(bound)?);
    }
    Ok((all, bound))
}

/// Binds and drops a plain socket on `addr` (see the module docs), trying
/// again every 50 ms for up to `patience` while the port is in use.
fn claim(addr: SocketAddr, patience: Duration) -> io::Result<()> {
    let give_up = Instant::now() + patience;
    let mut said = false;
    loop {
        match socket(addr, false) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < give_up => {
                if !std::mem::replace(&mut said, true) {
                    log::info!("{addr} is in use; trying again for {patience:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket(addr, true)?;
    socket.set_nonblocking(true)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A TCP socket bound to `addr` (`SO_REUSEADDR`, so connections of a
/// previous run in TIME_WAIT do not block it).
fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_listeners_is_refused_to_a_second_set() {
        let (held, bound) = bind_all("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(held.len(), 2);
        let started = Instant::now();
        let err = bind_all(bound, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(
            started.elapsed() >= BUSY_RETRY,
            "tried again before giving up"
        );
        drop(held);
        assert!(bind_all(bound, 2).is_ok(), "free again once released");
    }

    #[test]
    fn a_port_released_while_start_up_waits_is_taken() {
        let (held, bound) = bind_all("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        assert!(
            bind_all(bound, 2).is_ok(),
            "taken once the first set let go"
        );
        release.join().unwrap();
    }
}
