//! CPU placement: affinity and GOMAXPROCS as `max_procs` says, read back from /proc.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use nix::{
    sched::{CpuSet, sched_getaffinity},
    unistd::Pid,
};
use supervisor::{CpuLimit, Error, FailKind, Job, NoHooks, Spec, SpecError, State};

use crate::support::{self, is_running, sleeper, wait_for};

fn allowed() -> Vec<usize> {
    let set = sched_getaffinity(Pid::from_raw(0)).unwrap();
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap())
        .collect()
}

fn with_cpu(limit: CpuLimit) -> Spec {
    Spec {
        cpu: Some(limit),
        ..sleeper()
    }
}

/// Runs a job with `limit`; returns (chosen CPUs, the child's Cpus_allowed_list, its GOMAXPROCS).
async fn placement(limit: CpuLimit) -> (Vec<usize>, Vec<usize>, String) {
    let job = Job::spawn(
        "pinned",
        with_cpu(limit),
        support::quick_policy(),
        Arc::new(NoHooks),
    );
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let chosen = job.stats().cpus.expect("chosen CPUs are reported");
    let actual = support::parse_cpu_list(&support::status_field(pid, "Cpus_allowed_list").unwrap());
    let gomaxprocs = support::environ(pid)
        .into_iter()
        .find_map(|v| v.strip_prefix("GOMAXPROCS=").map(str::to_owned))
        .expect("GOMAXPROCS is set");
    job.stop(Duration::from_secs(2)).await;
    (chosen, actual, gomaxprocs)
}

#[tokio::test]
async fn max_procs_sets_affinity_and_gomaxprocs() {
    let allowed = allowed();
    let (chosen, actual, gomaxprocs) = placement(CpuLimit::MaxProcs(NonZeroUsize::MIN)).await;
    assert_eq!(chosen.len(), 1);
    assert!(allowed.contains(&chosen[0]));
    assert_eq!(actual, chosen);
    assert_eq!(gomaxprocs, "1");
}

#[tokio::test]
async fn max_procs_above_the_allowed_set_is_clamped() {
    let allowed = allowed();
    let (chosen, actual, gomaxprocs) =
        placement(CpuLimit::MaxProcs(NonZeroUsize::new(10_000).unwrap())).await;
    assert_eq!(chosen, allowed);
    assert_eq!(actual, allowed);
    assert_eq!(gomaxprocs, allowed.len().to_string());
}

#[tokio::test]
async fn explicit_cpu_list_is_applied() {
    let last = *allowed().last().unwrap();
    let (chosen, actual, gomaxprocs) = placement(CpuLimit::Cpus(vec![last])).await;
    assert_eq!(chosen, [last]);
    assert_eq!(actual, [last]);
    assert_eq!(gomaxprocs, "1");
}

#[tokio::test]
async fn cpu_list_outside_the_allowed_set_is_an_error() {
    let spec = with_cpu(CpuLimit::Cpus(vec![100_000]));
    let error = Job::try_spawn(
        "bad-cpus",
        spec.clone(),
        Default::default(),
        Arc::new(NoHooks),
    )
    .unwrap_err();
    let Error::InvalidSpec { job, source } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(job, "bad-cpus");
    assert!(matches!(
        source,
        SpecError::CpuNotAllowed { cpu: 100_000, .. }
    ));
    assert!(error.to_string().contains("CPU 100000"), "{error}");

    // `spawn` does not panic: the job is Failed with the same error.
    let job = Job::spawn("bad-cpus", spec, Default::default(), Arc::new(NoHooks));
    let State::Failed { reason } = job.current() else {
        panic!("{:?}", job.current())
    };
    assert_eq!(reason.kind, FailKind::Invalid(error));

    let empty = with_cpu(CpuLimit::Cpus(vec![]));
    let error =
        Job::try_spawn("no-cpus", empty, Default::default(), Arc::new(NoHooks)).unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidSpec {
            source: SpecError::EmptyCpuList { .. },
            ..
        }
    ));
}

/// The child's limit `name` from /proc/PID/limits: (soft, hard).
fn proc_limit(pid: u32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap();
    let mut fields = line[name.len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn resource_limits_are_set_in_the_child_before_it_runs() {
    let spec = Spec {
        limits: supervisor::Limits {
            address_space: Some(512 << 20),
            open_files: Some(64),
            processes: Some(4096),
        },
        ..sleeper()
    };
    let job = Job::spawn("limited", spec, support::quick_policy(), Arc::new(NoHooks));
    let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
    let bytes = (512u64 << 20).to_string();
    assert_eq!(proc_limit(pid, "Max address space"), (bytes.clone(), bytes));
    assert_eq!(
        proc_limit(pid, "Max open files"),
        ("64".into(), "64".into())
    );
    assert_eq!(
        proc_limit(pid, "Max processes"),
        ("4096".into(), "4096".into())
    );
    job.destroy(Duration::from_secs(1)).await;
}
