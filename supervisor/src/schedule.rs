//! The restart schedule: when to start again after an exit. Pure: the caller passes the time.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use crate::{
    backoff::{Backoff, JitterSource},
    policy::{Intensity, Policy},
};

/// What to do after a run ended and the restart policy wants a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The run was stable: start again at once.
    Now,
    /// The run failed quickly: wait `delay` before attempt `attempt`.
    After {
        /// Consecutive quick failures, including this one (1-based).
        attempt: u32,
        /// The backoff delay.
        delay: Duration,
    },
    /// The intensity limit is exceeded: give up.
    GiveUp(Intensity),
}

/// Decides between an immediate restart, a backoff delay and giving up, from the run's uptime and
/// the recent restarts. Consumes a [`Backoff`]; has no I/O and no clock of its own.
///
/// * A run of at least `reset_after` resets the attempt counter and restarts at once.
/// * A run of at least `min_uptime` restarts at once (the counter is kept, so a child that
///   alternates stable and quick runs still backs off).
/// * Anything shorter, and every failed start, is a quick failure: the counter goes up and the
///   delay is `backoff.delay(counter)`.
/// * With an intensity limit, every restart is recorded; when `max_restarts` restarts already
///   happened within the window, the answer is [`Decision::GiveUp`].
#[derive(Debug, Clone)]
pub struct RestartSchedule {
    backoff: Backoff,
    min_uptime: Duration,
    reset_after: Duration,
    intensity: Option<Intensity>,
    failures: u32,
    recent: VecDeque<Instant>,
}

impl RestartSchedule {
    /// A schedule with the policy's backoff, uptime thresholds and intensity limit.
    pub fn new(policy: &Policy) -> Self {
        Self {
            backoff: policy.backoff,
            min_uptime: policy.min_uptime,
            reset_after: policy.reset_after,
            intensity: policy.intensity,
            failures: 0,
            recent: VecDeque::new(),
        }
    }

    /// Consecutive quick failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets all history (after an explicit restart or enable).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.recent.clear();
    }

    /// Records an exit at `now` after a run of `ran_for` (`None` for a failed start) and decides.
    pub fn on_exit(
        &mut self,
        now: Instant,
        ran_for: Option<Duration>,
        jitter: &mut impl JitterSource,
    ) -> Decision {
        if let Some(intensity) = self.intensity {
            if let Some(horizon) = now.checked_sub(intensity.window) {
                while self.recent.front().is_some_and(|&t| t <= horizon) {
                    self.recent.pop_front();
                }
            }
            if self.recent.len() >= usize::try_from(intensity.max_restarts).unwrap_or(usize::MAX) {
                return Decision::GiveUp(intensity);
            }
            self.recent.push_back(now);
        }
        match ran_for {
            Some(uptime) if uptime >= self.reset_after => {
                self.failures = 0;
                Decision::Now
            }
            Some(uptime) if uptime >= self.min_uptime => Decision::Now,
            _ => {
                self.failures = self.failures.saturating_add(1);
                Decision::After {
                    attempt: self.failures,
                    delay: self.backoff.delay(self.failures, jitter),
                }
            }
        }
    }
}
