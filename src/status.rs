//! What a plugin is doing, as the host sees it.

use std::{fmt, time::Instant};

/// A plugin's lifecycle state, for companion and remote plugins alike.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PluginState {
    /// Companion: spawning, handshake and connect in progress.
    Starting {
        /// Consecutive quick failures before this start.
        attempt: u32,
    },
    /// Remote: connecting (or reconnecting) to the address.
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
        last_exit: String,
    },
    /// Remote: the server is unreachable; reconnecting after a delay.
    Unreachable {
        /// Consecutive failed attempts.
        attempt: u32,
        /// When the next attempt happens.
        until: Instant,
    },
    /// Stopping (drain, Shutdown, SIGTERM, SIGKILL).
    Stopping,
    /// Stopped and not restarting by itself.
    Stopped,
    /// Disabled by the host; `enable` starts it again.
    Disabled,
    /// Given up (intensity limit reached, or not restartable).
    Failed {
        /// Why, with the last exit and stderr lines.
        reason: String,
    },
    /// Destroyed: calls are refused for good.
    Destroyed,
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
                attempt,
                until,
                last_exit,
            } => write!(
                f,
                "restarting in {:?} (attempt {attempt}; last run {last_exit})",
                until.saturating_duration_since(Instant::now())
            ),
            PluginState::Unreachable { attempt, until } => write!(
                f,
                "unreachable, reconnecting in {:?} (attempt {attempt})",
                until.saturating_duration_since(Instant::now())
            ),
            PluginState::Stopping => f.write_str("stopping"),
            PluginState::Stopped => f.write_str("stopped"),
            PluginState::Disabled => f.write_str("disabled"),
            PluginState::Failed { reason } => write!(f, "failed: {reason}"),
            PluginState::Destroyed => f.write_str("destroyed"),
        }
    }
}

/// Companion or remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A child process the host launches and supervises.
    Companion,
    /// A gRPC server at an address.
    Remote,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Companion => "companion",
            Mode::Remote => "remote",
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

/// A snapshot of a plugin ([`PluginHandle::status`](crate::PluginHandle::status)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PluginStatus {
    /// The plugin's name.
    pub name: String,
    /// Companion or remote.
    pub mode: Mode,
    /// Its lifecycle state.
    pub state: PluginState,
    /// The companion's pid while it runs.
    pub pid: Option<u32>,
    /// Automatic restarts (companion) or reconnects (remote) so far.
    pub restarts: u64,
    /// How the companion's last run ended.
    pub last_exit: Option<String>,
    /// The last start, connection or health error.
    pub last_error: Option<String>,
    /// Health as last probed.
    pub health: Health,
    /// Where the plugin is served: the handshake's address, or the remote's.
    pub address: Option<String>,
    /// The CPUs a companion is pinned to.
    pub cpus: Option<Vec<usize>>,
    /// Calls in flight right now.
    pub in_flight: usize,
}
