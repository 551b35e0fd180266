//! Deadlines that cannot overflow: `Instant + Duration` panics past the clock's range, and the
//! public API takes raw durations (`Job::stop(Duration::MAX)` means "wait as long as it takes").

use std::time::Duration;

use tokio::time::Instant;

/// The farthest a deadline is put: about 100 years, "never" for a supervisor.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + after`, saturated at about 100 years from `now`. Never panics.
pub fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR))
        // The monotonic clock counts from boot, so `now + FAR` fits; if a platform's clock
        // ever did not, an hour is still far better than a panic in the owner task.
        .or_else(|| now.checked_add(Duration::from_secs(3600)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_ordinary_durations_exactly() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::ZERO), now);
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }

    #[test]
    fn saturates_instead_of_panicking() {
        let now = Instant::now();
        for after in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            let at = deadline(now, after);
            assert!(
                at >= now + Duration::from_secs(50 * 365 * 24 * 3600),
                "{after:?}"
            );
        }
    }
}
