//! One plugin's validated settings: [`PluginConfig`], [`PluginKind`], [`HealthConfig`].

use std::time::Duration;

use super::{CallPolicy, CompanionConfig, RemoteConfig};

/// One plugin, validated. Built by [`Config`](super::Config) or by [`PluginConfig::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The plugin's name: the key calls use, the `PLUGIN_NAME` a companion is started with, and
    /// the file name a companion binary is looked up by when `companion.path` is unset. Not
    /// empty, `.` or `..`; no `/`, no control characters, no surrounding whitespace; at most
    /// [`MAX_NAME_BYTES`](Self::MAX_NAME_BYTES).
    pub name: String,
    /// Companion (a child process) or remote (a server at an address), with its settings.
    pub kind: PluginKind,
    /// How long a call may take, including waiting for a starting plugin. Default 5 s.
    pub call_timeout: Duration,
    /// How long destroy lets in-flight calls finish before stopping the plugin. Default 5 s.
    pub drain_timeout: Duration,
    /// Health probing (grpc.health.v1, service `"plugin"`).
    pub health: HealthConfig,
    /// The call contract: delivery, concurrency bound and queue, failure mode, fallback.
    pub call: CallPolicy,
}

impl PluginConfig {
    /// Default of [`call_timeout`](Self::call_timeout): 5 s.
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default of [`drain_timeout`](Self::drain_timeout): 5 s.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
    /// The longest [`name`](Self::name), in bytes: 128. The name is a file name (at most 255
    /// bytes on Linux) and the value of `PLUGIN_NAME`; Polaris names are short, like
    /// `rate-limit-server-v2`.
    pub const MAX_NAME_BYTES: usize = 128;

    /// A plugin with default timeouts and health settings.
    pub fn new(name: impl Into<String>, kind: PluginKind) -> Self {
        Self {
            name: name.into(),
            kind,
            call_timeout: Self::DEFAULT_CALL_TIMEOUT,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            health: HealthConfig::default(),
            call: CallPolicy::default(),
        }
    }

    /// The companion settings, if this is a companion plugin.
    pub fn companion(&self) -> Option<&CompanionConfig> {
        match &self.kind {
            PluginKind::Companion(c) => Some(c),
            PluginKind::Remote(_) => None,
        }
    }

    /// The remote settings, if this is a remote plugin.
    pub fn remote(&self) -> Option<&RemoteConfig> {
        match &self.kind {
            PluginKind::Remote(r) => Some(r),
            PluginKind::Companion(_) => None,
        }
    }
}

/// How a plugin is reached: the YAML `mode`.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per plugin when the config loads; boxing would only cost the readers"
)]
pub enum PluginKind {
    /// `mode: companion`: the host starts the plugin binary as a child process and supervises it.
    Companion(CompanionConfig),
    /// `mode: remote`: the plugin is a gRPC server someone else runs.
    Remote(RemoteConfig),
}

impl PluginKind {
    /// The YAML name of the mode: `"companion"` or `"remote"`.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Companion(_) => "companion",
            Self::Remote(_) => "remote",
        }
    }
}

/// Health probing of a running plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between probes. Default 5 s; must be greater than zero.
    pub interval: Duration,
    /// How long one probe may take. Default 1 s; must be greater than zero.
    pub timeout: Duration,
    /// Consecutive failed probes that make the plugin unhealthy. Default 3; at least 1.
    pub failure_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
        }
    }
}
