//! Configuration: one TOML file with an embedded default, flags on top.
//!
//! Every key has a default (the embedded file, `eventhub default-config`),
//! so a config file only names what it changes. Unknown keys are errors, not
//! silently ignored, and every error names the key: a typo in production
//! should stop the server at start-up, not change its behaviour quietly.
//!
//! Layer: the bottom, beside the protocol crate: the runtime and everything
//! above read it. It imports [`crate::channel_names`] (the rule a
//! channel name follows), never the hub: the hub turns what is written
//! here (channel names, [`PrincipalConfig`]) into its own types. Beside it,
//! the protocol crate's CIDR syntax, for `server.trusted_proxies`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use crate::proto::forwarded::{Cidr, CidrError};

/// The default configuration, documented key by key.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config{}: {message}", origin.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Parse {
        origin: Option<PathBuf>,
        message: String,
    },
    #[error("invalid config: `{key}` {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Which io driver each worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverChoice {
    /// io_uring when the kernel offers it, else epoll.
    Auto,
    /// io_uring only (start-up fails without it).
    IoUring,
    /// epoll only.
    Epoll,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub echo: EchoConfig,
    pub hub: HubConfig,
    pub docker: DockerConfig,
    pub tls: TlsConfig,
    pub cluster: ClusterConfig,
    pub compression: CompressionConfig,
    pub ui: UiConfig,
    /// Who may connect; none means a generated admin token at start-up.
    #[serde(default)]
    pub principals: Vec<PrincipalConfig>,
}

/// A principal as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub name: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_sha256: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_key_sha256: Option<String>,
    /// Authenticates as this principal a wss client whose certificate
    /// (verified against `tls.client_ca`) has this subject common name.
    #[serde(default)]
    pub client_cert_cn: Option<String>,
    /// Channels it may subscribe to; `*` for all.
    #[serde(default = "all_channels")]
    pub subscribe: Vec<String>,
    /// Channels it may publish to; `*` for all.
    #[serde(default)]
    pub publish: Vec<String>,
    /// May read `/metrics`.
    #[serde(default)]
    pub admin: bool,
}

fn all_channels() -> Vec<String> {
    vec!["*".to_string()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// The engine's API socket; empty = no Docker source.
    pub socket: String,
}

/// `[tls]`: wss served by the hub itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the certificate, then its chain; empty = no TLS.
    pub cert: String,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Where wss is served: empty = on `server.listen`, instead of plain
    /// ws; an address = there, beside plain ws on `server.listen`.
    pub listen: String,
    /// Oldest protocol version accepted.
    pub min_version: TlsVersion,
    /// PEM file of the CAs whose client certificates are accepted; empty =
    /// no client certificates asked for.
    pub client_ca: String,
    /// With `client_ca`: refuse a handshake without a client certificate.
    pub client_cert_required: bool,
    /// Kernel TLS: "auto" probes for it, "off" keeps TLS in user space.
    pub ktls: KtlsChoice,
    /// Seconds between checks of the files for changes (0 = SIGHUP only).
    pub reload_check_s: u64,
}

/// `tls.min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// `tls.ktls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KtlsChoice {
    Auto,
    Off,
}

impl TlsConfig {
    /// Whether TLS is configured at all.
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty()
    }

    /// `tls.listen`, parsed: `None` = wss on `server.listen`.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        match self.listen.as_str() {
            "" => Ok(None),
            s => s.parse().map(Some),
        }
    }
}

/// `[compression]`: permessage-deflate (RFC 7692).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// Accept clients' permessage-deflate offers.
    pub enabled: bool,
    /// Events smaller than this many bytes go uncompressed.
    pub min_bytes: usize,
    /// zlib level, 1 (fastest) to 9 (smallest).
    pub level: u32,
}

/// `[ui]`: the web view at `/ui` and the tickets its sockets use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the page.
    pub enabled: bool,
    /// Seconds a ticket from `POST /v1/tickets` stays good.
    pub ticket_ttl_s: u64,
}

/// Which browser origins may use the API besides the hub's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `"*"`: any origin.
    Any,
    /// These, and the hub's own.
    Listed(Vec<crate::proto::origin::Origin>),
}

