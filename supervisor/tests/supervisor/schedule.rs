//! The restart schedule and backoff as pure types: exact sequences, on paused time.

use std::time::Duration;

use supervisor::{Backoff, Decision, FixedJitter, Intensity, Policy, RestartSchedule};
use tokio::time::{Instant, advance};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn policy() -> Policy {
    Policy {
        min_uptime: Duration::from_secs(1),
        reset_after: Duration::from_secs(30),
        ..Policy::default()
    }
}

#[test]
fn default_backoff_sequence() {
    let delays: Vec<Duration> = Backoff::default()
        .delays(FixedJitter(0.5))
        .take(10)
        .collect();
    let expected = [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000].map(MS);
    assert_eq!(delays, expected);
    // Huge attempts saturate at the cap instead of overflowing.
    assert_eq!(
        Backoff::default().delay(u32::MAX, &mut FixedJitter(0.5)),
        Duration::from_secs(30)
    );
    assert_eq!(Backoff::default().base_delay(0), Duration::ZERO);
}

#[test]
fn jitter_spreads_within_the_fraction_and_never_past_the_cap() {
    let b = Backoff::default();
    assert_eq!(b.delay(1, &mut FixedJitter(0.0)), MS(160));
    assert_eq!(b.delay(1, &mut FixedJitter(1.0)), MS(240));
    // Attempt 8: base 25.6 s, so +20 % is capped.
    assert_eq!(b.delay(8, &mut FixedJitter(1.0)), Duration::from_secs(30));
    assert_eq!(b.delay(8, &mut FixedJitter(0.0)), MS(20480));
    // At the cap the jitter still spreads delays downwards.
    assert_eq!(b.delay(9, &mut FixedJitter(1.0)), Duration::from_secs(30));
    assert_eq!(b.delay(9, &mut FixedJitter(0.0)), Duration::from_secs(24));
    let mut rng = fastrand::Rng::with_seed(7);
    for attempt in 1..=12 {
        let base = b.base_delay(attempt);
        let d = b.delay(attempt, &mut rng);
        assert!(
            d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2).min(b.max()),
            "{d:?}"
        );
        assert!(base <= b.max());
    }
}

#[tokio::test(start_paused = true)]
async fn quick_failures_back_off_and_stable_runs_restart_at_once() {
    let mut s = RestartSchedule::new(&policy());
    let mut j = FixedJitter(0.5);
    let quick = Some(MS(100));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(s.on_exit(Instant::now(), quick, &mut j));
        advance(MS(500)).await;
    }
    assert_eq!(
        seen,
        [
            Decision::After {
                attempt: 1,
                delay: MS(200)
            },
            Decision::After {
                attempt: 2,
                delay: MS(400)
            },
            Decision::After {
                attempt: 3,
                delay: MS(800)
            },
            Decision::After {
                attempt: 4,
                delay: MS(1600)
            },
        ]
    );
    // A failed start (no uptime at all) is a quick failure too.
    assert_eq!(
        s.on_exit(Instant::now(), None, &mut j),
        Decision::After {
            attempt: 5,
            delay: MS(3200)
        }
    );
    // Stable but shorter than reset_after: at once, and the counter is kept.
    assert_eq!(
        s.on_exit(Instant::now(), Some(Duration::from_secs(5)), &mut j),
        Decision::Now
    );
    assert_eq!(
        s.on_exit(Instant::now(), quick, &mut j),
        Decision::After {
            attempt: 6,
            delay: MS(6400)
        }
    );
    // Long enough to reset.
    assert_eq!(
        s.on_exit(Instant::now(), Some(Duration::from_secs(30)), &mut j),
        Decision::Now
    );
    assert_eq!(s.failures(), 0);
    assert_eq!(
        s.on_exit(Instant::now(), quick, &mut j),
        Decision::After {
            attempt: 1,
            delay: MS(200)
        }
    );
    s.reset();
    assert_eq!(s.failures(), 0);
}

#[tokio::test(start_paused = true)]
async fn intensity_limit_counts_restarts_in_a_sliding_window() {
    let intensity = Intensity {
        max_restarts: 3,
        window: Duration::from_secs(10),
    };
    let mut s = RestartSchedule::new(&Policy {
        intensity: Some(intensity),
        ..policy()
    });
    let mut j = FixedJitter(0.5);
    let stable = Some(Duration::from_secs(2));
    for _ in 0..3 {
        assert_eq!(s.on_exit(Instant::now(), stable, &mut j), Decision::Now);
        advance(Duration::from_secs(3)).await;
    }
    // t = 9 s: three restarts at 0, 3 and 6 s are within the window.
    assert_eq!(
        s.on_exit(Instant::now(), stable, &mut j),
        Decision::GiveUp(intensity)
    );
    // t = 10 s: the first one has left the window.
    advance(Duration::from_secs(1)).await;
    assert_eq!(s.on_exit(Instant::now(), stable, &mut j), Decision::Now);
    assert_eq!(
        s.on_exit(Instant::now(), stable, &mut j),
        Decision::GiveUp(intensity)
    );

    let zero = Intensity {
        max_restarts: 0,
        window: Duration::from_secs(10),
    };
    let mut s = RestartSchedule::new(&Policy {
        intensity: Some(zero),
        ..policy()
    });
    assert_eq!(
        s.on_exit(Instant::now(), stable, &mut j),
        Decision::GiveUp(zero)
    );
}
