//! `Hooks::before_spawn`: a refusal is `Failed` without an exec, it runs before every start
//! (restarts included), and a file handed back is what the child executes, whatever the path
//! names by then.

use std::{
    fs::File,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use supervisor::{FailKind, HookError, Hooks, Job, Spec, State};

use crate::support::{self, SIGKILL, is_running, wait_for};

/// A fresh directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "supervisor-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An executable script at `path`, put there by rename.
fn script(path: &Path, body: &str) {
    let staging = path.with_extension("new");
    std::fs::write(&staging, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// Allows the first `allow` starts (executing the path), refuses every later one.
struct Gate {
    allow: u32,
    calls: AtomicU32,
}

impl Hooks for Gate {
    fn before_spawn(&self, program: &Path) -> Result<Option<File>, HookError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.allow {
            Ok(None)
        } else {
            Err(HookError::msg(format!(
                "{} is not allowed",
                program.display()
            )))
        }
    }
}

#[tokio::test]
async fn a_refused_program_is_failed_and_never_executed() {
    let dir = scratch("refused");
    let (program, marker) = (dir.join("prog"), dir.join("ran"));
    script(
        &program,
        &format!("touch {}; exec sleep 1000", marker.display()),
    );
    let hooks = std::sync::Arc::new(Gate {
        allow: 0,
        calls: AtomicU32::new(0),
    });
    let job = Job::spawn(
        "refused",
        Spec::new(&program),
        support::quick_policy(),
        hooks.clone(),
    );
    let state = wait_for(&job, "Failed", |s| matches!(s, State::Failed { .. })).await;
    let State::Failed { reason } = state else {
        unreachable!()
    };
    assert_eq!(
        reason.kind,
        FailKind::Refused {
            error: format!("{} is not allowed", program.display())
        }
    );
    assert_eq!(
        reason.to_string(),
        format!("{} is not allowed", program.display())
    );
    assert_eq!(job.stats().starts, 1);
    assert_eq!(job.stats().pid, None);
    // Asked again by a restart: refused again, still not executed, no restart loop.
    job.restart().await;
    wait_for(&job, "Failed again", |s| matches!(s, State::Failed { .. })).await;
    assert_eq!(hooks.calls.load(Ordering::SeqCst), 2);
    assert!(!marker.exists(), "the refused program ran");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_restart_after_a_crash_asks_again() {
    let hooks = std::sync::Arc::new(Gate {
        allow: 1,
        calls: AtomicU32::new(0),
    });
    let job = Job::spawn(
        "recheck",
        support::sleeper(),
        support::quick_policy(),
        hooks.clone(),
    );
    let pid = wait_for(&job, "running", is_running).await.pid().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let State::Failed { reason } =
        wait_for(&job, "Failed", |s| matches!(s, State::Failed { .. })).await
    else {
        unreachable!()
    };
    assert!(
        matches!(reason.kind, FailKind::Refused { .. }),
        "{reason:?}"
    );
    assert_eq!(reason.last_exit, Some(SIGKILL));
    assert_eq!(hooks.calls.load(Ordering::SeqCst), 2);
}

/// Opens the program, then replaces the path by rename before handing the open file back:
/// the child must run what was opened.
struct OpenThenSwap {
    replacement: String,
}

impl Hooks for OpenThenSwap {
    fn before_spawn(&self, program: &Path) -> Result<Option<File>, HookError> {
        let file = File::open(program).map_err(|e| HookError::with_source("open", e))?;
        script(program, &self.replacement);
        Ok(Some(file))
    }
}

#[tokio::test]
async fn the_child_executes_the_file_the_hook_opened() {
    let dir = scratch("opened");
    let (program, marker) = (dir.join("prog"), dir.join("marker"));
    let write = |what: &str| format!("echo {what} > {}; exec sleep 1000", marker.display());
    script(&program, &write("checked"));
    let hooks = std::sync::Arc::new(OpenThenSwap {
        replacement: write("swapped"),
    });
    let job = Job::spawn(
        "opened",
        Spec::new(&program),
        support::quick_policy(),
        hooks,
    );
    wait_for(&job, "running", is_running).await;
    assert_eq!(support::first_line(&marker).await, "checked");
    job.destroy(std::time::Duration::from_secs(1)).await;

    // A binary (not a script) keeps its argv[0]: a copy of sh printing its own $0.
    let sh = dir.join("my-sh");
    std::fs::copy("/bin/sh", &sh).unwrap();
    struct Open;
    impl Hooks for Open {
        fn before_spawn(&self, program: &Path) -> Result<Option<File>, HookError> {
            Ok(Some(File::open(program).unwrap()))
        }
    }
    let echo = format!("echo \"$0\" > {}; exec sleep 1000", marker.display());
    std::fs::remove_file(&marker).unwrap();
    let job = Job::spawn(
        "argv0",
        Spec::new(&sh).args(["-c", &echo]),
        support::quick_policy(),
        std::sync::Arc::new(Open),
    );
    wait_for(&job, "running", is_running).await;
    assert_eq!(support::first_line(&marker).await, sh.to_str().unwrap());
    job.destroy(std::time::Duration::from_secs(1)).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
