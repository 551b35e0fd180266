//! Companion plugin settings: [`CompanionConfig`], [`CpuConfig`], [`RestartConfig`].

use std::{fmt, num::NonZeroUsize, path::PathBuf, str::FromStr, time::Duration};

use super::{BackoffConfig, Sha256Digest};

/// A plugin the host runs as a child process.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanionConfig {
    /// The plugin binary: absolute, and when loaded from YAML checked to exist, be a regular
    /// file and be executable. See `docs/configuration.md` for the lookup when the YAML has no
    /// `companion.path`.
    pub path: PathBuf,
    /// Arguments passed to the binary. Default none. No NUL characters; each at most
    /// [`MAX_ARG_BYTES`](Self::MAX_ARG_BYTES).
    pub args: Vec<String>,
    /// Extra environment variables for the child, in the order written. Default none. Names
    /// are unique, not empty, without `=` or NUL, and not one the host sets or reserves; each
    /// `NAME=value` at most [`MAX_ARG_BYTES`](Self::MAX_ARG_BYTES), and args and env together
    /// at most [`MAX_ARGS_ENV_BYTES`](Self::MAX_ARGS_ENV_BYTES).
    pub env: Vec<(String, String)>,
    /// How many CPUs the child may use. Default `MaxProcs(1)`.
    pub cpu: CpuConfig,
    /// How long the child has to print its handshake line. Default 30 s.
    pub start_timeout: Duration,
    /// The stop budget from the Controller `Shutdown` call to SIGKILL: its
    /// first half for `Shutdown` and the exit after it, then SIGTERM.
    /// Default 2 s.
    pub stop_grace: Duration,
    /// What to do when the child exits.
    pub restart: RestartConfig,
    /// YAML `sha256`: the binary's pinned digest. When set, the binary is hashed before every
    /// start (restarts and upgrades too) and a different digest leaves the plugin `Failed`
    /// without running it. Default `None`: not checked.
    pub sha256: Option<Sha256Digest>,
    /// YAML `watch`: upgrade the plugin (blue/green) when its binary is replaced; the binary's
    /// directory is watched. Default `false`.
    pub watch: bool,
    /// YAML `auto-mtls`: go-plugin's AutoMTLS. Each run gets a fresh self-signed certificate
    /// (`PLUGIN_CLIENT_CERT`), the plugin must answer with its own in the handshake, and the
    /// connection is TLS pinned to exactly that certificate, presenting the host's. Default
    /// `false`: whether a plugin supports it cannot be known before it runs.
    pub auto_mtls: bool,
    /// YAML `env-inherit`: which of the host's environment variables the plugin gets.
    /// Default [`EnvInherit::All`] (go-plugin's behaviour).
    pub env_inherit: EnvInherit,
    /// YAML `limits`: resource limits set in the process before it runs.
    pub limits: LimitsConfig,
}

/// `companion.limits`: set with `setrlimit` in the child before it runs; `None` keeps the
/// host's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitsConfig {
    /// `memory`: the address space (`RLIMIT_AS`), in bytes. Allocations past it fail; the
    /// plugin usually aborts, and its status names the limit.
    pub memory: Option<u64>,
    /// `open-files` (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// `processes` (`RLIMIT_NPROC`): processes and threads of the plugin's user.
    pub processes: Option<u64>,
}

/// Which of the host's environment variables a companion inherits (`companion.env-inherit`).
/// Whatever the choice, the host sets the go-plugin variables (`POLARIS_PLUGIN`, `PLUGIN_*`,
/// `GOMAXPROCS`) itself and `companion.env` is added on top.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnvInherit {
    /// `all`: the host's whole environment, secrets included (the default, as go-plugin).
    #[default]
    All,
    /// `none`: nothing from the host (not even `PATH` or `HOME`).
    None,
    /// A list: only these variables, when the host has them.
    Only(Vec<String>),
}