/// `[cluster]`: several hubs as one, over a NATS JetStream stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS servers (`nats://host:port`, `tls://host:port`); empty = no
    /// cluster (the in-process sequencer).
    #[serde(deserialize_with = "one_or_many")]
    pub nats_url: Vec<String>,
    /// The stream that is the event log.
    pub stream: String,
    /// Events go to `<subject_prefix>.<channel>`.
    pub subject_prefix: String,
    /// Copies JetStream keeps of each event (1, 3 or 5 in practice).
    pub replicas: usize,
    pub storage: ClusterStorage,
    /// Seconds an event stays in the stream (0 = no age limit).
    pub max_age_s: u64,
    /// Bytes the stream may hold, oldest out first (0 = no limit).
    pub max_bytes: u64,
    /// Seconds within which a publish with an event id already seen is a
    /// duplicate.
    pub duplicate_window_s: u64,
    /// Publishes sent and not yet acknowledged by the stream, at most.
    pub max_acks_pending: usize,
    /// Seconds allowed for the first connection to NATS at start-up.
    pub connect_timeout_s: u64,
    /// Credentials: user and password, or a token, or an NKey seed file,
    /// or a `.creds` file.
    pub user: String,
    pub password: String,
    pub token: String,
    pub nkey_seed_file: String,
    pub creds_file: String,
    /// TLS to NATS: the CA to verify the servers with, and a client pair.
    pub tls_ca: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// Require TLS even for `nats://` URLs.
    pub tls_required: bool,
}

/// `cluster.storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterStorage {
    File,
    Memory,
}

impl ClusterConfig {
    /// Whether a cluster is configured.
    pub fn enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.is_empty() => Vec::new(),
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    pub channels: Vec<String>,
    pub replay_size: usize,
    /// Bytes the replay ring's frames may take at most.
    pub replay_max_bytes: usize,
    pub max_events_per_request: usize,
    pub max_connections_per_ip: u32,
    /// How long a probed connection has to answer before it is closed
    /// (milliseconds; 0 = no probe).
    pub conflict_probe_ms: u64,
    /// Events waiting to be fanned out on one core past which publishers
    /// are slowed (POST: 503; publisher sockets: not read).
    pub max_pending_events: usize,
    pub connect_rate_per_ip: f64,
    pub connect_burst_per_ip: u32,
    /// Failed authentications an address may make in a burst; past it,
    /// every request of that address needing credentials is a 429.
    pub auth_failures_per_ip: u32,
    /// Failed authentications forgiven per second per address.
    pub auth_failure_refill_per_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub driver: DriverChoice,
    pub pin_workers: bool,
    pub balance_connections: bool,
    pub log: String,
    /// Peers (CIDR blocks) whose `X-Forwarded-For` or PROXY header names
    /// the client; empty = none.
    pub trusted_proxies: Vec<String>,
    /// Origins (besides the hub's own) whose browser pages may use the
    /// API; `"*"` = any.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub handshake_timeout_ms: u64,
    pub max_message_bytes: u64,
    pub idle_timeout_s: u64,
    pub ping_interval_s: u64,
    pub write_timeout_s: u64,
    pub close_timeout_s: u64,
    pub shutdown_timeout_s: u64,
    pub send_queue_bytes: usize,
    /// How long a core holds its writes once frames are queued, to send
    /// what arrives meanwhile in the same writes; 0 = write at once.
    pub write_coalesce_us: u64,
    pub socket_send_buffer_bytes: usize,
    pub max_body_bytes: usize,
    pub max_connection_age_s: u64,
    /// Connections still in their HTTP phase (head not yet answered or
    /// upgraded) per peer address; past it, 429.
    pub max_pre_auth_per_ip: u32,
    /// Connections still in their HTTP phase, all peers together; past
    /// it, 503.
    pub max_pre_auth_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoConfig {
    pub max_message_bytes: u64,
}

impl LimitsConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s)
    }
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_s)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_s)
    }
    pub fn close_timeout(&self) -> Duration {
        Duration::from_secs(self.close_timeout_s)
    }
    pub fn max_connection_age(&self) -> Duration {
        Duration::from_secs(self.max_connection_age_s)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_s)
    }
}

