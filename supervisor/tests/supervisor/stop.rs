//! Graceful stop: grace budget, process group, concurrent stops, stop during backoff.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use supervisor::{Backoff, Exit, Job, NoHooks, Policy, State};
use tokio::time::Instant;

use crate::support::{self, ReadyMode, TestHooks, is_running, kinds, sh, sleeper, wait_for};

#[tokio::test]
async fn child_ignoring_sigterm_is_killed_after_grace() {
    let hooks = TestHooks::new(ReadyMode::FirstLine);
    let job = Job::spawn(
        "stubborn",
        sh("trap '' TERM; echo ready; exec sleep 1000"),
        support::quick_policy(),
        hooks.clone(),
    );
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let mut events = job.subscribe();

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    job.stop(grace).await;
    let took = started.elapsed();

    assert!(
        took >= grace,
        "stopped after {took:?}, before the grace period"
    );
    assert!(took < grace + Duration::from_secs(2), "stop took {took:?}");
    assert_eq!(job.current(), State::Stopped);
    assert_eq!(
        job.stats().last_exit,
        Some(Exit::Signaled {
            signal: 9,
            core_dumped: false
        })
    );
    assert!(support::is_gone(pid));
    assert_eq!(hooks.pre_stops.load(Ordering::SeqCst), 1);
    let seen = support::events_until(&mut events, "Stopped", |s| *s == State::Stopped).await;
    assert_eq!(kinds(&seen), ["Stopping", "Stopped"]);
    assert_eq!(
        seen[0],
        State::Stopping {
            run: Some(1),
            pid: Some(pid)
        }
    );
}

#[tokio::test]
async fn grandchild_is_gone_after_stop() {
    let hooks = TestHooks::new(ReadyMode::FirstLine);
    // The grandchild ignores SIGTERM; the leader dies of it. Only the group SIGKILL after the
    // leader was reaped gets the grandchild.
    let job = Job::spawn(
        "parent",
        sh("(trap '' TERM; exec sleep 1000) & echo $!; wait"),
        support::quick_policy(),
        hooks.clone(),
    );
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let grandchild: u32 = hooks.first_lines.lock()[0].parse().unwrap();
    assert!(!support::is_gone(grandchild));
    assert_eq!(support::proc_stat(grandchild).unwrap().1, pid);

    let started = Instant::now();
    job.stop(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the leader should die of SIGTERM"
    );
    assert_eq!(
        job.stats().last_exit,
        Some(Exit::Signaled {
            signal: 15,
            core_dumped: false
        })
    );
    assert!(support::is_gone(pid));
    assert!(
        support::wait_gone_async(grandchild, Duration::from_secs(2)).await,
        "grandchild {grandchild} survived the stop"
    );
}

#[tokio::test]
async fn concurrent_stops_all_resolve_when_the_child_is_gone() {
    let job = Job::spawn(
        "twice",
        sh("trap '' TERM; exec sleep 1000"),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let long = job.stop(Duration::from_secs(30));
    let short = job.stop(Duration::from_millis(100));
    let started = Instant::now();
    tokio::time::timeout(support::WAIT, async { tokio::join!(long, short) })
        .await
        .expect("both stops resolve");
    // The shorter grace shortened the stop in progress.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(support::is_gone(pid));
    assert_eq!(job.current(), State::Stopped);
    // Idempotent: stopping a stopped job resolves at once.
    job.stop(Duration::from_secs(30)).await;
    assert_eq!(job.current(), State::Stopped);
}

#[tokio::test]
async fn stop_during_backoff_cancels_the_pending_restart() {
    let policy = Policy {
        backoff: Backoff::new(Duration::from_secs(60), 2.0, Duration::from_secs(60), 0.0).unwrap(),
        ..Policy::default()
    };
    let job = Job::spawn("backing-off", sh("exit 1"), policy, Arc::new(NoHooks));
    wait_for(&job, "BackingOff", |s| {
        matches!(s, State::BackingOff { .. })
    })
    .await;
    let started = Instant::now();
    job.stop(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(job.current(), State::Stopped);
    assert_eq!(job.stats().starts, 1);
}

#[tokio::test]
async fn stop_during_readiness_skips_pre_stop() {
    let hooks = TestHooks::new(ReadyMode::Hang);
    let job = Job::spawn(
        "not-ready",
        sleeper(),
        support::quick_policy(),
        hooks.clone(),
    );
    assert_eq!(job.current(), State::Starting { attempt: 0 });
    job.stop(Duration::from_secs(2)).await;
    assert_eq!(job.current(), State::Stopped);
    assert_eq!(hooks.pre_stops.load(Ordering::SeqCst), 0);
    let pid = hooks.pids.lock()[0];
    assert!(support::is_gone(pid));
}
