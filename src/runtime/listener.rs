//! One `SO_REUSEPORT` listener per worker, all on the same address.
//!
//! The listeners are bound on the main thread before any worker starts, so
//! `--listen 127.0.0.1:0` resolves to one port that every worker shares,
//! and a bind error stops start-up with a clear message instead of killing
//! one worker. The kernel then spreads incoming connections across the
//! listeners by hashing each connection's addresses.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of each listener (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `count` listeners on `addr`; returns them and the bound address.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_one(bound)?);
    }
    Ok((all, bound))
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
