//! Output as bounded lines: floods never block the child, long lines are split.

use std::time::Duration;

use supervisor::{Job, Policy, Spec, State};

use crate::support::{self, ReadyMode, TestHooks, is_running, sh, wait_for};

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("supervisor-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The readiness hook never reads stdout while the child floods it: the child is not blocked
/// (it reaches its stderr marker), lines are dropped and counted, and none is longer than the
/// limit.
#[tokio::test]
async fn stdout_flood_during_readiness_never_blocks_the_child() {
    let hooks = TestHooks::new(ReadyMode::AfterStderr("flooded".into()));
    let spec = Spec {
        max_line_len: 1024,
        ..sh("head -c 3000000 /dev/zero | tr '\\0' x; echo; \
              i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done; \
              echo flooded >&2; exec sleep 1000")
    };
    let job = Job::spawn("flood", spec, support::quick_policy(), hooks.clone());
    wait_for(&job, "Running", is_running).await;
    let stats = job.stats();
    assert!(stats.stdout_dropped > 0, "{stats:?}");
    assert!(stats.lines_split >= 2900, "{stats:?}");
    assert!(hooks.stdout.borrow().iter().all(|l| l.len() <= 1024));
    job.stop(Duration::from_secs(2)).await;
}

/// After readiness, stdout lines go to the hook (long ones split), and the stderr tail keeps the
/// last `stderr_tail` lines.
#[tokio::test]
async fn output_after_readiness_goes_to_the_hooks() {
    let dir = scratch_dir("after-ready");
    let go = dir.join("go");
    let hooks = TestHooks::new(ReadyMode::FirstLine);
    let script = format!(
        "echo hello; while [ ! -e '{}' ]; do sleep 0.01; done; \
         head -c 5000 /dev/zero | tr '\\0' y; echo; \
         i=0; while [ $i -lt 30 ]; do echo err$i >&2; i=$((i+1)); done; \
         echo end; exec sleep 1000",
        go.display()
    );
    let spec = Spec {
        max_line_len: 1000,
        ..sh(&script)
    };
    let policy = Policy {
        stderr_tail: 5,
        ..support::quick_policy()
    };
    let job = Job::spawn("chatty", spec, policy, hooks.clone());
    wait_for(&job, "Running", is_running).await;
    assert_eq!(hooks.first_lines.lock().as_slice(), ["hello"]);

    std::fs::write(&go, b"").unwrap();
    hooks.wait_stdout(|l| l == "end").await;
    let lines = hooks.stdout.borrow().clone();
    let pieces: Vec<&String> = lines.iter().filter(|l| l.starts_with('y')).collect();
    assert_eq!(pieces.len(), 5);
    assert!(pieces.iter().all(|l| l.len() == 1000));
    assert_eq!(job.stats().lines_split, 4);

    // The stderr lines were written before "end" on stdout, but travel on another pipe.
    let mut stderr = hooks.stderr.subscribe();
    tokio::time::timeout(support::WAIT, stderr.wait_for(|l| l.len() == 30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.stats().stderr_tail,
        ["err25", "err26", "err27", "err28", "err29"]
    );
    assert_eq!(job.current().pid(), job.stats().pid);
    assert!(matches!(job.current(), State::Running { .. }));
    job.stop(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
