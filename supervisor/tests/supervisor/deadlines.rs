//! Huge durations saturate instead of overflowing `Instant + Duration` in the owner task (which
//! would panic it: `Failed(Panicked)` and a SIGKILLed child).

use std::{sync::Arc, time::Duration};

use supervisor::{Backoff, Job, Liveness, NoHooks, Policy, State};

use crate::support::{self, SIGTERM, is_running, sh, sleeper, wait_for};

/// Asserts the job did not end in `Failed(Panicked)` or any other failure.
fn assert_not_failed(job: &Job) {
    let state = job.current();
    assert!(
        !matches!(state, State::Failed { .. }),
        "job failed: {state:?}"
    );
}

#[tokio::test]
async fn stop_with_duration_max_terminates_the_child() {
    let job = Job::spawn(
        "max-grace",
        sleeper(),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    tokio::time::timeout(support::WAIT, job.stop(Duration::MAX))
        .await
        .expect("stop resolves");
    assert_not_failed(&job);
    assert_eq!(job.current(), State::Stopped);
    // SIGTERM, not the SIGKILL of a panicking owner's group guard.
    assert_eq!(job.stats().last_exit, Some(SIGTERM));
    assert!(support::is_gone(pid));
}

#[tokio::test]
async fn liveness_with_duration_max_interval_runs() {
    let policy = Policy {
        liveness: Some(Liveness {
            interval: Duration::MAX,
            timeout: Duration::MAX,
            failure_threshold: 1,
        }),
        ..support::quick_policy()
    };
    let job = Job::spawn("max-interval", sleeper(), policy, Arc::new(NoHooks));
    wait_for(&job, "Running", is_running).await;
    job.stop(Duration::from_secs(2)).await;
    assert_not_failed(&job);
    assert_eq!(job.current(), State::Stopped);
    // Stopped by the stop's SIGTERM (a panicked owner would have recorded no exit).
    assert_eq!(job.stats().last_exit, Some(SIGTERM));
}

#[tokio::test]
async fn backoff_with_a_huge_max_backs_off() {
    let policy = Policy {
        backoff: Backoff::new(Duration::MAX, 2.0, Duration::MAX, 0.0).unwrap(),
        ..support::quick_policy()
    };
    let job = Job::spawn("max-backoff", sh("exit 1"), policy, Arc::new(NoHooks));
    let state = wait_for(&job, "BackingOff or Failed", |s| {
        matches!(s, State::BackingOff { .. } | State::Failed { .. })
    })
    .await;
    let State::BackingOff { delay, .. } = state else {
        panic!("expected BackingOff, got {state:?}")
    };
    assert_eq!(delay, Duration::MAX);
    job.stop(Duration::from_secs(2)).await;
    assert_not_failed(&job);
    assert_eq!(job.current(), State::Stopped);
}
