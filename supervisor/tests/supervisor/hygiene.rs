//! 200 kill/restart cycles leave no zombie and no leaked fd. Runs alone, so the /proc/self
//! figures are this test's.

use std::{sync::Arc, time::Duration};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use supervisor::{Job, NoHooks, Policy, State};
use tokio::time::Instant;

use crate::support::{self, is_running, sleeper, wait_for};

const CYCLES: usize = 200;

/// Waits for a running child other than `old`; returns its pid.
async fn next_pid(job: &Job, old: u32) -> u32 {
    wait_for(
        job,
        "a new running child",
        |s| matches!(s, State::Running { pid, .. } if *pid != old),
    )
    .await
    .pid()
    .unwrap()
}

#[test]
fn kill_restart_cycles_leave_no_zombies_or_fds() {
    if !support::isolated("hygiene::kill_restart_cycles_leave_no_zombies_or_fds") {
        return;
    }
    support::block_on(async {
        // Every run counts as stable, so each kill restarts at once.
        let policy = Policy {
            min_uptime: Duration::ZERO,
            restart_grace: Duration::from_millis(500),
            ..support::quick_policy()
        };
        let job = Job::spawn("cycler", sleeper(), policy, Arc::new(NoHooks));
        let mut pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
        // Warm up (the runtime's process driver, the spawner thread), then take the baseline
        // with no child running.
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        next_pid(&job, pid).await;
        job.stop(Duration::from_secs(2)).await;
        let baseline = support::fd_count();
        job.restart().await;
        pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
        let running = support::fd_count();

        let started = Instant::now();
        let mut pids = vec![pid];
        for cycle in 0..CYCLES {
            if cycle % 2 == 0 {
                kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
            } else {
                job.restart().await;
            }
            pid = next_pid(&job, pid).await;
            pids.push(pid);
        }
        let took = started.elapsed();
        assert_eq!(support::fd_count(), running, "fds while running");
        job.stop(Duration::from_secs(2)).await;

        let zombies = support::zombie_children();
        assert!(zombies.is_empty(), "zombie children: {zombies:?}");
        assert!(pids.iter().all(|&p| support::is_gone(p)));
        assert_eq!(job.stats().starts as usize, CYCLES + 3);
        assert_eq!(support::fd_count(), baseline, "fds leaked");
        println!(
            "{CYCLES} kill/restart cycles in {took:?} ({:?} per cycle); fds: {baseline} idle, \
             {running} with a child, {} after",
            took / CYCLES as u32,
            support::fd_count()
        );
    });
}
