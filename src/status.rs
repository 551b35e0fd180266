//! What a plugin is doing, as the host sees it.

use std::{fmt, time::Instant};

use supervisor::{Exit, FailReason};

/// A plugin's lifecycle state, for companion and remote plugins alike.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PluginState {
    /// Companion: spawning, handshake and connect in progress.
    Starting {
        /// Consecutive quick failures before this start.
        attempt: u32,
    },
    /// Remote: connecting (or reconnecting) to the address. Companion: the
    /// process runs but its connection broke; redialing its address.
    Connecting {
        /// Consecutive failed attempts before this one.
        attempt: u32,
    },
    /// Connected and healthy: calls go through.
    Ready,
    /// Companion: the last run failed; restarting after a delay.
    BackingOff {
        /// Consecutive quick failures.
        attempt: u32,
        /// When the next start happens.
        until: Instant,
        /// How the last run ended.
        last_exit: Exit,
    },
    /// Remote: the server is unreachable; reconnecting after a delay (or at
    /// once when a call is waiting).
    Unreachable {
        /// Consecutive failed attempts.
        attempt: u32,
        /// When the next attempt happens.
        until: Instant,
    },
    /// Stopping (Shutdown, SIGTERM, SIGKILL) for a disable or restart.
    Stopping,
    /// Stopped and not restarting by itself.
    Stopped,
    /// Disabled by the host; `enable` starts it again.
    Disabled,
    /// Companion: given up (intensity limit reached, or not restartable).
    Failed {
        /// Why, with the last exit and stderr lines.
        reason: FailReason,
    },
    /// Destroy in progress: new calls are refused, calls in flight may finish
    /// (up to the drain timeout), then the plugin is stopped.
    Destroying,
    /// Destroyed: calls and commands are refused for good.
    Destroyed,
}

impl PluginState {
    /// The state's short name, as the admin API and metrics show it: `starting`,
    /// `connecting`, `ready`, `backing_off`, `unreachable`, `stopping`, `stopped`,
    /// `disabled`, `failed`, `destroying`, `destroyed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Starting { .. } => "starting",
            Self::Connecting { .. } => "connecting",
            Self::Ready => "ready",
            Self::BackingOff { .. } => "backing_off",
            Self::Unreachable { .. } => "unreachable",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Disabled => "disabled",
            Self::Failed { .. } => "failed",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
        }
    }

    /// Every state's [`name`](Self::name).
    pub const NAMES: [&'static str; 11] = [
        "starting",
        "connecting",
        "ready",
        "backing_off",
        "unreachable",
        "stopping",
        "stopped",
        "disabled",
        "failed",
        "destroying",
        "destroyed",
    ];

    /// Whether nothing will change without the host acting (calls fail at once).
    pub fn is_at_rest(&self) -> bool {
        matches!(
            self,
            Self::Stopped
                | Self::Disabled
                | Self::Failed { .. }
                | Self::Destroying
                | Self::Destroyed
        )
    }
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginState::Starting { attempt: 0 } => f.write_str("starting"),
            PluginState::Starting { attempt } => {
                write!(f, "starting (after {attempt} failed attempts)")
            }
            PluginState::Connecting { attempt: 0 } => f.write_str("connecting"),
            PluginState::Connecting { attempt } => {
                write!(f, "connecting (after {attempt} failed attempts)")
            }
            PluginState::Ready => f.write_str("ready"),
            PluginState::BackingOff {
                attempt, last_exit, ..
            } => write!(
                f,
                "backing off before restart (attempt {attempt}; last run {last_exit})"
            ),
            PluginState::Unreachable { attempt, .. } => {
                write!(f, "unreachable, reconnecting (attempt {attempt})")
            }
            PluginState::Stopping => f.write_str("stopping"),
            PluginState::Stopped => f.write_str("stopped"),
            PluginState::Disabled => f.write_str("disabled"),
            PluginState::Failed { reason } => write!(f, "failed: {reason}"),
            PluginState::Destroying => f.write_str("destroying"),
            PluginState::Destroyed => f.write_str("destroyed"),
        }
    }
}

/// Companion, remote or pluggable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A child process the host launches and supervises.
    Companion,
    /// A gRPC server at an address.
    Remote,
    /// A gRPC server whose unix socket appeared in the pluggable folder
    /// (`docs/pluggable.md`): reached like a remote plugin, removed when the socket goes.
    Pluggable,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Companion => "companion",
            Mode::Remote => "remote",
            Mode::Pluggable => "pluggable",
        })
    }
}

/// Health as last probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet (or not running).
    Unknown,
    /// The last probe succeeded.
    Healthy,
    /// The last probes failed; with the last error and how many in a row.
    Unhealthy {
        /// Consecutive failures.
        failures: u32,
        /// The last probe's error.
        error: String,
    },
}