impl Config {
    /// The embedded default.
    pub fn default_config() -> Config {
        Config::from_toml(DEFAULT_CONFIG, None).expect("the embedded default config is valid")
    }

    /// Loads `path` over the embedded default, or the default alone.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default_config());
        };
        // The file's text holds any plaintext secrets: wiped once parsed.
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
            );
        Config::from_toml(&text, Some(path))
    }

    /// Parses `text` layered over the embedded default, then checks it.
    pub fn from_toml(text: &str, origin: Option<&Path>) -> Result<Config, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            origin: origin.map(Path::to_path_buf),
            message: e.to_string().trim_end().replace('\n', " "),
        };
        let mut merged: toml::Table = toml::from_str(DEFAULT_CONFIG).map_err(parse_err)?;
        let overlay: toml::Table = toml::from_str(text).map_err(parse_err)?;
        merge(&mut merged, overlay);
        // Deserialized from a copy, so that every string of the parsed
        // tables (secrets among them) can be wiped afterwards; the copy's
        // strings move into the config.
        let mut merged = toml::Value::Table(merged);
        let parsed = merged.clone().try_into().map_err(parse_err);
        wipe(&mut merged);
        let config: Config = parsed?;
        config.check()?;
        Ok(config)
    }

    /// Wipes the plaintext secrets of the principals (`token`, `api_key`)
    /// once they are hashed, so that the process keeps their digests only.
    pub fn forget_secrets(&mut self) {
        for p in &mut self.principals {
            p.token.zeroize();
            p.api_key.zeroize();
        }
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        let l = &self.limits;
        if self.server.workers > 1024 {
            return invalid(
                "server.workers",
                "must be at most 1024 (0 means one per core)",
            );
        }
        if l.max_head_bytes < 256 {
            return invalid("limits.max_head_bytes", "must be at least 256");
        }
        if l.max_headers == 0 {
            return invalid("limits.max_headers", "must be at least 1");
        }
        if l.max_message_bytes == 0 {
            return invalid("limits.max_message_bytes", "must be at least 1");
        }
        if let Err(e) = crate::channel_names::check(&self.hub.channels) {
            return invalid("hub.channels", &e.to_string());
        }
        if self.hub.replay_max_bytes < 1024 {
            return invalid(
                "hub.replay_max_bytes",
                "must be at least 1024 (set hub.replay_size = 0 to keep no replay ring)",
            );
        }
        if self.hub.max_pending_events == 0 {
            return invalid("hub.max_pending_events", "must be at least 1");
        }
        if self.hub.max_events_per_request == 0 {
            return invalid("hub.max_events_per_request", "must be at least 1");
        }
        if !(self.hub.connect_rate_per_ip >= 0.0 && self.hub.connect_rate_per_ip.is_finite()) {
            return invalid(
                "hub.connect_rate_per_ip",
                "must be a number >= 0 (0 = unlimited)",
            );
        }
        if self.hub.auth_failures_per_ip == 0 {
            return invalid("hub.auth_failures_per_ip", "must be at least 1");
        }
        let refill = self.hub.auth_failure_refill_per_s;
        if !(refill > 0.0 && refill.is_finite()) {
            return invalid("hub.auth_failure_refill_per_s", "must be a number > 0");
        }
        if l.max_pre_auth_connections == 0 {
            return invalid("limits.max_pre_auth_connections", "must be at least 1");
        }
        if l.max_pre_auth_per_ip == 0 || l.max_pre_auth_per_ip > l.max_pre_auth_connections {
            return invalid(
                "limits.max_pre_auth_per_ip",
                "must be at least 1 and at most limits.max_pre_auth_connections",
            );
        }
        if let Err(e) = self.trusted_proxies() {
            return invalid("server.trusted_proxies", &e.to_string());
        }
        if let Err(e) = self.allowed_origins() {
            return invalid("server.allowed_origins", &e.to_string());
        }
        if self.ui.ticket_ttl_s == 0 || self.ui.ticket_ttl_s > 3600 {
            return invalid("ui.ticket_ttl_s", "must be between 1 and 3600");
        }
        if self.echo.max_message_bytes == 0 {
            return invalid("echo.max_message_bytes", "must be at least 1");
        }
        if l.ping_interval_s == 0 || l.ping_interval_s >= l.idle_timeout_s {
            return invalid(
                "limits.ping_interval_s",
                "must be at least 1 and below limits.idle_timeout_s",
            );
        }
        if l.handshake_timeout_ms == 0 {
            return invalid("limits.handshake_timeout_ms", "must be at least 1");
        }
        if l.max_connection_age_s == 0 {
            return invalid("limits.max_connection_age_s", "must be at least 1");
        }
        if l.send_queue_bytes < 1024 {
            return invalid("limits.send_queue_bytes", "must be at least 1024");
        }
        if l.write_coalesce_us > 100_000 {
            return invalid(
                "limits.write_coalesce_us",
                "must be at most 100000 (0.1 s of added latency)",
            );
        }
        let tls = &self.tls;
        if tls.cert.is_empty() != tls.key.is_empty() {
            return invalid("tls.cert", "and tls.key must be set together");
        }
        if !tls.enabled() && (!tls.listen.is_empty() || !tls.client_ca.is_empty()) {
            return invalid("tls.cert", "must be set for tls.listen or tls.client_ca");
        }
        if tls.client_ca.is_empty() && self.principals.iter().any(|p| p.client_cert_cn.is_some()) {
            return invalid(
                "principals.client_cert_cn",
                "needs tls.client_ca (the CA that vouches for the certificates)",
            );
        }
        if tls.client_cert_required && tls.client_ca.is_empty() {
            return invalid("tls.client_cert_required", "needs tls.client_ca");
        }
        match tls.listen_addr() {
            Err(e) => return invalid("tls.listen", &format!("is not an address: {e}")),
            Ok(Some(addr)) if addr == self.server.listen && addr.port() != 0 => {
                return invalid(
                    "tls.listen",
                    "must differ from server.listen (leave it empty to serve wss there instead)",
                )
            }
            Ok(_) => {}
        }
        self.check_cluster()?;
        if !(1..=9).contains(&self.compression.level) {
            return invalid(
                "compression.level",
                "must be from 1 (fastest) to 9 (smallest)",
            );
        }
        if l.socket_send_buffer_bytes > (1 << 30) {
            return invalid(
                "limits.socket_send_buffer_bytes",
                "must be at most 1073741824 (0 leaves it to the kernel)",
            );
        }
        Ok(())
    }

    /// The rules of `[cluster]`.
    fn check_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        let c = &self.cluster;
        if !c.enabled() {
            return Ok(());
        }
        let schemes = ["nats://", "tls://", "ws://", "wss://"];
        if let Some(bad) = c
            .nats_url
            .iter()
            .find(|u| !schemes.iter().any(|s| u.starts_with(s)) && u.contains("://"))
        {
            return invalid(
                "cluster.nats_url",
                &format!("{bad:?}: use nats://HOST:PORT or tls://HOST:PORT"),
            );
        }
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token_ok(&c.stream) {
            return invalid(
                "cluster.stream",
                "must be a non-empty name of letters, digits, '_' and '-'",
            );
        }
        if !c.subject_prefix.split('.').all(token_ok) {
            return invalid(
                "cluster.subject_prefix",
                "must be dot-separated tokens of letters, digits, '_' and '-' (no wildcards)",
            );
        }
        if !(1..=5).contains(&c.replicas) {
            return invalid("cluster.replicas", "must be from 1 to 5");
        }
        if c.duplicate_window_s == 0 {
            return invalid(
                "cluster.duplicate_window_s",
                "must be at least 1 (retried publishes are told apart by it)",
            );
        }
        if c.max_age_s != 0 && c.duplicate_window_s > c.max_age_s {
            return invalid(
                "cluster.duplicate_window_s",
                "must not exceed cluster.max_age_s",
            );
        }
        if c.max_acks_pending == 0 {
            return invalid("cluster.max_acks_pending", "must be at least 1");
        }
        if c.connect_timeout_s == 0 {
            return invalid("cluster.connect_timeout_s", "must be at least 1");
        }
        if c.user.is_empty() != c.password.is_empty() {
            return invalid("cluster.user", "and cluster.password must be set together");
        }
        let ways = [
            !c.user.is_empty(),
            !c.token.is_empty(),
            !c.nkey_seed_file.is_empty(),
            !c.creds_file.is_empty(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return invalid(
                "cluster.user",
                "user/password, token, nkey_seed_file and creds_file are alternatives: set one",
            );
        }
        if c.tls_cert.is_empty() != c.tls_key.is_empty() {
            return invalid(
                "cluster.tls_cert",
                "and cluster.tls_key must be set together",
            );
        }
        Ok(())
    }

    /// `server.trusted_proxies`, parsed.
    pub fn allowed_origins(&self) -> Result<AllowedOrigins, crate::proto::origin::OriginError> {
        let listed = &self.server.allowed_origins;
        if listed.iter().any(|o| o.trim() == "*") {
            return Ok(AllowedOrigins::Any);
        }
        listed
            .iter()
            .map(|o| crate::proto::origin::Origin::parse(o))
            .collect::<Result<_, _>>()
            .map(AllowedOrigins::Listed)
    }

    pub fn trusted_proxies(&self) -> Result<Vec<Cidr>, CidrError> {
        self.server
            .trusted_proxies
            .iter()
            .map(|s| Cidr::parse(s))
            .collect()
    }

    /// The worker count, with 0 resolved to the available cores.
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Zeroes every string in a parsed TOML value.
fn wipe(value: &mut toml::Value) {
    match value {
        toml::Value::String(s) => s.zeroize(),
        toml::Value::Array(items) => items.iter_mut().for_each(wipe),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| wipe(v)),
        _ => {}
    }
}

