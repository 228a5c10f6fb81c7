//! The `firehose` command line: `serve`, `check-config`, `hash-password`,
//! `component check`.
//!
//! Errors end here: printed with their whole context chain (file, key,
//! listener) and a non-zero exit code.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use firehose_wasm::WasmEngine;

use crate::auth::hash_password;
use crate::broker::Running;
use crate::config::Config;

/// Firehose: a read-only-for-the-public MQTT event bus.
#[derive(Debug, Parser)]
#[command(name = "firehose", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (on the embedded default config without --config).
    Serve {
        /// A TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and exit.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Read a password (one line on stdin) and print its argon2id hash for
    /// a `[[user]]` entry's `password_hash`.
    HashPassword,
    /// Inspect WASM components.
    Component {
        #[command(subcommand)]
        command: ComponentCommand,
    },
    /// Work on policy components.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Run an ACL or transform policy against sample requests, without a
    /// broker, and print what it decides. Requests are arguments or, with
    /// none, lines on stdin:
    ///   connect [user=NAME] [listener=NAME] [id=ID]
    ///   subscribe FILTER [user=NAME]
    ///   publish TOPIC [PAYLOAD] [user=NAME] [qos=0|1|2] [retain=true]
    #[command(verbatim_doc_comment)]
    Try {
        /// The `.wasm` file.
        file: PathBuf,
        /// A config entry for the component, KEY=VALUE; VALUE is a TOML
        /// value (`["email"]`, `{ ansible = ["ansible/#"] }`, `true`) or a
        /// plain string. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Show the component's stdout and stderr (discarded by default,
        /// as in the broker).
        #[arg(long)]
        stdio: bool,
        /// Requests, one per argument (quote each).
        requests: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ComponentCommand {
    /// Print the world a `.wasm` file implements and the imports it asks
    /// for; exit non-zero if it is not a loadable Firehose component.
    Check {
        /// The `.wasm` file.
        file: PathBuf,
    },
}

/// Runs the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { file } => Config::load(&file)
            .map(|_| println!("{}: ok", file.display()))
            .map_err(anyhow::Error::from),
        Command::HashPassword => hash_password_from_stdin(),
        Command::Component {
            command: ComponentCommand::Check { file },
        } => check_component(&file),
        Command::Policy {
            command:
                PolicyCommand::Try {
                    file,
                    settings,
                    stdio,
                    requests,
                },
        } => policy_try(&file, &settings, stdio, requests),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("firehose: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::default_embedded(),
    };
    init_logging();
    match &config_path {
        Some(path) => info!(config = %path.display(), "starting firehose"),
        None => info!("starting firehose on the embedded default config"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = Running::start(&config).await?;
        serve_until_stopped(&running, config_path.as_deref()).await?;
        running.stop().await;
        Ok(())
    })
}

fn policy_try(
    file: &std::path::Path,
    settings: &[String],
    stdio: bool,
    requests: Vec<String>,
) -> anyhow::Result<()> {
    use crate::policy::trial::{Request, TrialPolicy, config_from_settings};
    use firehose_wasm::StdioMode;
    let config = config_from_settings(settings)?;
    let stdio = if stdio {
        init_logging();
        StdioMode::Log
    } else {
        StdioMode::Discard
    };
    let lines = if requests.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .context("cannot read requests from stdin")?
    } else {
        requests
    };
    let requests = lines
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(Request::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if requests.is_empty() {
        anyhow::bail!("no requests: give them as arguments or on stdin (see --help)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let policy = TrialPolicy::load(file, config, stdio).await?;
        for request in &requests {
            println!("{}", policy.answer(request).await?);
        }
        Ok(())
    })
}

fn check_component(file: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let engine = WasmEngine::new()?;
    let info = firehose_wasm::check_component(&engine, &bytes)
        .with_context(|| format!("{} is not a loadable Firehose component", file.display()))?;
    println!(
        "{}: world {} (firehose:bus@{})",
        file.display(),
        info.world,
        info.bus_version
    );
    println!("imports:");
    for import in &info.imports {
        println!("  {import}");
    }
    println!("exports:");
    for export in &info.exports {
        println!("  {export}");
    }
    Ok(())
}

/// Reloads on SIGHUP (re-reading the config file, or the embedded
/// default); returns on SIGTERM or SIGINT.
async fn serve_until_stopped(
    running: &Running,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM received");
                return Ok(());
            }
            _ = int.recv() => {
                info!("SIGINT received");
                return Ok(());
            }
            _ = hup.recv() => {
                info!("SIGHUP received");
                match config_path.map_or_else(|| Ok(Config::default_embedded()), Config::load) {
                    Ok(config) => running.reload(&config).await,
                    Err(error) => warn!(
                        error = format!("{error:#}"),
                        "reload: config not reloaded; everything stays as it was"
                    ),
                }
            }
        }
    }
}

fn hash_password_from_stdin() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("password (one line): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    let hash = hash_password(password.as_bytes()).context("cannot hash the password")?;
    println!("{hash}");
    Ok(())
}