impl CompanionConfig {
    /// Default of [`start_timeout`](Self::start_timeout): 30 s.
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default of [`stop_grace`](Self::stop_grace): 2 s.
    pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
    /// The longest argument, and the longest environment variable as `NAME=value`, in bytes:
    /// 32 KiB, well under Linux's 128 KiB per string (`MAX_ARG_STRLEN`).
    pub const MAX_ARG_BYTES: usize = 32 * 1024;
    /// The most [`args`](Self::args) and [`env`](Self::env) may take together, in bytes, each
    /// string counted with its terminating NUL: 256 KiB, leaving most of Linux's `ARG_MAX`
    /// (at least 2 MiB with the default 8 MiB stack) to the binary's path, the variables the
    /// host sets and the host's own environment, which the child inherits.
    pub const MAX_ARGS_ENV_BYTES: usize = 256 * 1024;

    /// Settings for the binary at `path` (not checked here), everything else default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            args: Vec::new(),
            env: Vec::new(),
            cpu: CpuConfig::default(),
            start_timeout: Self::DEFAULT_START_TIMEOUT,
            stop_grace: Self::DEFAULT_STOP_GRACE,
            restart: RestartConfig::default(),
            sha256: None,
            watch: false,
            auto_mtls: false,
            env_inherit: EnvInherit::All,
            limits: LimitsConfig::default(),
        }
    }
}

/// The CPUs a companion may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuConfig {
    /// YAML `max-procs: N` (1..=1024; unset or 0 means 1, as in the Go SDK): N CPUs chosen by the
    /// host, and N is what the plugin is told (`PLUGIN_PROCS`, `GOMAXPROCS`).
    MaxProcs(NonZeroUsize),
    /// YAML `cpus: [0, 1]`: pinned to exactly these CPUs (distinct, non-empty, each available
    /// to the host when the config was loaded).
    Cpus(Vec<usize>),
}

impl Default for CpuConfig {
    fn default() -> Self {
        Self::MaxProcs(NonZeroUsize::MIN)
    }
}

impl CpuConfig {
    /// How many CPUs this asks for: N for `MaxProcs(N)`, the list's length for `Cpus`.
    pub fn procs(&self) -> usize {
        match self {
            Self::MaxProcs(n) => n.get(),
            Self::Cpus(list) => list.len(),
        }
    }
}

/// Restarting a companion that exited.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartConfig {
    /// When to restart. Default [`RestartPolicy::Always`].
    pub policy: RestartPolicy,
    /// Delay before each restart. Default [`BackoffConfig::RESTART_DEFAULT`] (200 ms, ×2, 30 s
    /// cap, 0.2 jitter).
    pub backoff: BackoffConfig,
    /// A run shorter than this counts as a failed start. Default 1 s.
    pub min_uptime: Duration,
    /// After running this long the backoff starts again from `initial`. Default 30 s.
    pub reset_after: Duration,
    /// At most this many restarts within [`window`](Self::window), then the plugin is `Failed`.
    /// Default `None`: no limit.
    pub max_restarts: Option<u32>,
    /// The window of [`max_restarts`](Self::max_restarts). Default 60 s; greater than zero.
    pub window: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::default(),
            backoff: BackoffConfig::RESTART_DEFAULT,
            min_uptime: Duration::from_secs(1),
            reset_after: Duration::from_secs(30),
            max_restarts: None,
            window: Duration::from_secs(60),
        }
    }
}

/// When a companion that exited is started again. YAML `always`, `on-failure`, `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Whatever the exit status (the default).
    #[default]
    Always,
    /// Only after a non-zero exit or a signal.
    OnFailure,
    /// Never; the plugin stays stopped.
    Never,
}

impl RestartPolicy {
    /// The YAML spellings, for messages.
    pub const NAMES: [&'static str; 3] = ["always", "on-failure", "never"];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnFailure => "on-failure",
            Self::Never => "never",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RestartPolicy {
    type Err = ();

    /// Parses `always`, `on-failure` or `never`.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "always" => Ok(Self::Always),
            "on-failure" => Ok(Self::OnFailure),
            "never" => Ok(Self::Never),
            _ => Err(()),
        }
    }
}
