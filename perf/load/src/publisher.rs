//! Publishers: each sends its events over one WebSocket, paced open-loop
//! (event `k` is due at `start + k / rate` whatever happened to earlier
//! ones) and, with `--window`, held back by the slowest subscriber
//! ([`Window`]). Every event carries the time it is written to the socket
//! (over TLS: handed to the TLS stream, which seals and writes it at once).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use eventhub_proto::{masked_frame, Opcode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{connect, monotonic_ns, Until};
use crate::transport::Endpoint;
use crate::window::Window;
use crate::Kind;

/// What pads an event to `--size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Payload {
    /// `"pad":"xxx…"`.
    X,
    /// A Docker Engine container event's fields (`docker events --format
    /// json`): a 64-hex container id twice, an image, an action, a
    /// compose project's labels with a config hash, times; the id, hash,
    /// action, service and times vary per event, the rest repeats as it
    /// does in a real stream. Labels are added (or left out) to come near
    /// `--size`.
    Docker,
}

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
    pub payload: Payload,
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
            false,
        )
        .await?;
        let mut stream = up.stream;
        // eventhub wraps the body in an envelope of about 200 bytes.
        let overhead = match self.kind {
            Kind::Eventhub => 250,
            Kind::Peer => 90,
        };
        let pad_to = self.size.saturating_sub(overhead);
        let pad = "x".repeat(pad_to);
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
            let msg = match self.payload {
                Payload::X => format!(
                    r#"{{"event_type":"{channel}","message":"load","body":{{"t":{t},"n":{n},"p":{p},"pad":"{pad}"}}}}"#
                ),
                Payload::Docker => {
                    let docker = docker_fields(p as u64, n, pad_to.saturating_sub(40));
                    format!(
                        r#"{{"event_type":"{channel}","message":"load","body":{{"t":{t},"n":{n},"p":{p},{docker}}}}}"#
                    )
                }
            };
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

/// splitmix64: the pseudo-random ids of the Docker-like events.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 hex digits from `seed`.
fn hex64(seed: u64) -> String {
    (0..4)
        .map(|i| format!("{:016x}", mix(seed.wrapping_mul(4).wrapping_add(i))))
        .collect()
}

/// The fields of a Docker container event (publisher `p`'s event `n`),
/// about `target` bytes of them (at least the core fields).
fn docker_fields(p: u64, n: u64, target: usize) -> String {
    const ACTIONS: [&str; 6] = [
        "create",
        "start",
        "health_status: healthy",
        "die",
        "stop",
        "destroy",
    ];
    const SERVICES: [(&str, &str); 4] = [
        ("web", "nginx:1.27-alpine"),
        ("api", "ghcr.io/acme/shop-api:2.14.3"),
        ("worker", "ghcr.io/acme/shop-worker:2.14.3"),
        ("db", "postgres:16.4-bookworm"),
    ];
    let seed = mix(p << 40 ^ n);
    let container = (seed % 12) + 1;
    let id = hex64(seed ^ container);
    let action = ACTIONS[(n % ACTIONS.len() as u64) as usize];
    let (service, image) = SERVICES[(container % SERVICES.len() as u64) as usize];
    let secs = 1_764_590_000 + n / 4;
    let nanos = secs * 1_000_000_000 + mix(seed) % 1_000_000_000;
    let mut labels = vec![
        format!(r#""com.docker.compose.config-hash":"{}""#, hex64(container)),
        format!(
            r#""com.docker.compose.container-number":"{}""#,
            container / 4 + 1
        ),
        r#""com.docker.compose.depends_on":"""#.to_string(),
        format!(
            r#""com.docker.compose.image":"sha256:{}""#,
            hex64(container + 100)
        ),
        r#""com.docker.compose.oneoff":"False""#.to_string(),
        r#""com.docker.compose.project":"shop""#.to_string(),
        r#""com.docker.compose.project.config_files":"/srv/shop/compose.yaml""#.to_string(),
        r#""com.docker.compose.project.working_dir":"/srv/shop""#.to_string(),
        format!(r#""com.docker.compose.service":"{service}""#),
        r#""com.docker.compose.version":"2.29.7""#.to_string(),
        r#""org.opencontainers.image.source":"https://github.com/acme/shop""#.to_string(),
        format!(
            r#""org.opencontainers.image.revision":"{}""#,
            &hex64(container + 200)[..40]
        ),
        r#""org.opencontainers.image.vendor":"ACME Corp""#.to_string(),
        r#""maintainer":"Platform Team <platform@acme.example>""#.to_string(),
        r#""traefik.enable":"true""#.to_string(),
        format!(r#""traefik.http.routers.{service}.rule":"Host(`{service}.shop.acme.example`)""#),
    ];
    let head = format!(
        r#""status":"{action}","id":"{id}","from":"{image}","Type":"container","Action":"{action}","Actor":{{"ID":"{id}","Attributes":{{"#
    );
    let tail = format!(
        r#""image":"{image}","name":"shop-{service}-{container}"}}}},"scope":"local","time":{secs},"timeNano":{nanos}"#
    );
    let mut out = head;
    let mut len = out.len() + tail.len();
    for label in labels.drain(..) {
        if len + label.len() + 1 > target {
            break;
        }
        len += label.len() + 1;
        out.push_str(&label);
        out.push(',');
    }
    out.push_str(&tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_fields_are_json_near_the_size_and_vary() {
        for target in [300, 600, 900] {
            let a = docker_fields(0, 1, target);
            let b = docker_fields(0, 2, target);
            assert_ne!(a, b);
            let v: serde_json::Value = serde_json::from_str(&format!("{{{a}}}")).expect("JSON");
            assert_eq!(v["Type"], "container");
            assert!(
                a.len() <= target.max(420) && a.len() + 120 > target,
                "{target}: {}",
                a.len()
            );
            for key in [r#""t":"#, r#""n":"#, r#""p":"#] {
                assert!(
                    !a.contains(key),
                    "{key} would be read as the tool's own field"
                );
            }
        }
    }
}
