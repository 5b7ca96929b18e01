//! Memory a client can pin in the server stays within the configured
//! bounds, whatever it sends: here, clients that send pings and never read
//! their pongs. Each queued frame counts what it costs (its queue entry and
//! allocation, not just its bytes), so the server stops reading such a
//! client once `limits.send_queue_bytes` of pongs wait, and its memory grows
//! by about that bound per client.
//!
//! Runs a real `eventhub echo` process (the same runtime the hub uses),
//! started by the shared harness, with raw-socket clients on loopback.

mod common;

use std::io::{ErrorKind, Write};
use std::time::Duration;

use common::{RawClient, Server, ServerFrame};
use eventhub::proto::Opcode;

const QUEUE: usize = 64 * 1024;
const CLIENTS: usize = 20;

/// Sends empty pings until the server has stopped taking them: the socket
/// refuses bytes for a second (20 tries, 50 ms apart), which happens only
/// once the server has stopped reading and the kernel's buffers between
/// the two are full. Returns how many pings were sent and the bytes that
/// would complete the last one (a write can stop inside a frame).
fn ping_until_refused(c: &mut RawClient) -> (usize, Vec<u8>) {
    c.stream.set_nonblocking(true).unwrap();
    let batch: Vec<u8> = (0..512)
        .flat_map(|_| c.masked(true, Opcode::Ping, b""))
        .collect();
    let (mut sent, mut refusals) = (0, 0);
    while refusals < 20 && sent < 64 << 20 {
        // Whole frames only: a short write is continued where it stopped.
        let at = sent % batch.len();
        match c.stream.write(&batch[at..]) {
            Ok(n) => {
                sent += n;
                refusals = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                refusals += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let at = sent % batch.len();
    let rest = (6 - at % 6) % 6;
    (sent / 6, batch[at..at + rest].to_vec())
}

#[test]
fn clients_that_ping_and_never_read_pin_about_their_queue_bound_each() {
    let config = format!(
        "[limits]\nsend_queue_bytes = {QUEUE}\nsocket_send_buffer_bytes = 4096\nidle_timeout_s = 600\nping_interval_s = 300\nwrite_timeout_s = 600\n"
    );
    let server = Server::echo(1, Some(&config));
    let mut clients: Vec<RawClient> = (0..CLIENTS)
        .map(|_| RawClient::upgrade_with_recv_buffer(server.addr, 4096))
        .collect();
    let before = server.rss_bytes();
    let sent: Vec<(usize, Vec<u8>)> = std::thread::scope(|s| {
        let all: Vec<_> = clients
            .iter_mut()
            .map(|c| s.spawn(|| ping_until_refused(c)))
            .collect();
        all.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pings: usize = sent.iter().map(|(n, _)| n).sum();
    let grown = server.rss_bytes().saturating_sub(before);
    eprintln!("{CLIENTS} clients sent {pings} pings; RSS grew by {grown} bytes");
    // Per client: the queue bound, the rest of the read it stopped in
    // (kept by its session: up to two 64 KiB reads' worth of buffer) and
    // the queue's own capacity, 4 x 64 KiB in all; 8 MiB for what the
    // allocator keeps of the pongs already written. (Counting only the
    // pongs' bytes, this run grows by 47-56 MB: ~2.5 MB per client.)
    let bound = (CLIENTS * (QUEUE + 4 * 64 * 1024) + (8 << 20)) as u64;
    assert!(
        grown < bound,
        "RSS grew by {grown} bytes for {CLIENTS} clients that sent {pings} pings (bound {bound})"
    );
    // Reading them resumes the pongs: the clients were paused, not dropped.
    // (The message goes out from a thread of its own: the socket takes it
    // only as the server reads the pings before it.)
    let c = &mut clients[0];
    c.stream.set_nonblocking(false).unwrap();
    let mut text = sent[0].1.clone();
    text.extend(c.masked(true, Opcode::Text, b"still here"));
    let mut writer = c.stream.try_clone().unwrap();
    writer.set_write_timeout(None).unwrap();
    let sending = std::thread::spawn(move || writer.write_all(&text));
    loop {
        match c.read_frame() {
            ServerFrame::Text(t) => {
                assert_eq!(t, "still here");
                break;
            }
            ServerFrame::Pong(p) => assert!(p.is_empty()),
            other => panic!("expected pongs, then the echo: {other:?}"),
        }
    }
    sending.join().unwrap().expect("the message was sent");
}
