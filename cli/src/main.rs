//! `polaris-plugin`: the command line of the plugin host.
//!
//! - `run CONFIG`: start every plugin, serve the admin API (loopback by default), stop
//!   gracefully on SIGINT/SIGTERM (exit 0).
//! - `status`, `call`, `enable`, `disable`, `restart`, `events`: act on the running host
//!   through its admin API (`--admin URL`; else the `admin.listen` of CONFIG when given;
//!   else the default address). `status` and `call` run CONFIG's plugins once instead when
//!   asked (`--oneshot`) or when no host answers, and say so.
//! - `check CONFIG`: validate the configuration and summarise it.
//!
//! Logs go to stderr and never block the host: when stderr is not being read,
//! lines are dropped and counted (see `log.rs` and docs/operations.md).

mod client;
mod descriptors;
mod host;
mod log;
mod oneshot;
mod run;
mod table;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use polaris_plugin::config::{Config, DEFAULT_ADMIN_LISTEN};

use crate::client::{Admin, ClientError};

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

/// Where the running host is.
#[derive(Args, Clone, Default)]
struct HostArgs {
    /// The running host's admin API, e.g. http://127.0.0.1:9190 [default: CONFIG's
    /// admin.listen, else 127.0.0.1:9190]
    #[arg(long, env = "POLARIS_PLUGIN_ADMIN", value_name = "URL")]
    admin: Option<String>,
    /// A file holding the admin API's bearer token [default: CONFIG's admin.token-file]
    #[arg(long, env = "POLARIS_PLUGIN_ADMIN_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every plugin in CONFIG, serve the admin API and status page, and keep running
    /// until SIGINT/SIGTERM. A CONFIG without plugins is an error.
    Run {
        /// The host config (Polaris `plugin:` section or native `plugins:` list).
        config: PathBuf,
        /// Serve the admin API here instead of CONFIG's admin.listen (127.0.0.1:0: a free
        /// port, printed at start).
        #[arg(long, value_name = "ADDR", conflicts_with = "no_admin")]
        admin_listen: Option<std::net::SocketAddr>,
        /// Do not serve the admin API.
        #[arg(long)]
        no_admin: bool,
        /// Watch every companion's binary (as `companion.watch: true` does for one): a
        /// settled replacement upgrades the plugin blue/green; config reloads keep it on.
        #[arg(long)]
        watch: bool,
    },
    /// Print every plugin's status (from the running host); exits 1 when a plugin that is
    /// not disabled is not ready.
    Status {
        /// The host config: where the host's admin API is, and the plugins to run once when
        /// no host answers.
        config: Option<PathBuf>,
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Run CONFIG's plugins once, without asking a running host.
        #[arg(long)]
        oneshot: bool,
        /// One-shot mode: how long to wait for readiness.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Call a plugin once and print the reply as JSON (every field, defaults included):
    /// `proto.Plugin/Call` with `--message`, or any unary METHOD (`package.Service/Method`)
    /// through the plugin's gRPC reflection, else the bundled descriptors, plus
    /// `--proto`/`--descriptor-set`.
    Call {
        /// `[CONFIG] NAME [METHOD]`: the plugin to call, after the host config when one is
        /// given; then the method, which contains a `/`.
        #[arg(value_name = "[CONFIG] NAME [METHOD]", num_args = 1..=3, required = true)]
        args: Vec<String>,
        /// For `proto.Plugin/Call`: the request message type, e.g. `RateLimitPluginRequest`
        /// or `proto.RateLimitPluginRequest`.
        #[arg(long)]
        message: Option<String>,
        /// The request as protobuf JSON, e.g. `{"type":"APIRatelimit","key":"/users"}`.
        #[arg(long, default_value = "{}")]
        json: String,
        #[command(flatten)]
        descriptors: Descriptors,
        /// How long the call may take [default: the plugin's call-timeout].
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        host: HostArgs,
        /// Run CONFIG's plugins once, without asking a running host.
        #[arg(long)]
        oneshot: bool,
    },
    /// List the services and methods a plugin serves: from its gRPC reflection, else the
    /// descriptors bundled with polaris-plugin (the output says which).
    Describe {
        /// `[CONFIG] NAME`: the plugin, after the host config when one is given.
        #[arg(value_name = "[CONFIG] NAME", num_args = 1..=2, required = true)]
        args: Vec<String>,
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Run CONFIG's plugins once, without asking a running host.
        #[arg(long)]
        oneshot: bool,
    },
    /// Enable a disabled plugin on the running host; returns when it is done.
    Enable(Named),
    /// Disable a plugin on the running host (calls fail at once until enabled).
    Disable(Named),
    /// Restart a plugin on the running host.
    Restart(Named),
    /// Reload the running host: its config file again (as SIGHUP does), or with --plugin
    /// one plugin's process by blue/green (a new binary at the same path).
    Reload {
        /// The host config (only to find the host's admin API).
        config: Option<PathBuf>,
        /// Replace this plugin's process (or connection) instead of reloading the config.
        #[arg(long, value_name = "NAME")]
        plugin: Option<String>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Follow the running host's lifecycle events (started, ready, exited, ...).
    Events {
        /// The host config (only to find the host's admin API).
        config: Option<PathBuf>,
        #[command(flatten)]
        host: HostArgs,
        /// Replay the kept events after this sequence number first (0: all kept).
        #[arg(long)]
        after: Option<u64>,
        /// Print each event as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Validate CONFIG and summarise its plugins; starts nothing. A CONFIG without plugins
    /// is an error.
    Check {
        /// The host config.
        config: PathBuf,
    },
}

/// Descriptors for methods a plugin serves but does not describe (like grpcurl's).
#[derive(Args, Default)]
struct Descriptors {
    /// A .proto file with the method's service (compiled here, no protoc needed); repeatable.
    #[arg(long, value_name = "FILE")]
    proto: Vec<PathBuf>,
    /// Where --proto files find their imports [default: each file's directory]; repeatable.
    #[arg(long = "import-path", short = 'I', value_name = "DIR")]
    import_path: Vec<PathBuf>,
    /// An encoded FileDescriptorSet (`protoc -o FILE --include_imports`); repeatable.
    #[arg(long, value_name = "FILE")]
    descriptor_set: Vec<PathBuf>,
}

/// `[CONFIG] NAME` and where the host is.
#[derive(Args)]
struct Named {
    /// `[CONFIG] NAME`: the plugin, after the host config when one is given.
    #[arg(value_name = "[CONFIG] NAME", num_args = 1..=2, required = true)]
    args: Vec<String>,
    #[command(flatten)]
    host: HostArgs,
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            log.line(format_args!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

async fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run {
            config,
            admin_listen,
            no_admin,
            watch,
        } => run::run(&config, admin_listen, no_admin, watch).await,
        Cmd::Status {
            config,
            host,
            json,
            oneshot,
            wait,
        } => {
            let target = Target::new(config.as_deref(), &host)?;
            if !oneshot {
                match host::status(&target.admin, json).await {
                    Err(ClientError::NoHost(why)) => target.fall_back(&why)?,
                    other => return Ok(other?),
                }
            }
            oneshot::status(target.config_for_oneshot()?, wait, json).await
        }
        Cmd::Call {
            args,
            message,
            json,
            descriptors,
            timeout,
            host,
            oneshot,
        } => {
            let (config, name, method) = config_name_method(&args);
            let what = match (message, method) {
                (Some(message), None) => {
                    polaris_plugin::json::request_from_json(&message, &json)?;
                    host::Calling::Message(message)
                }
                (None, Some(method)) => host::Calling::Method {
                    method: method.to_owned(),
                    descriptor_set: descriptors::load(
                        &descriptors.proto,
                        &descriptors.import_path,
                        &descriptors.descriptor_set,
                    )?,
                },
                (Some(_), Some(method)) => {
                    return Err(format!(
                        "give either --message (a proto.Plugin/Call request) or METHOD ({method}), not both"
                    )
                    .into());
                }
                (None, None) => {
                    return Err("give --message TYPE for a proto.Plugin/Call request, or a METHOD such as api.RateLimiter/Allow".into());
                }
            };
            let target = Target::new(config.as_deref(), &host)?;
            if !oneshot {
                match host::call(&target.admin, name, &what, &json, timeout).await {
                    Err(ClientError::NoHost(why)) => target.fall_back(&why)?,
                    other => return Ok(other?),
                }
            }
            oneshot::call(target.config_for_oneshot()?, name, &what, &json, timeout).await
        }
        Cmd::Describe {
            args,
            host,
            json,
            oneshot,
        } => {
            let (config, name) = config_and_name(&args);
            let target = Target::new(config.as_deref(), &host)?;
            if !oneshot {
                match host::describe(&target.admin, name, json).await {
                    Err(ClientError::NoHost(why)) => target.fall_back(&why)?,
                    other => return Ok(other?),
                }
            }
            oneshot::describe(target.config_for_oneshot()?, name, json).await
        }
        Cmd::Enable(named) => plugin_command(named, "enable").await,
        Cmd::Disable(named) => plugin_command(named, "disable").await,
        Cmd::Restart(named) => plugin_command(named, "restart").await,
        Cmd::Reload {
            config,
            plugin,
            host,
        } => {
            let target = Target::new(config.as_deref(), &host)?;
            Ok(host::reload(&target.admin, plugin.as_deref())
                .await
                .map_err(|e| target.no_host_hint(e))?)
        }
        Cmd::Events {
            config,
            host,
            after,
            json,
        } => {
            let target = Target::new(config.as_deref(), &host)?;
            Ok(host::events(&target.admin, after, json)
                .await
                .map_err(|e| target.no_host_hint(e))?)
        }
        Cmd::Check { config } => check(&config),
    }
}

async fn plugin_command(named: Named, what: &str) -> Result<ExitCode> {
    let (config, name) = config_and_name(&named.args);
    let target = Target::new(config.as_deref(), &named.host)?;
    host::command(&target.admin, name, what)
        .await
        .map_err(|e| target.no_host_hint(e))?;
    Ok(ExitCode::SUCCESS)
}

/// `[CONFIG] NAME [METHOD]` → the config, the name, the method: a method has a `/`
/// (`package.Service/Method`), so two values are either CONFIG NAME or NAME METHOD.
fn config_name_method(args: &[String]) -> (Option<PathBuf>, &str, Option<&str>) {
    let method = |s: &str| s.contains('/') && !s.ends_with(".yaml") && !s.ends_with(".yml");
    match args {
        [config, name, m] => (Some(PathBuf::from(config)), name, Some(m)),
        [name, m] if method(m) => (None, name, Some(m)),
        [config, name] => (Some(PathBuf::from(config)), name, None),
        [name] => (None, name, None),
        _ => unreachable!("clap takes one to three values"),
    }
}

/// `[CONFIG] NAME` → the config (when given) and the name.
fn config_and_name(args: &[String]) -> (Option<PathBuf>, &str) {
    match args {
        [config, name] => (Some(PathBuf::from(config)), name),
        [name] => (None, name),
        _ => unreachable!("clap takes one or two values"),
    }
}

/// The host to ask, and the config to run once instead.
struct Target {
    admin: Admin,
    config: Option<(PathBuf, Config)>,
}

impl Target {
    fn new(config: Option<&Path>, host: &HostArgs) -> Result<Self> {
        let config = match config {
            Some(path) => Some((path.to_owned(), load(path)?)),
            None => None,
        };
        let admin_config = config.as_ref().and_then(|(_, c)| c.admin.as_ref());
        let url = match (&host.admin, admin_config) {
            (Some(url), _) => url.clone(),
            (None, Some(admin)) => admin.listen.to_string(),
            (None, None) => DEFAULT_ADMIN_LISTEN.to_owned(),
        };
        let token_file = host
            .token_file
            .clone()
            .or_else(|| admin_config.and_then(|a| a.token_file.clone()));
        Ok(Target {
            admin: Admin::new(&url, token_file.as_deref())?,
            config,
        })
    }

    /// No host answered: go on in one-shot mode when there is a config, saying so.
    fn fall_back(&self, why: &str) -> Result<()> {
        match &self.config {
            Some((path, _)) => {
                tracing::warn!(
                    "{why}; running the plugins of {} once instead (--oneshot skips asking a host)",
                    path.display()
                );
                Ok(())
            }
            None => Err(format!(
                "{why}; start one with `polaris-plugin run CONFIG`, or give CONFIG to run its plugins once"
            )
            .into()),
        }
    }

    fn config_for_oneshot(self) -> Result<Config> {
        self.config.map(|(_, c)| c).ok_or_else(|| {
            "--oneshot needs CONFIG: the plugins to run once"
                .to_string()
                .into()
        })
    }

    fn no_host_hint(&self, e: ClientError) -> Box<dyn std::error::Error> {
        match e {
            ClientError::NoHost(why) => format!(
                "{why}; is `polaris-plugin run CONFIG` running? (--admin URL or CONFIG says where)"
            )
            .into(),
            other => other.into(),
        }
    }
}

/// The config at `path`, refused when it configures no plugin: for the library an empty
/// config is fine, but a host without plugins is almost always a typo in the file.
fn load(path: &Path) -> Result<Config> {
    let config = Config::from_file(path)?;
    if config.plugins.is_empty() && config.pluggable.is_none() {
        return Err(format!(
            "{} configures no plugins; add a plugins: list, a Polaris plugin.<slot>.option with mode: companion or mode: remote, or a pluggable: section (see docs/configuration.md)",
            path.display()
        )
        .into());
    }
    Ok(config)
}

fn check(path: &Path) -> Result<ExitCode> {
    let config = load(path)?;
    let (summary, pins_hold) = table::summary(path, &config);
    print!("{summary}");
    if pins_hold {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "polaris-plugin: a pinned binary does not match its companion.sha256; it would not start"
        );
        Ok(ExitCode::FAILURE)
    }
}
