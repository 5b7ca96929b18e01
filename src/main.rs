//! The `eventhub` binary: parses the command line and runs a subcommand.
//!
//! The top layer: it may import everything below (cli, config, hub, api,
//! echo, sources, runtime); nothing imports it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use eventhub::api::HubApp;
use eventhub::cli::{settings, Cli, Command, ServerArgs};
use eventhub::config::{Config, DEFAULT_CONFIG};
use eventhub::echo::Echo;
use eventhub::hub::auth::{generate_token, Auth};
use eventhub::hub::channels::Channels;
use eventhub::hub::Shared;
use eventhub::runtime;
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
            let settings = settings(&config, config.echo.max_message_bytes);
            let workers = settings.workers;
            let result = runtime::serve(settings, Echo::new, |addr| {
                println!("eventhub echo listening on ws://{addr} ({workers} workers)");
                let _ = std::io::stdout().flush();
            });
            finish(result)
        }
    }
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
    let settings = settings(&config, config.limits.max_message_bytes);
    let workers = settings.workers;
    let shared = match Shared::new(&config, auth, workers) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("eventhub: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    if !config.docker.socket.is_empty() {
        let socket = std::path::PathBuf::from(&config.docker.socket);
        if let Err(e) = eventhub::sources::docker_engine::spawn(socket, shared.clone()) {
            eprintln!("eventhub: cannot start the Docker source: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = runtime::serve(
        settings,
        move |info| HubApp::new(info, shared.clone()),
        move |addr| {
            announce(addr, workers, generated.as_deref().map(String::as_str));
            // Printed once; wiped (Zeroizing) as it drops.
            generated.take();
        },
    );
    finish(result)
}

/// Tells the user how to connect.
///
/// A generated token is written in one message built in a buffer that is
/// wiped when dropped; a write that ends with a newline goes past stdout's
/// line buffer straight to the descriptor, so no copy stays there either.
fn announce(addr: SocketAddr, workers: usize, token: Option<&str>) {
    use std::fmt::Write as _;
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "eventhub listening on http://{addr} ({workers} workers)"
    );
    let _ = out.flush();
    let mut msg = Zeroizing::new(String::with_capacity(2048));
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
    let _ = writeln!(
        msg,
        "subscribe:\n  wscat -H \"Authorization: Bearer {token}\" -c \"ws://{host}/api/v1/ws/subscribe?event_types=pdfm,health,orchestrator\"\n  websocat -H=\"Authorization: Bearer {token}\" \"ws://{host}/v1/ws/subscribe?event_types=pdfm\"\npublish:\n  curl -H \"Authorization: Bearer {token}\" -d '{{\"event_type\":\"pdfm\",\"message\":\"VM_STATE_CHANGED\",\"body\":{{\"previous_state\":\"suspended\",\"current_state\":\"resuming\"}}}}' http://{host}/v1/events"
    );
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
