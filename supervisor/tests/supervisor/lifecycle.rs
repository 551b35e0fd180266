//! Start, crash, restart, disable/enable, drop.

use std::{sync::Arc, time::Duration};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use supervisor::{Backoff, Exit, FailKind, Intensity, Job, NoHooks, Policy, Restart, State};
use tokio::time::Instant;

use crate::support::{self, is_running, kinds, sh, sleeper, wait_for};

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

#[tokio::test]
async fn sigkill_of_child_restarts_it_with_a_new_pid() {
    let policy = support::quick_policy();
    let job = Job::spawn("sigkill", sleeper(), policy, Arc::new(NoHooks));
    let mut events = job.subscribe();

    let first = support::events_until(&mut events, "first run", is_running).await;
    assert_eq!(kinds(&first), ["Starting", "Running"]);
    assert_eq!(first[0], State::Starting { attempt: 0 });
    let old = first[1].pid().unwrap();

    sigkill(old);
    let after = support::events_until(&mut events, "second run", is_running).await;
    assert_eq!(kinds(&after), ["BackingOff", "Starting", "Running"]);
    let State::BackingOff {
        attempt,
        delay,
        last_exit,
        ..
    } = &after[0]
    else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    assert_eq!(*delay, Duration::from_millis(20));
    assert_eq!(
        *last_exit,
        Exit::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
    assert_eq!(after[1], State::Starting { attempt: 1 });
    let new = after[2].pid().unwrap();
    assert_ne!(new, old);
    assert!(support::is_gone(old));

    let stats = job.stats();
    assert_eq!((stats.starts, stats.restarts), (2, 1));
    assert_eq!(stats.pid, Some(new));
    assert_eq!(stats.last_exit.as_ref(), Some(last_exit));

    job.stop(Duration::from_secs(2)).await;
    assert_eq!(job.current(), State::Stopped);
    assert!(support::is_gone(new));
    assert_eq!(job.stats().pid, None);
}

/// The same on a multi-threaded runtime (watch-based waits: transitions may happen before a
/// subscriber exists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigkill_on_a_multi_threaded_runtime() {
    let job = Job::spawn("mt", sleeper(), support::quick_policy(), Arc::new(NoHooks));
    let old = wait_for(&job, "Running", is_running).await.pid().unwrap();
    sigkill(old);
    let new = wait_for(
        &job,
        "Running again",
        |s| matches!(s, State::Running { pid, .. } if *pid != old),
    )
    .await
    .pid()
    .unwrap();
    assert!(support::is_gone(old));
    let stats = job.stats();
    assert_eq!((stats.starts, stats.restarts), (2, 1));
    job.stop(Duration::from_secs(2)).await;
    assert!(support::is_gone(new));
    assert_eq!(job.current(), State::Stopped);
}

#[tokio::test]
async fn stable_run_restarts_at_once() {
    let policy = Policy {
        min_uptime: Duration::ZERO,
        ..support::quick_policy()
    };
    let job = Job::spawn("stable", sleeper(), policy, Arc::new(NoHooks));
    let mut events = job.subscribe();
    let first = support::events_until(&mut events, "first run", is_running).await;
    sigkill(first[1].pid().unwrap());
    let after = support::events_until(&mut events, "second run", is_running).await;
    assert_eq!(kinds(&after), ["Starting", "Running"]);
    assert_eq!(job.stats().restarts, 1);
    job.stop(Duration::from_secs(2)).await;
}

/// The crash loop of the issue: delays grow per the schedule, then `Failed` at the intensity
/// limit, while this process's CPU time stays small. Runs alone so the CPU figure is ours.
#[test]
fn crash_loop_backs_off_then_fails_at_the_intensity_limit() {
    if !support::isolated("lifecycle::crash_loop_backs_off_then_fails_at_the_intensity_limit") {
        return;
    }
    support::block_on(async {
        let policy = Policy {
            restart: Restart::Always,
            backoff: Backoff::new(Duration::from_millis(30), 2.0, Duration::from_secs(10), 0.0)
                .unwrap(),
            intensity: Some(Intensity {
                max_restarts: 5,
                window: Duration::from_secs(60),
            }),
            ..Policy::default()
        };
        let cpu_before = support::cpu_time();
        let started = Instant::now();
        let job = Job::spawn(
            "crasher",
            sh("echo \"boom from $$\" >&2; exit 3"),
            policy,
            Arc::new(NoHooks),
        );
        let mut events = job.subscribe();
        let seen =
            support::events_until(&mut events, "Failed", |s| matches!(s, State::Failed { .. }))
                .await;
        let wall = started.elapsed();
        let cpu = support::cpu_time() - cpu_before;

        let backoffs: Vec<(u32, Duration)> = seen
            .iter()
            .filter_map(|s| match s {
                State::BackingOff {
                    attempt,
                    delay,
                    last_exit,
                    ..
                } => {
                    assert_eq!(*last_exit, Exit::Exited { code: 3 });
                    Some((*attempt, *delay))
                }
                _ => None,
            })
            .collect();
        let expected: Vec<(u32, Duration)> = [30, 60, 120, 240, 480]
            .into_iter()
            .enumerate()
            .map(|(i, ms)| (i as u32 + 1, Duration::from_millis(ms)))
            .collect();
        assert_eq!(backoffs, expected);
        assert!(wall >= Duration::from_millis(930), "{wall:?}");

        let Some(State::Failed { reason }) = seen.last() else {
            unreachable!()
        };
        assert_eq!(
            reason.kind,
            FailKind::IntensityExceeded {
                max_restarts: 5,
                window: Duration::from_secs(60)
            }
        );
        assert_eq!(reason.last_exit, Some(Exit::Exited { code: 3 }));
        assert!(
            reason
                .stderr_tail
                .iter()
                .any(|l| l.starts_with("boom from")),
            "{reason}"
        );
        let text = reason.to_string();
        assert!(text.contains("more than 5 restarts") && text.contains("exited with code 3"));
        assert_eq!(job.stats().starts, 6);

        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        println!(
            "crash loop: 6 starts in {wall:?}, supervisor CPU {cpu:?} ({:.1} %)",
            share * 100.0
        );
        assert!(share < 0.2, "supervisor used {cpu:?} of CPU in {wall:?}");
    });
}

