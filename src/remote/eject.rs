//! Outlier ejection in Envoy's manner, as pure arithmetic on one endpoint's record: no I/O,
//! no clock of its own (the fleet owner passes `now`), so it is tested on plain instants.
//!
//! - `consecutive-failures` failures in a row (failed health checks, failed dials, calls that
//!   saw the connection fail) eject the endpoint; a success resets the count.
//! - An ejection lasts `base-ejection-time × multiplier`, at most `max-ejection-time`; the
//!   multiplier grows by one per ejection and shrinks by one for every `base-ejection-time`
//!   the endpoint then spends back in rotation (so a flapping endpoint stays out longer,
//!   a recovered one is forgiven).
//! - Never more than `max-ejection-percent` of the fleet at once, but at least one endpoint
//!   may be ejected unless the percent is 0 (which turns ejection off).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::EjectionConfig;

/// One endpoint's ejection record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outlier {
    /// Failures in a row.
    consecutive: u32,
    /// The multiplier of the next ejection, before decay.
    multiplier: u32,
    /// Ejected until then.
    until: Option<Instant>,
    /// Back in rotation since then (for the multiplier's decay).
    back_since: Option<Instant>,
    /// Ejections so far.
    pub(crate) total: u64,
}

/// How many of `fleet` endpoints may be ejected at once.
pub(crate) fn allowed(fleet: usize, max_percent: u8) -> usize {
    if max_percent == 0 || fleet == 0 {
        return 0;
    }
    (fleet * usize::from(max_percent) / 100).max(1)
}

impl Outlier {
    /// Ejected at `now`: until when.
    pub(crate) fn ejected_until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|&u| u > now)
    }

    /// A success: the count of failures in a row starts again.
    pub(crate) fn success(&mut self) {
        self.consecutive = 0;
    }

    /// A failure at `now`; ejects (and says until when) when it makes
    /// `consecutive-failures` in a row and `ejected` (of `fleet`) leaves room.
    pub(crate) fn failure(
        &mut self,
        now: Instant,
        policy: &EjectionConfig,
        fleet: usize,
        ejected: usize,
    ) -> Option<Instant> {
        if self.ejected_until(now).is_some() {
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive < policy.consecutive_failures
            || ejected >= allowed(fleet, policy.max_percent)
        {
            return None;
        }
        let decay = match (self.back_since, policy.base_time.as_nanos()) {
            (Some(since), base) if base > 0 => {
                let periods = now.saturating_duration_since(since).as_nanos() / base;
                u32::try_from(periods).unwrap_or(u32::MAX)
            }
            _ => 0,
        };
        self.multiplier = self.multiplier.saturating_sub(decay).saturating_add(1);
        let length = policy
            .base_time
            .saturating_mul(self.multiplier)
            .min(policy.max_time);
        let until = supervisor::deadline(now, length);
        self.until = Some(until);
        self.back_since = None;
        self.consecutive = 0;
        self.total += 1;
        Some(until)
    }

    /// The ejection ran out at `now`: back in rotation (if it was ejected).
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        match self.until {
            Some(until) if until <= now => {
                self.until = None;
                self.back_since = Some(now);
                true
            }
            _ => false,
        }
    }

    /// The length of the ejection that ends at `until`, begun at `since` (for logs).
    pub(crate) fn length(since: Instant, until: Instant) -> Duration {
        until.saturating_duration_since(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EjectionConfig {
        EjectionConfig {
            consecutive_failures: 3,
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(35),
            max_percent: 50,
        }
    }

    #[test]
    fn allowed_share_is_at_least_one_unless_off() {
        assert_eq!(allowed(4, 50), 2);
        assert_eq!(allowed(4, 10), 1, "at least one");
        assert_eq!(allowed(10, 10), 1);
        assert_eq!(allowed(10, 100), 10);
        assert_eq!(allowed(3, 0), 0, "0 turns ejection off");
        assert_eq!(allowed(0, 50), 0);
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let p = policy();
        let t = Instant::now();
        let mut o = Outlier::default();
        assert_eq!(o.failure(t, &p, 4, 0), None);
        assert_eq!(o.failure(t, &p, 4, 0), None);
        o.success();
        assert_eq!(o.failure(t, &p, 4, 0), None);
        assert_eq!(o.failure(t, &p, 4, 0), None);
        assert_eq!(o.failure(t, &p, 4, 0), Some(t + Duration::from_secs(10)));
        assert_eq!(o.total, 1);
        assert!(o.ejected_until(t).is_some());
        // Failures while ejected change nothing.
        assert_eq!(o.failure(t, &p, 4, 1), None);
    }

    #[test]
    fn the_interval_grows_per_ejection_up_to_the_cap_and_decays_in_rotation() {
        let p = policy();
        let mut t = Instant::now();
        let mut o = Outlier::default();
        let mut lengths = vec![];
        for _ in 0..5 {
            let until = (0..3)
                .find_map(|_| o.failure(t, &p, 4, 0))
                .expect("ejected");
            lengths.push(Outlier::length(t, until).as_secs());
            t = until;
            assert!(o.expire(t));
        }
        assert_eq!(lengths, [10, 20, 30, 35, 35]);
        // 35 s back in rotation: the multiplier (5) drops by three before growing by one.
        t += Duration::from_secs(35);
        let until = (0..3)
            .find_map(|_| o.failure(t, &p, 4, 0))
            .expect("ejected");
        assert_eq!(Outlier::length(t, until).as_secs(), 30);
        // A long healthy stretch forgives every ejection.
        t = until;
        o.expire(t);
        t += Duration::from_secs(3600);
        let until = (0..3)
            .find_map(|_| o.failure(t, &p, 4, 0))
            .expect("ejected");
        assert_eq!(Outlier::length(t, until).as_secs(), 10);
    }

    #[test]
    fn never_more_than_the_share_of_the_fleet() {
        let p = policy();
        let t = Instant::now();
        let mut o = Outlier::default();
        // Two of four already ejected: 50 % reached.
        assert!((0..10).all(|_| o.failure(t, &p, 4, 2).is_none()));
        assert_eq!(o.total, 0);
        // Room again: the failures in a row count.
        assert!(o.failure(t, &p, 4, 1).is_some());
    }

    #[test]
    fn expire_only_when_due() {
        let p = policy();
        let t = Instant::now();
        let mut o = Outlier::default();
        let until = (0..3)
            .find_map(|_| o.failure(t, &p, 2, 0))
            .expect("ejected");
        assert!(!o.expire(t));
        assert!(o.ejected_until(until).is_none());
        assert!(o.expire(until));
        assert!(!o.expire(until), "once");
    }
}
