//! Readiness and liveness hooks lead to restarts.

use std::{sync::atomic::Ordering, time::Duration};

use supervisor::{Exit, Job, Liveness, Policy, State};

use crate::support::{self, ReadyMode, TestHooks, is_running, kinds, sleeper, wait_for};

fn backing_off(state: &State) -> bool {
    matches!(state, State::BackingOff { .. })
}

#[tokio::test]
async fn readiness_timeout_kills_and_restarts() {
    let hooks = TestHooks::new(ReadyMode::Hang);
    let policy = Policy {
        start_timeout: Duration::from_millis(150),
        ..support::quick_policy()
    };
    let job = Job::spawn("slow-start", sleeper(), policy, hooks.clone());
    let mut events = job.subscribe();

    let first = support::events_until(&mut events, "first backoff", backing_off).await;
    assert_eq!(kinds(&first), ["Starting", "BackingOff"]);
    let State::BackingOff { last_exit, .. } = &first[1] else {
        unreachable!()
    };
    assert_eq!(
        *last_exit,
        Exit::ReadinessTimedOut {
            after: Duration::from_millis(150)
        }
    );
    // Restarted: a second child got its own readiness check, and the first one is gone.
    let second = support::events_until(&mut events, "second backoff", backing_off).await;
    assert_eq!(kinds(&second), ["Starting", "BackingOff"]);
    assert_eq!(second[0], State::Starting { attempt: 1 });
    let pids = hooks.pids.lock().clone();
    assert!(pids.len() >= 2 && pids[0] != pids[1], "{pids:?}");
    assert!(support::is_gone(pids[0]));
    job.stop(Duration::from_secs(2)).await;
    assert!(support::is_gone(pids[pids.len() - 1]));
}

#[tokio::test]
async fn readiness_error_kills_and_restarts() {
    let hooks = TestHooks::new(ReadyMode::Fail("bad handshake".into()));
    let job = Job::spawn(
        "bad-handshake",
        sleeper(),
        support::quick_policy(),
        hooks.clone(),
    );
    let state = wait_for(&job, "BackingOff", backing_off).await;
    let State::BackingOff { last_exit, .. } = state else {
        unreachable!()
    };
    assert_eq!(
        last_exit,
        Exit::ReadinessFailed {
            error: "bad handshake".into()
        }
    );
    let mut events = job.subscribe();
    support::events_until(&mut events, "a second failed start", backing_off).await;
    assert!(hooks.pids.lock().len() >= 2);
    job.stop(Duration::from_secs(2)).await;
    for pid in hooks.pids.lock().iter() {
        assert!(support::is_gone(*pid));
    }
}

fn liveness_policy() -> Policy {
    Policy {
        liveness: Some(Liveness {
            interval: Duration::from_millis(30),
            timeout: Duration::from_millis(100),
            failure_threshold: 3,
        }),
        ..support::quick_policy()
    }
}

#[tokio::test]
async fn liveness_failures_restart_the_child() {
    let hooks = TestHooks::new(ReadyMode::Immediate);
    hooks.healthy.store(false, Ordering::SeqCst);
    let job = Job::spawn("unhealthy", sleeper(), liveness_policy(), hooks.clone());
    let mut events = job.subscribe();

    let first = support::events_until(&mut events, "liveness restart", backing_off).await;
    assert_eq!(kinds(&first), ["Starting", "Running", "BackingOff"]);
    let old = first[1].pid().unwrap();
    let State::BackingOff {
        attempt, last_exit, ..
    } = &first[2]
    else {
        unreachable!()
    };
    // Never healthy: counts as a quick failure.
    assert_eq!(*attempt, 1);
    assert_eq!(
        *last_exit,
        Exit::LivenessFailed {
            failures: 3,
            last_error: "unhealthy".into()
        }
    );
    assert!(hooks.probe_count() >= 3);
    assert!(support::is_gone(old));

    hooks.healthy.store(true, Ordering::SeqCst);
    let second = support::events_until(&mut events, "running again", is_running).await;
    let new = second.last().unwrap().pid().unwrap();
    assert_ne!(new, old);
    // Healthy now: probes keep passing and the child stays up.
    hooks.wait_probes(hooks.probe_count() + 3).await;
    assert_eq!(job.current().pid(), Some(new));
    job.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn hanging_probes_time_out_and_count_as_failures() {
    let hooks = TestHooks::new(ReadyMode::Immediate);
    hooks.probe_hangs.store(true, Ordering::SeqCst);
    let job = Job::spawn("hung", sleeper(), liveness_policy(), hooks.clone());
    let state = wait_for(&job, "BackingOff", backing_off).await;
    let State::BackingOff { last_exit, .. } = state else {
        unreachable!()
    };
    let Exit::LivenessFailed {
        failures,
        last_error,
    } = last_exit
    else {
        panic!("unexpected exit {last_exit:?}")
    };
    assert_eq!(failures, 3);
    assert!(
        last_error.contains("no answer within 100ms"),
        "{last_error}"
    );
    job.stop(Duration::from_secs(2)).await;
}

/// Hooks that panic: in `ready` (the owner task) or in `stderr_line` (a reader task).
struct Panicky {
    in_ready: bool,
    pids: parking_lot::Mutex<Vec<u32>>,
}

impl supervisor::Hooks for Panicky {
    fn ready<'a>(
        &'a self,
        ctx: supervisor::ReadyContext<'a>,
    ) -> supervisor::BoxFuture<'a, Result<(), supervisor::HookError>> {
        self.pids.lock().push(ctx.pid);
        Box::pin(async move {
            if self.in_ready {
                panic!("ready hook bug");
            }
            Ok(())
        })
    }

    fn stderr_line(&self, line: &str) {
        if line == "boom" {
            panic!("stderr hook bug");
        }
    }
}

#[tokio::test]
async fn a_panicking_hook_fails_the_job_and_kills_the_child() {
    let hooks = std::sync::Arc::new(Panicky {
        in_ready: true,
        pids: Default::default(),
    });
    let job = Job::spawn("panicky", sleeper(), support::quick_policy(), hooks.clone());
    let state = wait_for(&job, "Failed", |s| matches!(s, State::Failed { .. })).await;
    let State::Failed { reason } = state else {
        unreachable!()
    };
    assert_eq!(
        reason.kind,
        supervisor::FailKind::Panicked {
            message: "ready hook bug".into()
        }
    );
    let pid = hooks.pids.lock()[0];
    assert!(support::wait_gone_async(pid, Duration::from_secs(2)).await);
    // Commands on a job whose owner is gone resolve at once.
    tokio::time::timeout(support::WAIT, job.stop(Duration::from_secs(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_panicking_line_hook_does_not_stop_the_reader() {
    let hooks = std::sync::Arc::new(Panicky {
        in_ready: false,
        pids: Default::default(),
    });
    let policy = Policy {
        restart: supervisor::Restart::Never,
        ..support::quick_policy()
    };
    let job = Job::spawn(
        "panicky-lines",
        support::sh("echo boom >&2; echo after >&2; exit 0"),
        policy,
        hooks,
    );
    wait_for(&job, "Stopped", |s| *s == State::Stopped).await;
    assert_eq!(job.stats().stderr_tail, ["boom", "after"]);
}