#[tokio::test]
async fn never_policy_stops_after_a_clean_exit_and_fails_after_a_crash() {
    let policy = Policy {
        restart: Restart::Never,
        ..support::quick_policy()
    };
    let clean = Job::spawn("clean", sh("exit 0"), policy.clone(), Arc::new(NoHooks));
    wait_for(&clean, "Stopped", |s| *s == State::Stopped).await;
    assert_eq!(clean.stats().last_exit, Some(Exit::Exited { code: 0 }));

    let crash = Job::spawn("crash", sh("exit 7"), policy, Arc::new(NoHooks));
    let state = wait_for(&crash, "Failed", |s| matches!(s, State::Failed { .. })).await;
    let State::Failed { reason } = state else {
        unreachable!()
    };
    assert_eq!(reason.kind, FailKind::NotRestarted);
    assert_eq!(reason.last_exit, Some(Exit::Exited { code: 7 }));

    // Restart policy `OnFailure` restarts after exit 7 but not after exit 0.
    let policy = Policy {
        restart: Restart::OnFailure,
        ..support::quick_policy()
    };
    let clean = Job::spawn("on-failure", sh("exit 0"), policy, Arc::new(NoHooks));
    wait_for(&clean, "Stopped", |s| *s == State::Stopped).await;
    assert_eq!(clean.stats().starts, 1);
}

#[tokio::test]
async fn disable_enable_and_explicit_restart() {
    let job = Job::spawn(
        "toggle",
        sleeper(),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let first = wait_for(&job, "Running", is_running).await.pid().unwrap();

    job.disable(Duration::from_secs(2)).await;
    assert_eq!(job.current(), State::Disabled);
    assert!(support::is_gone(first));
    // Stop on a disabled job keeps it disabled.
    job.stop(Duration::from_secs(2)).await;
    assert_eq!(job.current(), State::Disabled);

    job.enable().await;
    let second = wait_for(&job, "Running again", is_running)
        .await
        .pid()
        .unwrap();
    assert_ne!(first, second);
    // Enable on a running job does nothing.
    job.enable().await;
    assert_eq!(job.current().pid(), Some(second));

    let mut events = job.subscribe();
    job.restart().await;
    assert!(support::is_gone(second));
    let seen = support::events_until(&mut events, "Running after restart", is_running).await;
    let third = seen.last().unwrap().pid().unwrap();
    assert_ne!(third, second);
    assert!(kinds(&seen).contains(&"Starting"));
    // Explicit restarts are not counted as automatic ones.
    assert_eq!(job.stats().restarts, 0);
    assert_eq!(job.stats().starts, 3);

    job.stop(Duration::from_secs(2)).await;
    assert_eq!(job.current(), State::Stopped);
    // Restart also starts a stopped job.
    job.restart().await;
    wait_for(&job, "Running from Stopped", is_running).await;
    job.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn dropping_the_last_handle_kills_the_child() {
    let job = Job::spawn(
        "dropped",
        sleeper(),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let clone = job.clone();
    let mut state = job.state();
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    drop(job);
    assert!(!support::is_gone(pid), "one handle is left");
    drop(clone);
    assert!(support::wait_gone_async(pid, Duration::from_secs(2)).await);
    // The owner reports the end on the state channel, then closes it: `Stopped`
    // must be published (`wait_for` still sees the last value of a closed
    // channel, so `Err` here means the channel closed without it).
    let last = tokio::time::timeout(support::WAIT, state.wait_for(|s| *s == State::Stopped))
        .await
        .expect("the owner publishes the end within the wait")
        .map(|_| ());
    assert!(last.is_ok(), "the state channel closed without `Stopped`");
    let closed = tokio::time::timeout(support::WAIT, state.changed())
        .await
        .expect("the owner ends and closes the state channel");
    assert!(
        closed.is_err(),
        "a state after `Stopped`: {:?}",
        *state.borrow()
    );
    assert_eq!(*state.borrow(), State::Stopped);
}

#[tokio::test]
async fn resources_of_the_running_child() {
    let job = Job::spawn(
        "busy",
        sh("while :; do :; done"),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let first = job.resources().expect("resources of a running child");
    assert_eq!(first.pid, pid);
    assert_eq!(first.cpu_percent, None, "a rate needs two samples");
    assert!(first.rss_bytes > 0);
    // A rate needs a measurement interval; this sleep is that interval, not synchronisation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = job.resources().unwrap();
    let cpu = second.cpu_percent.expect("second sample has a rate");
    assert!(cpu > 5.0, "a busy loop used {cpu} % CPU");
    assert!(second.cpu_time > Duration::ZERO);
    job.stop(Duration::from_secs(2)).await;
    assert_eq!(job.resources(), None);
}
