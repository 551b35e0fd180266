//! `polaris-plugin`: the command-line front end of the plugin host.
//!
//! - `run CONFIG`: start every plugin, log state changes, stop gracefully on
//!   SIGINT/SIGTERM (exit 0).
//! - `call CONFIG NAME --message TYPE --json JSON`: start, call once, print the
//!   reply as JSON with its type, stop.
//! - `status CONFIG`: start, wait for readiness, print every plugin's status, stop.
//! - `check CONFIG`: validate the configuration only.
//!
//! `run` and `check` refuse a configuration without plugins.
//! Logs go to stderr and never block the host: when stderr is not being read,
//! lines are dropped and counted (see `log.rs` and docs/operations.md).

mod log;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::{Parser, Subcommand};
use polaris_plugin::{Registry, config::Config, json};

#[derive(Parser)]
#[command(
    version,
    about = "Host for out-of-process Polaris plugins (hashicorp/go-plugin compatible)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log format on stderr: text (coloured at a terminal unless NO_COLOR is set) or json (one
    /// object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "POLARIS_PLUGIN_LOG_FORMAT"
    )]
    log_format: log::Format,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every plugin in CONFIG and keep them running until SIGINT/SIGTERM. A CONFIG
    /// without plugins is an error.
    Run {
        /// The host config (Polaris `plugin:` section or native `plugins:` list).
        config: PathBuf,
    },
    /// Start the plugins, call NAME once, print the reply as JSON, stop.
    Call {
        /// The host config.
        config: PathBuf,
        /// The plugin to call.
        name: String,
        /// The request message type, e.g. `RateLimitPluginRequest` or `proto.RateLimitPluginRequest`.
        #[arg(long)]
        message: String,
        /// The request as protobuf JSON, e.g. `{"type":"APIRatelimit","key":"/users"}`.
        #[arg(long, default_value = "{}")]
        json: String,
    },
    /// Start the plugins, wait until ready (at most --wait), print their status, stop.
    Status {
        /// The host config.
        config: PathBuf,
        /// How long to wait for readiness.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Validate CONFIG and list its plugins; starts nothing. A CONFIG without plugins is an
    /// error.
    Check {
        /// The host config.
        config: PathBuf,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    polaris_plugin::config::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = log::Logging::init(cli.log_format, matches!(cli.command, Cmd::Run { .. }));
    let code = main_with(cli, &log);
    log.finish();
    code
}

/// Runs the command; errors go through `log`, which never blocks.
fn main_with(cli: Cli, log: &log::Logging) -> ExitCode {
    // The host's work is I/O; one thread avoids cross-thread wake-ups per
    // call (lowest latency in docs/benchmarks.md). Plugin processes are
    // spawned from the supervisor's own thread either way.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log.line(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Run { config } => run(config).await,
            Cmd::Call {
                config,
                name,
                message,
                json,
            } => call(config, name, message, json).await,
            Cmd::Status { config, wait } => status(config, wait).await,
            Cmd::Check { config } => check(config),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.line(format_args!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// The config at `path`, refused when it configures no plugin: for the library an empty
/// config is fine, but a host without plugins is almost always a typo in the file.
fn load(path: &Path) -> Result<Config> {
    let config = Config::from_file(path)?;
    if config.plugins.is_empty() {
        return Err(format!(
            "{} configures no plugins; add a plugins: list, or a Polaris plugin.<slot>.option with mode: companion or mode: remote (see docs/configuration.md)",
            path.display()
        )
        .into());
    }
    Ok(config)
}

async fn run(config: PathBuf) -> Result<()> {
    let registry = Registry::from_config(load(&config)?)?;
    tracing::info!(config = %config.display(), plugins = ?registry.names(), "host started");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    tracing::info!("stopping: destroying every plugin");
    registry.destroy().await;
    tracing::info!("stopped");
    Ok(())
}

async fn call(config: PathBuf, name: String, message: String, json: String) -> Result<()> {
    let request = json::request_from_json(&message, &json)?;
    let registry = Registry::from_yaml(&config).await?;
    let reply = registry.call(&name, request).await;
    registry.destroy().await;
    let reply = reply?;
    println!("{}", json::response_to_value(&reply)?);
    Ok(())
}

async fn status(config: PathBuf, wait: Duration) -> Result<()> {
    let registry = Registry::from_yaml(&config).await?;
    if let Err(e) = registry.wait_ready(wait).await {
        tracing::warn!("{e}");
    }
    for plugin in registry.plugins() {
        let s = plugin.status();
        println!(
            "{:<28} {:<9} {:<12} pid={:<8} restarts={:<3} health={:?} address={} cpus={}",
            s.name,
            s.mode.to_string(),
            s.state.to_string(),
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            s.restarts,
            s.health,
            s.address.unwrap_or_else(|| "-".into()),
            s.cpus
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    registry.destroy().await;
    Ok(())
}

fn check(config: PathBuf) -> Result<()> {
    let config = load(&config)?;
    for plugin in &config.plugins {
        println!("{}: {:?}", plugin.name, plugin.kind);
    }
    println!("ok: {} plugin(s)", config.plugins.len());
    Ok(())
}
