//! The `firehose` command line: `serve`, `check-config`, `hash-password`,
//! `component check`.
//!
//! Errors end here: printed with their whole context chain (file, key,
//! listener) and a non-zero exit code.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::info;
use tracing_subscriber::EnvFilter;

use firehose_wasm::{AclPolicy, ComponentCache, PolicySpec, WasmEngine};

use crate::auth::{Authorizer, ConfigAuthorizer, PolicyAuthorizer, hash_password};
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
        let authorizer = authorizer(&config).await?;
        let running = Running::start(&config, authorizer).await?;
        serve_until_stopped(&running).await?;
        running.stop().await;
        Ok(())
    })
}

/// The built-in authorizer, or the `[acl]` policy component when configured
/// (loaded, checked and compiled here: a bad policy stops the start).
async fn authorizer(config: &Config) -> anyhow::Result<Arc<dyn Authorizer>> {
    let passwords = Arc::new(ConfigAuthorizer::new(config));
    let Some(acl) = &config.acl else {
        return Ok(passwords);
    };
    let engine = WasmEngine::new()?;
    let cache = ComponentCache::new(&config.data_dir());
    let spec = PolicySpec {
        name: "acl".into(),
        path: acl.path.clone(),
        config: acl.flattened(),
        limits: acl.limits.clone(),
        stdio: acl.stdio,
    };
    let policy = AclPolicy::load(&engine, &cache, spec)
        .await
        .context("config key [acl]")?;
    info!(
        component = policy.name(),
        path = %acl.path.display(),
        world = %policy.info().world,
        cache = ?policy.cache_outcome(),
        "ACL policy loaded; it decides every connect, subscribe and publish"
    );
    Ok(Arc::new(PolicyAuthorizer::new(policy, passwords)))
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
    Ok(())
}

/// Reloads on SIGHUP; returns on SIGTERM or SIGINT.
async fn serve_until_stopped(running: &Running) -> anyhow::Result<()> {
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
                running.reload().await;
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