/// A snapshot of a plugin ([`PluginHandle::status`](crate::PluginHandle::status)):
/// one read of the value its owner task publishes, plus the call counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PluginStatus {
    /// The plugin's name.
    pub name: String,
    /// Companion, remote or pluggable.
    pub mode: Mode,
    /// Its lifecycle state.
    pub state: PluginState,
    /// The companion's current run (1-based count of spawns) while a process exists.
    pub run: Option<u64>,
    /// The companion's pid while it runs.
    pub pid: Option<u32>,
    /// Automatic restarts (companion) or reconnects (remote) so far.
    pub restarts: u64,
    /// The connection generation: changes with every new connection (each
    /// companion run, each redial, each remote reconnect); 0 before the first.
    pub generation: u64,
    /// How the companion's last run ended.
    pub last_exit: Option<Exit>,
    /// The last start, connection or health error.
    pub last_error: Option<String>,
    /// Health as last probed (`Unknown` while not connected).
    pub health: Health,
    /// Where the plugin is served: the current run's handshake address
    /// (`unix:/path` or `tcp://host:port`), or the remote's (`http://host:port`,
    /// `unix:/path`). `None` for a companion with no live run.
    pub address: Option<String>,
    /// The CPUs a companion is pinned to.
    pub cpus: Option<Vec<usize>>,
    /// Calls in flight right now (sent, or waiting for the plugin to be ready).
    pub in_flight: usize,
    /// Calls by outcome since the plugin was configured.
    pub calls: CallCounts,
    /// Calls of the last minute: how many per second, p50 and p99 latency.
    pub latency: crate::call::LatencySummary,
    /// A companion's other runs while an upgrade overlaps them with this one: the
    /// candidate starting beside it, or the old run finishing its calls.
    pub others: Vec<OtherRun>,
    /// Upgrades so far and how the last one ended.
    pub upgrades: Upgrades,
    /// A remote plugin's fleet (several addresses or `dns:///`): each endpoint. Empty
    /// otherwise.
    pub endpoints: Vec<EndpointStatus>,
    /// A pluggable plugin: the services its gRPC reflection listed when its socket was
    /// found (reflection's own left out; `None` for companion and remote plugins, which
    /// `reflection::describe` lists on demand).
    pub services: Option<Vec<String>>,
}

/// One endpoint of a remote plugin's fleet.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// Its address (`host:port`, `unix:/path`).
    pub address: String,
    /// What it is doing.
    pub state: EndpointState,
    /// Its current connection's number (unique in the plugin), while connected.
    pub generation: Option<u64>,
    /// Requests in flight on its connection now.
    pub in_flight: u64,
    /// Calls sent to it (attempts) since it joined the fleet.
    pub calls: u64,
    /// Times it was ejected.
    pub ejections: u64,
    /// The last failure (dial, health check), if any.
    pub last_error: Option<String>,
}

/// An endpoint's state. Calls go to `Ready` endpoints only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// Dialing (connect, then one health check).
    Connecting,
    /// Connected, health-checked, in rotation.
    Ready,
    /// Out of rotation after consecutive failures, until then.
    Ejected {
        /// When it may take calls again.
        until: Instant,
    },
    /// The last dial failed; the next is at `until`.
    Unreachable {
        /// Failed dials in a row.
        attempt: u32,
        /// When it dials again.
        until: Instant,
    },
}

impl EndpointState {
    /// The state's name as the admin API and metrics spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Ready => "ready",
            Self::Ejected { .. } => "ejected",
            Self::Unreachable { .. } => "unreachable",
        }
    }

    /// Every state's [`name`](Self::name).
    pub const NAMES: [&'static str; 4] = ["connecting", "ready", "ejected", "unreachable"];
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Calls by outcome ([`PluginStatus::calls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CallCounts {
    /// The plugin answered with a reply.
    pub ok: u64,
    /// The call failed (a plugin's gRPC error, a transport failure, unavailable, …),
    /// without a fallback.
    pub error: u64,
    /// No answer within the call timeout (counted whether or not a fallback answered).
    pub timeout: u64,
    /// Refused at once because the concurrency limit and its queue were full
    /// (counted whether or not a fallback answered).
    pub overloaded: u64,
    /// Answered with the configured fallback reply.
    pub fallback: u64,
}

/// A run beside the serving one during a blue/green upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRun {
    /// Its part.
    pub role: RunRole,
    /// Its run id, once it runs.
    pub run: Option<u64>,
    /// Its process, once it runs.
    pub pid: Option<u32>,
}

/// The part a run plays during an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRole {
    /// The new process, starting; it takes over once ready.
    Candidate,
    /// The old process: new calls no longer go to it; those in flight finish, then it is
    /// stopped.
    Retiring,
}

/// Upgrades of one plugin.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Upgrades {
    /// Upgrades that replaced the process (or connection).
    pub done: u64,
    /// Upgrades that failed, leaving the old process serving.
    pub failed: u64,
    /// The last one: when it ended, and why it failed (`None`: it succeeded).
    pub last: Option<(std::time::SystemTime, Option<String>)>,
}
