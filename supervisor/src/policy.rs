//! How to keep a job running: [`Policy`] and its parts.

use std::time::Duration;

use crate::{backoff::Backoff, error::PolicyError, state::Exit};

/// Restart and health settings. Plain data with a [`Default`] a user can accept without tuning;
/// checked once when the job is created.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Which exits lead to a restart. Default: [`Restart::Always`].
    pub restart: Restart,
    /// Delays between consecutive quick failures. Default: 200 ms, x2, 30 s cap, 20 % jitter.
    pub backoff: Backoff,
    /// A run that lasted at least this long was stable: the child is restarted at once, without
    /// backoff. Default: 1 s. Failed starts never count as stable.
    pub min_uptime: Duration,
    /// A run that lasted at least this long resets the backoff attempt counter. Default: 30 s.
    pub reset_after: Duration,
    /// Give up (state [`Failed`](crate::State::Failed)) after too many restarts in a window.
    /// Default: none.
    pub intensity: Option<Intensity>,
    /// Bound on the readiness hook after each spawn. Default: 30 s.
    pub start_timeout: Duration,
    /// Periodic liveness probing. Default: none.
    pub liveness: Option<Liveness>,
    /// Grace budget of an explicit [`Job::restart`](crate::Job::restart). Default: 2 s.
    pub restart_grace: Duration,
    /// How many of the last stderr lines to keep for reports. Default: 20.
    pub stderr_tail: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            restart: Restart::Always,
            backoff: Backoff::default(),
            min_uptime: Duration::from_secs(1),
            reset_after: Duration::from_secs(30),
            intensity: None,
            start_timeout: Duration::from_secs(30),
            liveness: None,
            restart_grace: Duration::from_secs(2),
            stderr_tail: 20,
        }
    }
}

impl Policy {
    /// Checks the durations and counts that must be non-zero.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.start_timeout.is_zero() {
            return Err(PolicyError::ZeroStartTimeout);
        }
        if let Some(liveness) = &self.liveness {
            if liveness.interval.is_zero() {
                return Err(PolicyError::ZeroLivenessDuration { field: "interval" });
            }
            if liveness.timeout.is_zero() {
                return Err(PolicyError::ZeroLivenessDuration { field: "timeout" });
            }
            if liveness.failure_threshold == 0 {
                return Err(PolicyError::ZeroFailureThreshold);
            }
        }
        if let Some(intensity) = &self.intensity
            && intensity.window.is_zero()
        {
            return Err(PolicyError::ZeroIntensityWindow);
        }
        Ok(())
    }
}

/// Which exits lead to a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// After every exit, including exit code 0.
    #[default]
    Always,
    /// After every exit except exit code 0.
    OnFailure,
    /// Never; the job ends in [`Stopped`](crate::State::Stopped) after exit code 0 and in
    /// [`Failed`](crate::State::Failed) otherwise.
    Never,
}

impl Restart {
    /// Whether this policy restarts after `exit`.
    pub fn applies_to(self, exit: &Exit) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => !exit.is_success(),
            Self::Never => false,
        }
    }
}

/// Restart intensity limit, as in Erlang/OTP: more than `max_restarts` restarts within `window`
/// moves the job to [`Failed`](crate::State::Failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `window`.
    pub max_restarts: u32,
    /// The sliding window.
    pub window: Duration,
}

/// Liveness probing while the child runs: the [`Hooks::probe`](crate::Hooks::probe) hook is
/// called every `interval` (measured from the end of the previous probe), bounded by `timeout`;
/// after `failure_threshold` consecutive failures the child's group is killed and the exit counts
/// as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Time between probes.
    pub interval: Duration,
    /// Bound on one probe; a timeout is a failure.
    pub timeout: Duration,
    /// Consecutive failures that lead to a restart.
    pub failure_threshold: u32,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
        }
    }
}
