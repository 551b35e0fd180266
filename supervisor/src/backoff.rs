//! The backoff schedule: a small validated type with no I/O and no clock.
//!
//! We do not use the `backoff` crate: it is unmaintained (RUSTSEC-2025-0012, and its `instant`
//! dependency RUSTSEC-2024-0384). This type is all the restart loop needs, and its jitter comes
//! from an injectable [`JitterSource`] so exact sequences can be tested.

use std::time::Duration;

use crate::error::BackoffError;

/// A source of jitter: numbers uniformly distributed in `[0, 1)`.
///
/// The supervisor uses a [`fastrand::Rng`]; tests use [`FixedJitter`] to get exact sequences.
pub trait JitterSource {
    /// The next number in `[0, 1)`. Values outside that range are clamped.
    fn next_unit(&mut self) -> f64;
}

impl JitterSource for fastrand::Rng {
    fn next_unit(&mut self) -> f64 {
        self.f64()
    }
}

/// A [`JitterSource`] that always returns the same value.
///
/// `FixedJitter(0.5)` yields the undisturbed base delay, `FixedJitter(0.0)` the lowest and
/// `FixedJitter(1.0)` the highest delay the jitter fraction allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedJitter(pub f64);

impl JitterSource for FixedJitter {
    fn next_unit(&mut self) -> f64 {
        self.0
    }
}

/// Exponential backoff: `initial * factor^(attempt - 1)`, capped at `max`, spread by `±jitter`.
///
/// Built by [`Backoff::new`], which validates the parameters, so every value of this type is
/// usable. The default is 200 ms initial, factor 2, 30 s cap and 20 % jitter.
///
/// The jitter is symmetric: a jitter fraction `j` multiplies the (capped) base delay by a factor
/// drawn from `[1 - j, 1 + j)`; the result is capped again, so no delay ever exceeds `max`, and
/// delays at the cap still spread over `[max * (1 - j), max]`.
///
/// ```
/// use std::time::Duration;
/// use supervisor::{Backoff, FixedJitter};
///
/// let b = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1), 0.0).unwrap();
/// let delays: Vec<_> = b.delays(FixedJitter(0.5)).take(5).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000].map(Duration::from_millis));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            factor: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// A validated schedule.
    ///
    /// `initial` must be greater than zero and at most `max`; `factor` must be finite and at
    /// least 1; `jitter` must be in `[0, 1)`.
    pub fn new(
        initial: Duration,
        factor: f64,
        max: Duration,
        jitter: f64,
    ) -> Result<Self, BackoffError> {
        if initial.is_zero() {
            return Err(BackoffError::ZeroInitial);
        }
        if initial > max {
            return Err(BackoffError::InitialAboveMax { initial, max });
        }
        if !factor.is_finite() || factor < 1.0 {
            return Err(BackoffError::Factor(factor));
        }
        if !jitter.is_finite() || !(0.0..1.0).contains(&jitter) {
            return Err(BackoffError::Jitter(jitter));
        }
        Ok(Self {
            initial,
            factor,
            max,
            jitter,
        })
    }

    /// The first delay, before jitter.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The growth factor between consecutive attempts.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The cap: no delay is longer.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter fraction, in `[0, 1)`.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay before `attempt` (1-based) without jitter. Attempt 0 means "no failure yet" and
    /// has no delay.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        self.scaled(attempt, 1.0)
    }

    /// The delay before `attempt` (1-based), with one draw from `jitter`, capped at `max`.
    pub fn delay(&self, attempt: u32, jitter: &mut impl JitterSource) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let unit = jitter.next_unit().clamp(0.0, 1.0);
        self.scaled(attempt, 1.0 + self.jitter * (2.0 * unit - 1.0))
    }

    /// The delays for attempts 1, 2, 3, … (an endless iterator).
    pub fn delays<J: JitterSource>(
        &self,
        mut jitter: J,
    ) -> impl Iterator<Item = Duration> + use<J> {
        let this = *self;
        (1..=u32::MAX).map(move |attempt| this.delay(attempt, &mut jitter))
    }

    /// `min(initial * factor^(attempt-1), max) * spread`, capped at `max` again; computed in
    /// `f64` seconds so large attempts saturate at the cap instead of overflowing. Capping before
    /// the spread keeps the jitter alive at the cap (delays in `[max * (1 - j), max]`).
    fn scaled(&self, attempt: u32, spread: f64) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let max = self.max.as_secs_f64();
        let exponent = i32::try_from(attempt - 1).unwrap_or(i32::MAX);
        let base = (self.initial.as_secs_f64() * self.factor.powi(exponent)).min(max);
        Duration::try_from_secs_f64((base * spread).min(max)).unwrap_or(self.max)
    }
}
