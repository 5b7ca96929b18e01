//! Publishers: each sends its events over one WebSocket, paced open-loop
//! (event `k` is due at `start + k / rate` whatever happened to earlier
//! ones) and, with `--window`, held back by the slowest subscriber
//! ([`Window`]). Every event carries the time it is written to the socket
//! (over TLS: handed to the TLS stream, which seals and writes it at once).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use eventhub_proto::{masked_frame, Opcode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{connect, monotonic_ns, Until};
use crate::transport::Endpoint;
use crate::window::Window;
use crate::Kind;

/// One publisher's part of the run.
pub struct Publisher {
    pub endpoint: Endpoint,
    pub kind: Kind,
    pub token: String,
    pub channel: String,
    /// This publisher's number (`p` in every event).
    pub index: usize,
    pub count: u64,
    /// Events per second; 0 = as fast as possible (or as the window allows).
    pub rate: f64,
    /// Bytes of each delivered event, about.
    pub size: usize,
    pub window: Option<Arc<Window>>,
    /// How long to wait for the window before giving up.
    pub stall_timeout: Duration,
}

impl Publisher {
    /// Publishes; returns how many events were sent.
    pub async fn run(self) -> io::Result<u64> {
        let up = connect(
            &self.endpoint,
            None,
            "/v1/ws/publish",
            &self.token,
            false,
            Until::Upgrade,
        )
        .await?;
        let mut stream = up.stream;
        // eventhub wraps the body in an envelope of about 200 bytes.
        let overhead = match self.kind {
            Kind::Eventhub => 250,
            Kind::Peer => 90,
        };
        let pad = "x".repeat(self.size.saturating_sub(overhead));
        let (channel, p) = (&self.channel, self.index);
        let start_instant = tokio::time::Instant::now();
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut sent = 0;
        for n in 1..=self.count {
            if self.rate > 0.0 {
                let due = Duration::from_secs_f64((n - 1) as f64 / self.rate);
                tokio::time::sleep_until(start_instant + due).await;
            }
            if let Some(window) = &self.window {
                if !window.admit(self.stall_timeout).await {
                    eprintln!(
                        "publisher {p}: the window stayed shut for {:?}; stopping after {sent} events",
                        self.stall_timeout
                    );
                    break;
                }
            }
            // The time it actually leaves: tokio's timer wakes up to a
            // millisecond late, which is the tool's delay, not the server's.
            let t = monotonic_ns();
            let msg = format!(
                r#"{{"event_type":"{channel}","message":"load","body":{{"t":{t},"n":{n},"p":{p},"pad":"{pad}"}}}}"#
            );
            batch.extend_from_slice(&masked_frame(
                true,
                Opcode::Text,
                msg.as_bytes(),
                [7, 7, 7, 7],
            ));
            sent = n;
            // Batched only when nothing waits for this event to leave.
            let paced = self.rate > 0.0 || self.window.is_some();
            if paced || batch.len() >= 32 * 1024 || n == self.count {
                stream.write_all(&batch).await?;
                // Over TLS, sealed records can wait in the session.
                stream.flush().await?;
                batch.clear();
            }
        }
        let close = masked_frame(true, Opcode::Close, &1000u16.to_be_bytes(), [1, 1, 1, 1]);
        stream.write_all(&close).await?;
        stream.flush().await?;
        // Give the server the moment it needs to read the tail before the FIN.
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        Ok(sent)
    }
}
