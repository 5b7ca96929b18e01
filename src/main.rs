//! The `eventhub` binary: parses the command line and runs a subcommand.
//!
//! The top layer: it may import everything below (cli, config, hub, api,
//! echo, sources, runtime); nothing imports it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use eventhub::api::{ApiSettings, HubApp};
use eventhub::cli::{dev_cert_dir, settings, Cli, Command, DevCertArgs, ServerArgs};
use eventhub::config::{Config, DEFAULT_CONFIG};
use eventhub::echo::Echo;
use eventhub::hub::auth::{generate_token, Auth};
use eventhub::hub::channels::Channels;
use eventhub::hub::Shared;
use eventhub::runtime::{self, Bound, TlsSettings};
use eventhub::tls;
use zeroize::Zeroizing;

mod wiping_alloc;

use wiping_alloc::{wiping, WipingAlloc};

#[global_allocator]
static GLOBAL: WipingAlloc = WipingAlloc(mimalloc::MiMalloc);

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::raise_nofile_limit();
    match cli.command {
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve(&args),
        Command::Echo(args) => {
            let Some(config) = load(&args) else {
                return ExitCode::from(2);
            };
            let mut settings = settings(&config, config.echo.max_message_bytes);
            let Some(tls) = tls_settings(&config) else {
                return ExitCode::from(2);
            };
            settings.tls = tls;
            let workers = settings.workers;
            let level = config.compression.level;
            let echo = move |info| Echo::new(info, level);
            let result = runtime::serve(settings, echo, |bound| {
                let at = addresses(bound, "ws", "wss");
                println!("eventhub echo listening on {at} ({workers} workers)");
                let _ = std::io::stdout().flush();
            });
            finish(result)
        }
        Command::DevCert(args) => dev_cert(&args),
        Command::Events(args) => eventhub::client::exit(
            "events",
            args.options()
                .and_then(|o| eventhub::client::events::run(&o)),
        ),
        Command::Publish(args) => eventhub::client::exit(
            "publish",
            args.options()
                .and_then(|o| eventhub::client::publish::run(&o)),
        ),
    }
}

/// `eventhub dev-cert`: makes or reuses the development CA and
/// certificate, and says how to use them.
fn dev_cert(args: &DevCertArgs) -> ExitCode {
    let dir = dev_cert_dir(args.out.as_deref());
    match tls::ensure_dev_cert(&dir) {
        Ok(dev) => {
            let made = if dev.generated { "made" } else { "reusing" };
            println!(
                "{made} a development CA and certificate (localhost, 127.0.0.1, ::1) in {}\n\nserve it:\n  [tls]\n  cert = \"{}\"\n  key = \"{}\"\n(or: eventhub serve --tls-self-signed)\n\n{}",
                dir.display(),
                dev.cert.display(),
                dev.key.display(),
                trust_hint(&dev.ca)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eventhub: {e}");
            ExitCode::from(2)
        }
    }
}

/// How clients trust the development CA.
fn trust_hint(ca: &std::path::Path) -> String {
    let ca = ca.display();
    format!(
        "trust its CA ({ca}), not the server certificate:\n  wscat --ca {ca} -c wss://localhost:PORT/...\n  SSL_CERT_FILE={ca} websocat wss://localhost:PORT/...\n  curl --cacert {ca} https://localhost:PORT/...\n  python: ssl.create_default_context(cafile=\"{ca}\")\n  system-wide (Debian): cp {ca} /usr/local/share/ca-certificates/eventhub-dev.crt && update-ca-certificates"
    )
}

/// `[tls]` loaded and checked, and the reload thread started (which also
/// keeps SIGHUP from ending a hub without TLS); `None` (reported) when the
/// files are bad.
fn tls_settings(config: &Config) -> Option<Option<TlsSettings>> {
    let setup = if config.tls.enabled() {
        match tls::setup(&config.tls) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("eventhub: tls: {e}");
                return None;
            }
        }
    } else {
        None
    };
    let check = std::time::Duration::from_secs(config.tls.reload_check_s);
    if let Err(e) = tls::spawn_reloader(setup.as_ref().map(|s| s.store.clone()), check) {
        eprintln!("eventhub: cannot start the certificate reloader: {e}");
        return None;
    }
    Some(setup.map(|s| {
        TlsSettings {
            server_config: s.server_config,
            store: s.store,
            listen: config
                .tls
                .listen_addr()
                .expect("checked when the config was loaded"),
            ktls: config.tls.ktls,
        }
    }))
}

/// A generated admin token, wiped when dropped.
type Generated = Option<Zeroizing<String>>;

/// The config and its principals (over its channels) with their secrets hashed
/// and the plaintext gone (the README's promise: digests only); a token is
/// generated when no principal is configured. `None` (reported) on a bad
/// config.
fn secure_config(args: &ServerArgs) -> Option<(Config, Auth, Generated)> {
    let mut config = load(args)?;
    let channels = match Channels::new(&config.hub.channels) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eventhub: invalid config: `hub.channels` {e}");
            return None;
        }
    };
    let (auth, generated) = if config.principals.is_empty() {
        let token = Zeroizing::new(generate_token());
        (Auth::single_admin(&token, &channels), Some(token))
    } else {
        match Auth::from_config(&config.principals, &channels) {
            Ok(a) => (a, None),
            Err(e) => {
                eprintln!("eventhub: invalid config: {e}");
                return None;
            }
        }
    };
    config.forget_secrets();
    Some((config, auth, generated))
}

