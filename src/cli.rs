//! The command line: subcommands, their flags, and how flags layer over
//! the config file.
//!
//! Precedence, lowest first: the embedded default config, `--config FILE`,
//! then flags. Usage errors exit with code 2 (clap's convention), and so do
//! config errors, with a message naming the key.
//!
//! Layer: beside `main`, over the config and the runtime's [`Settings`]:
//! the only place that knows clap (the config's types do not derive its
//! traits; [`DriverFlag`] is the flag's own type).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
