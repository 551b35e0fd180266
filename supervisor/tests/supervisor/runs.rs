//! Run ids and the `run_ended` hook: one id per spawned child, and `run_ended` exactly once per
//! run, after the child is gone and before the next spawn, on every path out of a run.

use std::{sync::atomic::Ordering, time::Duration};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use supervisor::{Backoff, Exit, Job, Liveness, Policy, Restart, State};

use crate::support::{
    self, ReadyMode, RunEvent, SIGKILL, SIGTERM, TestHooks, assert_runs, is_running, sh, sleeper,
    wait_for,
};

fn running_run(state: &State) -> (u64, u32) {
    match state {
        State::Running { run, pid, .. } => (*run, *pid),
        other => panic!("not running: {other:?}"),
    }
}

#[tokio::test]
async fn each_spawn_gets_the_next_run_id_and_ends_once() {
    let hooks = TestHooks::new(ReadyMode::Immediate);
    let job = Job::spawn("ids", sleeper(), support::quick_policy(), hooks.clone());
    let (run, pid) = running_run(&wait_for(&job, "run 1", is_running).await);
    assert_eq!(run, 1);
    assert_eq!(job.current().run(), Some(1));

    // Path: the child exits (killed from outside); restarted as run 2.
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let state = wait_for(&job, "run 2", |s| {
        matches!(s, State::Running { run: 2, .. })
    })
    .await;
    let (_, pid2) = running_run(&state);
    assert_ne!(pid2, pid);

    // Path: an explicit restart (a stop with a new start); run 3.
    job.restart().await;
    wait_for(&job, "run 3", |s| {
        matches!(s, State::Running { run: 3, .. })
    })
    .await;

    // Path: a stop.
    let mut events = job.subscribe();
    job.stop(Duration::from_secs(2)).await;
    let seen = support::events_until(&mut events, "Stopped", |s| *s == State::Stopped).await;
    assert_eq!(seen[0].run(), Some(3));

    let exits = assert_runs(&hooks.run_events());
    assert_eq!(exits, [SIGKILL, SIGTERM, SIGTERM]);
    assert_eq!(job.stats().last_exit, Some(SIGTERM));
}

#[tokio::test]
async fn run_ended_after_failed_and_timed_out_readiness() {
    let hooks = TestHooks::new(ReadyMode::Fail("bad handshake".into()));
    let job = Job::spawn("fails", sleeper(), support::quick_policy(), hooks.clone());
    hooks.wait_ended(2).await;
    job.stop(Duration::from_secs(2)).await;
    let exits = assert_runs(&hooks.run_events());
    assert!(exits.len() >= 2);
    let failed = Exit::ReadinessFailed {
        error: "bad handshake".into(),
    };
    assert!(exits.iter().all(|e| *e == failed), "{exits:?}");

    let hooks = TestHooks::new(ReadyMode::Hang);
    let policy = Policy {
        start_timeout: Duration::from_millis(50),
        ..support::quick_policy()
    };
    let job = Job::spawn("slow", sleeper(), policy, hooks.clone());
    hooks.wait_ended(2).await;
    job.stop(Duration::from_secs(2)).await;
    let exits = assert_runs(&hooks.run_events());
    let timed_out = Exit::ReadinessTimedOut {
        after: Duration::from_millis(50),
    };
    assert_eq!(&exits[..2], [timed_out.clone(), timed_out]);
}

#[tokio::test]
async fn run_ended_after_a_liveness_kill() {
    let hooks = TestHooks::new(ReadyMode::Immediate);
    hooks.healthy.store(false, Ordering::SeqCst);
    let policy = Policy {
        liveness: Some(Liveness {
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(1),
            failure_threshold: 2,
        }),
        ..support::quick_policy()
    };
    let job = Job::spawn("unhealthy", sleeper(), policy, hooks.clone());
    hooks.wait_ended(1).await;
    job.stop(Duration::from_secs(2)).await;
    let exits = assert_runs(&hooks.run_events());
    assert_eq!(
        exits[0],
        Exit::LivenessFailed {
            failures: 2,
            last_error: "unhealthy".into()
        }
    );
}

#[tokio::test]
async fn run_ended_when_the_last_handle_is_dropped() {
    // While running.
    let hooks = TestHooks::new(ReadyMode::Immediate);
    let job = Job::spawn("dropped", sleeper(), support::quick_policy(), hooks.clone());
    wait_for(&job, "Running", is_running).await;
    drop(job);
    let events = hooks.wait_ended(1).await;
    assert_eq!(assert_runs(&events), [SIGKILL]);

    // While the readiness hook runs.
    let hooks = TestHooks::new(ReadyMode::Hang);
    let job = Job::spawn(
        "dropped-starting",
        sleeper(),
        support::quick_policy(),
        hooks.clone(),
    );
    hooks.wait_first_run().await;
    drop(job);
    let events = hooks.wait_ended(1).await;
    assert_eq!(assert_runs(&events), [SIGKILL]);
}

/// Fault F12: a child that exits at start makes a stdout-reading readiness hook fail ("stdout
/// closed") at about the time the owner sees the exit. Whichever comes first, the run's exit
/// is the child's status. 20 runs to defeat the race, on a multi-threaded runtime (as the host
/// uses), where the stdout reader and the owner run on different threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_at_start_is_not_lost_to_the_readiness_error() {
    const RUNS: usize = 20;
    let hooks = TestHooks::new(ReadyMode::FirstLine);
    let policy = Policy {
        restart: Restart::Always,
        backoff: Backoff::new(Duration::from_millis(1), 1.0, Duration::from_millis(1), 0.0)
            .unwrap(),
        ..Policy::default()
    };
    let job = Job::spawn("exit-7", sh("exit 7"), policy, hooks.clone());
    hooks.wait_ended(RUNS).await;
    job.stop(Duration::from_secs(2)).await;
    let events = hooks.run_events();
    let exits = assert_runs(&events);
    assert!(exits.len() >= RUNS);
    let wrong: Vec<_> = exits
        .iter()
        .filter(|e| **e != Exit::Exited { code: 7 })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} runs: {wrong:?}",
        wrong.len(),
        exits.len()
    );
    assert_eq!(job.stats().last_exit, Some(Exit::Exited { code: 7 }));
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, RunEvent::Ready { run: 0, .. })),
        "run ids start at 1"
    );
}
