//! The command line: subcommands, their flags, and how flags layer over
//! the config file.
//!
//! Precedence, lowest first: the embedded default config, `--config FILE`,
//! then flags. Usage errors exit with code 2 (clap's convention), and so do
//! config errors, with a message naming the key.
//!
//! Layer: beside `main`, over the config and the runtime's [`Settings`],
//! and the client's options (`events`, `publish`): the only place that
//! knows clap (the config's types do not derive its traits; [`DriverFlag`]
//! and [`FormatFlag`] are the flags' own types).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::connect::{Credential, Hub};
use crate::client::events::{parse_filter, Events, Source};
use crate::client::format::{parse_time, Format};
use crate::client::publish::{parse_body, Input, Publish};
use crate::client::ClientError;
use crate::config::{Config, ConfigError, DriverChoice};
use crate::runtime::Settings;

#[derive(Debug, Parser)]
#[command(name = "eventhub", version, about = "A real-time WebSocket event hub", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the event hub: the Events Hub API, publishing, fan-out.
    Serve(ServerArgs),
    /// Echo every WebSocket message back (the conformance target for
    /// Autobahn|Testsuite); uses the hub's own server machinery.
    Echo(ServerArgs),
    /// Print the embedded default configuration, documented key by key.
    DefaultConfig,
    /// Make (or reuse) a development CA and a certificate for localhost,
    /// 127.0.0.1 and ::1, for trying wss; prints how to use and trust it.
    DevCert(DevCertArgs),
    /// Tail a hub's events, one per line, as `docker events` does:
    /// Events Hub channels (--channel; every channel by default) or
    /// Docker's container events (--filter). Reconnects and resumes by
    /// itself; Ctrl-C ends it.
    Events(EventsArgs),
    /// Publish events from the arguments (--channel, --message, --body)
    /// or stdin (one JSON event or array per line); prints each accepted
    /// event's seq and id, and exits 1 if the hub refused any.
    Publish(PublishArgs),
}

/// Where the hub is and who the client is to it (`events`, `publish`).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The hub: http, https, ws or wss://HOST[:PORT][/PREFIX] (https and
    /// wss use TLS).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token (sent in the Authorization header, never in the URL);
    /// else EVENTHUB_TOKEN, else --token-file.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "EVENTHUB_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A file whose first line is the token (kept out of `ps` and the
    /// environment).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// API key instead of a token (sent in the X-Api-Key header, never in
    /// the URL); else EVENTHUB_API_KEY, else --api-key-file.
    #[arg(
        long,
        value_name = "KEY",
        env = "EVENTHUB_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// A file whose first line is the API key.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for https/wss, e.g. the dev-cert
    /// ca.pem (default: /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl ClientArgs {
    fn hub(&self) -> Result<Hub, ClientError> {
        let credential = Credential::from_flags(
            self.token.clone(),
            self.token_file.as_deref(),
            self.api_key.clone(),
            self.api_key_file.as_deref(),
        )?;
        Hub::new(&self.url, credential, self.ca.as_deref())
    }
}

/// The `--format` flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FormatFlag {
    /// One readable line per event: time, channel (or type), message (or
    /// action), key fields.
    #[default]
    Text,
    /// Each event's JSON as the hub sent it, one per line.
    Json,
}

/// Flags of `eventhub events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Events Hub channels to follow (repeatable or comma-separated), from
    /// /v1/ws/subscribe; default: every channel (event_types=*).
    #[arg(long, value_name = "CHANNEL", value_delimiter = ',')]
    pub channel: Vec<String>,
    /// A Docker filter (repeatable): container=NAME|ID, image=IMAGE,
    /// event=start|stop, label=KEY[=VALUE], type=container; follows
    /// /events/ws (Docker-shaped container events).
    #[arg(long, short = 'f', value_name = "KEY=VALUE", value_parser = parse_filter, conflicts_with = "channel")]
    pub filter: Vec<(String, String)>,
    /// Docker's container events (/events/ws) even without --filter.
    #[arg(long, conflicts_with = "channel")]
    pub docker: bool,
    /// Show events since this time: Unix seconds, RFC 3339, or a duration
    /// ago (10m, 1h30m), as docker events takes it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Stop after this time (same forms as --since); exit 0.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Resume after this hub seq (a 1013 close reason names it).
    #[arg(long, value_name = "SEQ")]
    pub since_seq: Option<u64>,
    /// The hub run --since-seq belongs to (16 hex characters).
    #[arg(long, value_name = "EPOCH", requires = "since_seq")]
    pub epoch: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatFlag,
}

impl EventsArgs {
    /// The client's options.
    pub fn options(&self) -> Result<Events, ClientError> {
        let docker = self.docker || !self.filter.is_empty();
        Ok(Events {
            hub: self.client.hub()?,
            source: if docker {
                Source::Docker(self.filter.clone())
            } else {
                Source::Channels(self.channel.clone())
            },
            since: self.since,
            until: self.until,
            since_seq: self.since_seq,
            epoch: self.epoch.clone(),
            format: match self.format {
                FormatFlag::Text => Format::Text,
                FormatFlag::Json => Format::Json,
            },
        })
    }
}