/// `eventhub serve`: the hub.
fn serve(args: &ServerArgs) -> ExitCode {
    // Every buffer freed while the config is read and hashed is wiped
    // (the parser's copies of the secrets too).
    let Some((config, auth, mut generated)) = wiping(|| secure_config(args)) else {
        return ExitCode::from(2);
    };
    let mut settings = settings(&config, config.limits.max_message_bytes);
    let Some(tls) = tls_settings(&config) else {
        return ExitCode::from(2);
    };
    settings.tls = tls;
    let workers = settings.workers;
    let dev_ca = args
        .tls_self_signed
        .then(|| dev_cert_dir(None).join("ca.pem"));
    let shared = match Shared::new(&config, auth, workers) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("eventhub: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    if config.cluster.enabled() {
        if let Err(e) = eventhub::cluster::start(&config.cluster, shared.clone()) {
            eprintln!("eventhub: cluster: {e}");
            // Exit code 2 (not restarted by the unit) for a config at
            // fault; 1 (restarted) while NATS is only unreachable.
            return if e.is_config() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            };
        }
    }
    if !config.docker.socket.is_empty() {
        let socket = std::path::PathBuf::from(&config.docker.socket);
        if let Err(e) = eventhub::sources::docker_engine::spawn(socket, shared.clone()) {
            eprintln!("eventhub: cannot start the Docker source: {e}");
            return ExitCode::FAILURE;
        }
    }
    let api = Arc::new(ApiSettings {
        ui: config.ui.enabled,
        allowed_origins: config
            .allowed_origins()
            .expect("server.allowed_origins is checked at load"),
    });
    let ui = config.ui.enabled;
    let result = runtime::serve(
        settings,
        move |info| HubApp::new(info, shared.clone(), api.clone()),
        move |bound| {
            announce(
                bound,
                workers,
                generated.as_deref().map(String::as_str),
                dev_ca.as_deref(),
                ui,
            );
            // Printed once; wiped (Zeroizing) as it drops.
            generated.take();
        },
    );
    finish(result)
}

/// The bound addresses as URLs for the first line on stdout (one line, so
/// that a script reading it gets both): `http://A`, `https://B`, or
/// `http://A and https://B`.
fn addresses(bound: Bound, plain: &str, tls: &str) -> String {
    let urls: Vec<String> = [(plain, bound.plain), (tls, bound.tls)]
        .into_iter()
        .filter_map(|(scheme, addr)| addr.map(|a| format!("{scheme}://{a}")))
        .collect();
    urls.join(" and ")
}

/// Tells the user how to connect.
///
/// A generated token is written in one message built in a buffer that is
/// wiped when dropped; a write that ends with a newline goes past stdout's
/// line buffer straight to the descriptor, so no copy stays there either.
fn announce(
    bound: Bound,
    workers: usize,
    token: Option<&str>,
    dev_ca: Option<&std::path::Path>,
    ui: bool,
) {
    use std::fmt::Write as _;
    let local = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        }
    };
    let mut out = std::io::stdout().lock();
    let at = addresses(bound, "http", "https");
    let _ = writeln!(out, "eventhub listening on {at} ({workers} workers)");
    let _ = out.flush();
    let mut msg = Zeroizing::new(String::with_capacity(4096));
    let token = match token {
        Some(t) => {
            let _ = writeln!(
                msg,
                "no principals configured: generated an admin token for this run:\n\n  {t}\n"
            );
            t
        }
        None => "<TOKEN>",
    };
    // The plain address when there is one; else wss, with the dev CA.
    let (ws, http, ca_flag, curl_ca) = match (bound.plain, bound.tls) {
        (Some(addr), _) => (
            format!("ws://{}", local(addr)),
            format!("http://{}", local(addr)),
            String::new(),
            String::new(),
        ),
        (None, Some(addr)) => {
            let host = match dev_ca {
                Some(_) => format!("localhost:{}", addr.port()),
                None => local(addr).to_string(),
            };
            let ca = dev_ca.map(|p| p.display().to_string());
            (
                format!("wss://{host}"),
                format!("https://{host}"),
                ca.as_ref()
                    .map(|c| format!(" --ca {c}"))
                    .unwrap_or_default(),
                ca.as_ref()
                    .map(|c| format!(" --cacert {c}"))
                    .unwrap_or_default(),
            )
        }
        (None, None) => return,
    };
    let _ = writeln!(
        msg,
        "subscribe:\n  wscat{ca_flag} -H \"Authorization: Bearer {token}\" -c \"{ws}/v1/ws/subscribe?event_types=pdfm,health,orchestrator\"\npublish:\n  curl{curl_ca} -H \"Authorization: Bearer {token}\" -d '{{\"event_type\":\"pdfm\",\"message\":\"VM_STATE_CHANGED\",\"body\":{{\"previous_state\":\"suspended\",\"current_state\":\"resuming\"}}}}' {http}/v1/events"
    );
    let _ = writeln!(
        msg,
        "tail (and publish) with the hub's own client:\n  eventhub events --url {http}{ca_flag} --token {token} --channel pdfm,health,orchestrator"
    );
    if ui {
        let _ = writeln!(
            msg,
            "look at it in a browser (sign in with the token):\n  {http}/ui"
        );
    }
    if let Some(ca) = dev_ca {
        let _ = writeln!(msg, "\n{}", trust_hint(ca));
    }
    let _ = out.write_all(msg.as_bytes());
    let _ = out.flush();
}

/// Loads the config and sets up logging; prints the error and returns
/// `None` when the config is bad.
fn load(args: &ServerArgs) -> Option<Config> {
    match args.load() {
        Ok(config) => {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.server.log.clone());
            env_logger::Builder::new()
                .parse_filters(&filter)
                .format_target(false)
                .init();
            Some(config)
        }
        Err(e) => {
            eprintln!("eventhub: {e}");
            None
        }
    }
}

fn finish(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventhub: {e}");
            ExitCode::FAILURE
        }
    }
}
