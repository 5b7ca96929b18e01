//! The `eventhub` binary: parses the command line and runs a subcommand.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use eventhub::cli::{settings, Cli, Command, ServerArgs};
use eventhub::config::{Config, DEFAULT_CONFIG};
use eventhub::echo::Echo;
use eventhub::runtime;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
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
