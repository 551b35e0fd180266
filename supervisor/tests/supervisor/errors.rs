//! Bad input gives clear errors, never a panic; environment handling.

use std::{io, sync::Arc, time::Duration};

use supervisor::{
    Backoff, BackoffError, Env, EnvFilter, Error, Exit, FailKind, Job, Liveness, NoHooks, Policy,
    PolicyError, Restart, Spec, SpecError, State,
};

use crate::support::{self, ReadyMode, TestHooks, is_running, sh, wait_for};

fn failed(state: &State) -> bool {
    matches!(state, State::Failed { .. })
}

#[tokio::test]
async fn missing_program_is_a_failed_start_naming_it() {
    let policy = Policy {
        restart: Restart::Never,
        ..support::quick_policy()
    };
    let job = Job::spawn(
        "missing",
        Spec::new("/nonexistent/plugin-binary"),
        policy.clone(),
        Arc::new(NoHooks),
    );
    let State::Failed { reason } = wait_for(&job, "Failed", failed).await else {
        unreachable!()
    };
    let Some(Exit::SpawnFailed { kind, error }) = &reason.last_exit else {
        panic!("{reason:?}")
    };
    assert_eq!(*kind, io::ErrorKind::NotFound);
    assert!(error.contains("/nonexistent/plugin-binary"), "{error}");
    assert!(error.contains("No such file"), "{error}");

    let job = Job::spawn(
        "not-in-path",
        Spec::new("surely-no-such-program-xyz"),
        policy,
        Arc::new(NoHooks),
    );
    let State::Failed { reason } = wait_for(&job, "Failed", failed).await else {
        unreachable!()
    };
    assert!(reason.to_string().contains("not found in PATH"), "{reason}");

    // With a restart policy, a failed spawn backs off like a crash.
    let job = Job::spawn(
        "missing-retry",
        Spec::new("/nonexistent/plugin-binary"),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let state = wait_for(&job, "BackingOff", |s| {
        matches!(s, State::BackingOff { .. })
    })
    .await;
    assert!(matches!(
        state,
        State::BackingOff {
            attempt: 1,
            last_exit: Exit::SpawnFailed { .. },
            ..
        }
    ));
    job.stop(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bad_working_directory_is_named() {
    let spec = Spec {
        cwd: Some("/nonexistent/dir".into()),
        ..support::sleeper()
    };
    let policy = Policy {
        restart: Restart::Never,
        ..support::quick_policy()
    };
    let job = Job::spawn("bad-cwd", spec, policy, Arc::new(NoHooks));
    let State::Failed { reason } = wait_for(&job, "Failed", failed).await else {
        unreachable!()
    };
    assert!(reason.to_string().contains("/nonexistent/dir"), "{reason}");
}

#[tokio::test]
async fn invalid_spec_and_policy_are_errors() {
    let hooks = Arc::new(NoHooks);
    let e = Job::try_spawn("empty", Spec::default(), Policy::default(), hooks.clone()).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidSpec {
            source: SpecError::EmptyProgram,
            ..
        }
    ));
    assert!(
        e.to_string().starts_with("job `empty`: invalid spec"),
        "{e}"
    );

    let nul = Spec::new("sleep").args(["a\0b"]);
    let e = Job::try_spawn("nul", nul, Policy::default(), hooks.clone()).unwrap_err();
    assert!(e.to_string().contains("args[0]"), "{e}");

    let zero = Spec {
        max_line_len: 0,
        ..support::sleeper()
    };
    assert!(Job::try_spawn("zero", zero, Policy::default(), hooks.clone()).is_err());

    let policy = Policy {
        liveness: Some(Liveness {
            failure_threshold: 0,
            ..Liveness::default()
        }),
        ..Policy::default()
    };
    let e = Job::try_spawn("probe", support::sleeper(), policy, hooks.clone()).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidPolicy {
            source: PolicyError::ZeroFailureThreshold,
            ..
        }
    ));

    // `spawn` reports the same as a Failed state.
    let job = Job::spawn("empty", Spec::default(), Policy::default(), hooks);
    assert!(matches!(
        job.current(),
        State::Failed { reason } if matches!(reason.kind, FailKind::Invalid(_))
    ));
    // Commands on such a job resolve at once.
    tokio::time::timeout(support::WAIT, job.stop(Duration::from_secs(1)))
        .await
        .unwrap();
}

#[test]
fn spawn_outside_a_runtime_does_not_panic() {
    let e = Job::try_spawn(
        "no-rt",
        support::sleeper(),
        Policy::default(),
        Arc::new(NoHooks),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NoRuntime { .. }));
    let job = Job::spawn(
        "no-rt",
        support::sleeper(),
        Policy::default(),
        Arc::new(NoHooks),
    );
    assert!(matches!(job.current(), State::Failed { .. }));
}

#[test]
fn backoff_parameters_are_validated() {
    let ms = Duration::from_millis;
    assert_eq!(
        Backoff::new(Duration::ZERO, 2.0, ms(10), 0.0),
        Err(BackoffError::ZeroInitial)
    );
    assert!(matches!(
        Backoff::new(ms(20), 2.0, ms(10), 0.0),
        Err(BackoffError::InitialAboveMax { .. })
    ));
    assert_eq!(
        Backoff::new(ms(1), 0.5, ms(10), 0.0),
        Err(BackoffError::Factor(0.5))
    );
    assert!(Backoff::new(ms(1), f64::NAN, ms(10), 0.0).is_err());
    assert_eq!(
        Backoff::new(ms(1), 2.0, ms(10), 1.0),
        Err(BackoffError::Jitter(1.0))
    );
    assert!(Backoff::new(ms(1), 1.0, ms(1), 0.99).is_ok());
}

#[tokio::test]
async fn environment_is_built_as_specified() {
    // cargo sets CARGO_* for the tests it runs, and HOME is normally set: both are removed.
    let hooks = TestHooks::new(ReadyMode::FirstLine);
    let spec = Spec {
        env: Env {
            inherit: true,
            remove: vec![
                EnvFilter::Prefix("CARGO_".into()),
                EnvFilter::Exact("HOME".into()),
            ],
            set: vec![("PLUGIN_MAGIC".into(), "cookie".into())],
        },
        ..sh(
            "echo \"${HOME-unset}|${CARGO_MANIFEST_DIR-unset}|$PLUGIN_MAGIC|${PATH:+path}\"; exec sleep 1000",
        )
    };
    let job = Job::spawn("env", spec, support::quick_policy(), hooks.clone());
    wait_for(&job, "Running", is_running).await;
    assert_eq!(hooks.first_lines.lock()[0], "unset|unset|cookie|path");
    job.stop(Duration::from_secs(1)).await;

    let hooks = TestHooks::new(ReadyMode::FirstLine);
    let spec = Spec {
        program: "/bin/sh".into(),
        env: Env {
            inherit: false,
            remove: Vec::new(),
            set: vec![("ONLY".into(), "this".into())],
        },
        ..sh("echo \"${HOME-nohome}|$ONLY\"; exec /bin/sleep 1000")
    };
    let job = Job::spawn("clean-env", spec, support::quick_policy(), hooks.clone());
    wait_for(&job, "Running", is_running).await;
    assert_eq!(hooks.first_lines.lock()[0], "nohome|this");
    job.stop(Duration::from_secs(1)).await;
}
