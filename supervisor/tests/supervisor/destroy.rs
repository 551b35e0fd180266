//! `Job::destroy`: terminal. The child is gone, `Destroyed` is the last state a watcher sees,
//! and no later command has an effect.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use supervisor::{Backoff, Exit, Job, NoHooks, Policy, State};

use crate::support::{
    self, ReadyMode, RunEvent, SIGTERM, TestHooks, assert_runs, is_running, kinds, sh, sleeper,
    wait_for,
};

const GRACE: Duration = Duration::from_secs(5);

/// Waits (bounded) for the state channel to close; asserts `Destroyed` was its last value.
async fn assert_closed_on_destroyed(job: &Job) {
    let mut rx = job.state();
    let closed =
        tokio::time::timeout(support::WAIT, async { while rx.changed().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the state channel did not close");
    assert_eq!(*rx.borrow(), State::Destroyed);
    assert_eq!(job.current(), State::Destroyed);
}

/// Every command resolves at once and nothing changes: no new child, still `Destroyed`.
async fn assert_commands_have_no_effect(job: &Job, hooks: &TestHooks) {
    let before = hooks.run_events();
    let starts = job.stats().starts;
    let all = async {
        job.restart().await;
        job.enable().await;
        job.stop(GRACE).await;
        job.disable(GRACE).await;
        job.destroy(GRACE).await;
    };
    tokio::time::timeout(support::WAIT, all)
        .await
        .expect("commands after destroy resolve");
    assert_eq!(job.current(), State::Destroyed);
    assert_eq!(job.stats().starts, starts);
    assert_eq!(hooks.run_events(), before);
}

#[tokio::test]
async fn destroy_while_running() {
    let hooks = TestHooks::new(ReadyMode::Immediate);
    let job = Job::spawn("running", sleeper(), support::quick_policy(), hooks.clone());
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let mut events = job.subscribe();
    job.destroy(GRACE).await;
    assert_eq!(job.current(), State::Destroyed);
    assert!(support::is_gone(pid));
    assert_eq!(hooks.pre_stops.load(Ordering::SeqCst), 1);
    let seen = support::events_until(&mut events, "Destroyed", State::is_terminal).await;
    assert_eq!(kinds(&seen), ["Stopping", "Destroyed"]);
    let exits = assert_runs(&hooks.run_events());
    assert_eq!(exits, [SIGTERM]);
    assert_closed_on_destroyed(&job).await;
    assert_commands_have_no_effect(&job, &hooks).await;
}

#[tokio::test]
async fn destroy_during_backoff() {
    let hooks = TestHooks::new(ReadyMode::Immediate);
    let policy = Policy {
        backoff: Backoff::new(Duration::from_secs(60), 2.0, Duration::from_secs(60), 0.0).unwrap(),
        ..Policy::default()
    };
    let job = Job::spawn("backing-off", sh("exit 1"), policy, hooks.clone());
    wait_for(&job, "BackingOff", |s| {
        matches!(s, State::BackingOff { .. })
    })
    .await;
    job.destroy(GRACE).await;
    assert_eq!(job.current(), State::Destroyed);
    assert_eq!(assert_runs(&hooks.run_events()), [Exit::Exited { code: 1 }]);
    assert_closed_on_destroyed(&job).await;
    assert_commands_have_no_effect(&job, &hooks).await;
}

#[tokio::test]
async fn destroy_while_the_readiness_hook_runs() {
    let hooks = TestHooks::new(ReadyMode::Hang);
    let job = Job::spawn(
        "starting",
        sleeper(),
        support::quick_policy(),
        hooks.clone(),
    );
    hooks.wait_first_run().await;
    assert!(matches!(job.current(), State::Starting { .. }));
    job.destroy(GRACE).await;
    assert_eq!(job.current(), State::Destroyed);
    // Never ready: no pre-stop hook, just SIGTERM.
    assert_eq!(hooks.pre_stops.load(Ordering::SeqCst), 0);
    let exits = assert_runs(&hooks.run_events());
    assert_eq!(exits.len(), 1);
    assert!(support::is_gone(hooks.pids.lock()[0]));
    assert_closed_on_destroyed(&job).await;
    assert_commands_have_no_effect(&job, &hooks).await;
}

#[tokio::test]
async fn destroy_at_rest() {
    for rest in ["stopped", "disabled"] {
        let hooks = TestHooks::new(ReadyMode::Immediate);
        let job = Job::spawn(rest, sleeper(), support::quick_policy(), hooks.clone());
        wait_for(&job, "Running", is_running).await;
        match rest {
            "stopped" => job.stop(GRACE).await,
            _ => job.disable(GRACE).await,
        }
        let mut events = job.subscribe();
        job.destroy(GRACE).await;
        let seen = support::events_until(&mut events, "Destroyed", State::is_terminal).await;
        assert_eq!(kinds(&seen), ["Destroyed"]);
        assert_eq!(assert_runs(&hooks.run_events()).len(), 1);
        assert_closed_on_destroyed(&job).await;
        assert_commands_have_no_effect(&job, &hooks).await;
    }
}

/// A restart and a destroy sent together, in either order: destroyed, and no second child.
#[tokio::test]
async fn destroy_racing_a_restart() {
    for destroy_first in [false, true] {
        let hooks = TestHooks::new(ReadyMode::Immediate);
        let job = Job::spawn("race", sleeper(), support::quick_policy(), hooks.clone());
        wait_for(&job, "Running", is_running).await;
        // Both commands are queued before the owner runs again (current-thread runtime).
        let (first, second) = if destroy_first {
            (job.destroy(GRACE), job.restart())
        } else {
            (job.restart(), job.destroy(GRACE))
        };
        tokio::time::timeout(support::WAIT, async { tokio::join!(first, second) })
            .await
            .expect("both resolve");
        assert_eq!(
            job.current(),
            State::Destroyed,
            "destroy first: {destroy_first}"
        );
        assert_eq!(job.stats().starts, 1, "destroy first: {destroy_first}");
        let events = hooks.run_events();
        assert_eq!(assert_runs(&events).len(), 1);
        assert!(matches!(events.last(), Some(RunEvent::Ended { .. })));
        assert_closed_on_destroyed(&job).await;
    }
}

/// Hooks whose pre-stop waits for the test to open a gate, holding the job in `Stopping`.
struct GatedStop {
    gate: tokio::sync::Semaphore,
}

impl supervisor::Hooks for GatedStop {
    fn pre_stop(&self) -> supervisor::BoxFuture<'_, ()> {
        Box::pin(async {
            let _ = self.gate.acquire().await;
        })
    }
}

/// An enable and a restart sent while the destroy's stop is in progress join it instead of
/// undoing it.
#[tokio::test]
async fn commands_during_the_destroy_do_not_undo_it() {
    let hooks = Arc::new(GatedStop {
        gate: tokio::sync::Semaphore::new(0),
    });
    let job = Job::spawn("gated", sleeper(), support::quick_policy(), hooks.clone());
    wait_for(&job, "Running", is_running).await;
    let destroy = job.destroy(GRACE);
    wait_for(&job, "Stopping", |s| matches!(s, State::Stopping { .. })).await;
    let enable = job.enable();
    let restart = job.restart();
    let stop = job.stop(GRACE);
    hooks.gate.add_permits(1);
    tokio::time::timeout(support::WAIT, async {
        tokio::join!(destroy, enable, restart, stop)
    })
    .await
    .expect("all resolve");
    assert_eq!(job.current(), State::Destroyed);
    assert_eq!(job.stats().starts, 1);
    assert_closed_on_destroyed(&job).await;
}

#[tokio::test]
async fn destroy_of_an_invalid_job_is_terminal_too() {
    let job = Job::spawn(
        "invalid",
        supervisor::Spec::new(""),
        Policy::default(),
        Arc::new(NoHooks),
    );
    assert!(matches!(job.current(), State::Failed { .. }));
    tokio::time::timeout(support::WAIT, job.destroy(GRACE))
        .await
        .unwrap();
    assert_closed_on_destroyed(&job).await;
}