/// Flags of `eventhub publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The event's channel (event_type); with stdin, the channel of
    /// events that name none.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// The event's message; with --message or --body, the arguments are
    /// the event, else stdin is read.
    #[arg(long, value_name = "TEXT", requires = "channel")]
    pub message: Option<String>,
    /// The event's body: any JSON, kept as written.
    #[arg(long, value_name = "JSON", value_parser = parse_body, requires = "channel")]
    pub body: Option<String>,
}

impl PublishArgs {
    /// The client's options.
    pub fn options(&self) -> Result<Publish, ClientError> {
        let input = match (&self.channel, &self.message, &self.body) {
            (Some(channel), message, body) if message.is_some() || body.is_some() => Input::Event {
                channel: channel.clone(),
                message: message.clone(),
                body: body.clone(),
            },
            (channel, ..) => Input::Stdin {
                channel: channel.clone(),
            },
        };
        Ok(Publish {
            hub: self.client.hub()?,
            input,
        })
    }
}

/// Flags of `eventhub dev-cert`.
#[derive(Debug, Clone, Args)]
pub struct DevCertArgs {
    /// Directory for ca.pem, cert.pem and key.pem.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Where development certificates live unless told otherwise:
/// `$EVENTHUB_DEV_CERT_DIR`, else `$XDG_DATA_HOME/eventhub/dev-cert`, else
/// `~/.local/share/eventhub/dev-cert`, else `./eventhub-dev-cert`.
pub fn dev_cert_dir(out: Option<&std::path::Path>) -> PathBuf {
    if let Some(dir) = out {
        return dir.to_path_buf();
    }
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("EVENTHUB_DEV_CERT_DIR") {
        return dir;
    }
    env("XDG_DATA_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/share")))
        .map(|d| d.join("eventhub/dev-cert"))
        .unwrap_or_else(|| PathBuf::from("eventhub-dev-cert"))
}

/// Flags every serving subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML config file, layered over the embedded default.
    #[arg(long, short = 'c', value_name = "FILE", env = "EVENTHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides server.listen), e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Worker threads, one per core by default (overrides server.workers).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// io driver (overrides server.driver; EVENTHUB_DRIVER overrides both).
    #[arg(long, value_enum, value_name = "DRIVER")]
    pub driver: Option<DriverFlag>,
    /// Follow this Docker Engine socket's container events (overrides
    /// docker.socket; `serve` only), e.g. /var/run/docker.sock.
    #[arg(long, value_name = "PATH")]
    pub docker_socket: Option<String>,
    /// Serve wss with a development certificate (made by `eventhub
    /// dev-cert` if there is none yet; sets tls.cert and tls.key).
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Serve wss on this address, beside plain ws (overrides tls.listen).
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// Join a cluster: NATS servers (comma-separated URLs) whose JetStream
    /// stream is the event log (sets cluster.nats_url; `serve` only).
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub nats_url: Vec<String>,
}

/// The `--driver` flag's values (the config's [`DriverChoice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverFlag {
    /// io_uring when the kernel offers it, else epoll.
    Auto,
    /// io_uring only (start-up fails without it).
    IoUring,
    /// epoll only.
    Epoll,
}

impl From<DriverFlag> for DriverChoice {
    fn from(flag: DriverFlag) -> DriverChoice {
        match flag {
            DriverFlag::Auto => DriverChoice::Auto,
            DriverFlag::IoUring => DriverChoice::IoUring,
            DriverFlag::Epoll => DriverChoice::Epoll,
        }
    }
}

impl ServerArgs {
    /// The config file with the flags applied, checked.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(workers) = self.workers {
            config.server.workers = workers;
        }
        if let Some(driver) = self.driver {
            config.server.driver = driver.into();
        }
        if let Some(socket) = &self.docker_socket {
            config.docker.socket = socket.clone();
        }
        if let Some(addr) = self.tls_listen {
            config.tls.listen = addr.to_string();
        }
        if !self.nats_url.is_empty() {
            config.cluster.nats_url = self.nats_url.clone();
        }
        if self.tls_self_signed {
            let dev = crate::tls::ensure_dev_cert(&dev_cert_dir(None)).map_err(|e| {
                ConfigError::Invalid {
                    key: "--tls-self-signed",
                    reason: e.to_string(),
                }
            })?;
            config.tls.cert = dev.cert.display().to_string();
            config.tls.key = dev.key.display().to_string();
        }
        config.check()?;
        Ok(config)
    }
}

/// The runtime settings of a config, with the message limit the mode needs.
pub fn settings(config: &Config, max_message_bytes: u64) -> Settings {
    Settings {
        listen: config.server.listen,
        workers: config.worker_count(),
        driver: config.server.driver,
        pin_workers: config.server.pin_workers,
        balance_connections: config.server.balance_connections,
        limits: config.limits.clone(),
        max_message_bytes,
        max_body_bytes: config.limits.max_body_bytes,
        trusted_proxies: config
            .trusted_proxies()
            .expect("checked when the config was loaded"),
        tls: None,
        deflate: config.compression.enabled,
    }
}