/// Overlays `over` onto `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads() {
        let c = Config::default_config();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert!(c.echo.max_message_bytes >= 16 << 20);
    }

    #[test]
    fn file_overrides_only_what_it_names() {
        let c = Config::from_toml("[server]\nworkers = 3\n", None).unwrap();
        assert_eq!(c.server.workers, 3);
        assert_eq!(
            c.limits.idle_timeout_s,
            Config::default_config().limits.idle_timeout_s
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[server]\nworkerz = 3\n", None).unwrap_err();
        assert!(e.to_string().contains("workerz"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = Config::from_toml("[limits]\nidle_timeout_s = \"soon\"\n", None).unwrap_err();
        assert!(e.to_string().contains("idle_timeout_s"), "{e}");
    }

    #[test]
    fn inconsistent_values_name_the_key() {
        let e = Config::from_toml(
            "[limits]\nping_interval_s = 100\nidle_timeout_s = 60\n",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("limits.ping_interval_s"), "{e}");
    }

    #[test]
    fn secrets_are_forgotten_on_request() {
        let mut c = Config::from_toml(
            "[[principals]]\nname = \"p\"\ntoken = \"0123456789abcdef\"\napi_key = \"0123456789abcdef\"\n",
            None,
        )
        .unwrap();
        assert!(c.principals[0].token.is_some());
        c.forget_secrets();
        assert_eq!(c.principals[0].token, None);
        assert_eq!(c.principals[0].api_key, None);
    }

    #[test]
    fn edge_keys_are_checked() {
        for (text, key) in [
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
                "server.trusted_proxies",
            ),
            (
                "[limits]\nmax_pre_auth_per_ip = 0\n",
                "limits.max_pre_auth_per_ip",
            ),
            (
                "[limits]\nmax_pre_auth_connections = 4\nmax_pre_auth_per_ip = 5\n",
                "limits.max_pre_auth_per_ip",
            ),
            (
                "[hub]\nauth_failures_per_ip = 0\n",
                "hub.auth_failures_per_ip",
            ),
            (
                "[hub]\nauth_failure_refill_per_s = 0.0\n",
                "hub.auth_failure_refill_per_s",
            ),
        ] {
            let e = Config::from_toml(text, None).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        let c = Config::from_toml(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
            None,
        )
        .unwrap();
        assert_eq!(c.trusted_proxies().unwrap().len(), 2);
    }

    #[test]
    fn replay_max_bytes_has_a_default_and_a_floor_naming_the_key() {
        assert_eq!(Config::default_config().hub.replay_max_bytes, 64 << 20);
        let e = Config::from_toml("[hub]\nreplay_max_bytes = 10\n", None).unwrap_err();
        assert!(e.to_string().contains("hub.replay_max_bytes"), "{e}");
    }
}
