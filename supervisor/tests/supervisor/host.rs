//! A host process SIGKILLed: its supervised child dies within a second (parent-death signal).
//!
//! The test re-runs itself in a fresh process with a role set; there it acts as the host:
//! supervises `sleep 1000`, prints the child's pid and waits to be killed.

use std::{sync::Arc, time::Duration};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use supervisor::{Job, NoHooks, Policy};

use crate::support::{self, is_running, sleeper, wait_for};

const NAME: &str = "host::sigkilled_host_takes_its_child_along";
const MARKER: &str = "SUPERVISED_CHILD_PID=";

#[test]
fn sigkilled_host_takes_its_child_along() {
    if support::role().as_deref() == Some("host") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // Worker threads come and go; the parent-death signal is tied to the spawner thread.
            let job = Job::spawn("victim", sleeper(), Policy::default(), Arc::new(NoHooks));
            let pid = wait_for(&job, "Running", is_running).await.pid().unwrap();
            println!("{MARKER}{pid}");
            // Wait to be killed; bounded in case the outer test is gone.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        return;
    }

    let mut host = support::reexec(NAME, "host");
    let pid: u32 = support::read_marker(&mut host, MARKER).parse().unwrap();
    assert!(!support::is_gone(pid));
    assert_eq!(support::proc_stat(pid).unwrap().1, host.id());

    kill(Pid::from_raw(host.id() as i32), Signal::SIGKILL).unwrap();
    host.wait().unwrap();
    let died = std::time::Instant::now();
    assert!(
        support::wait_gone(pid, Duration::from_secs(1)),
        "child {pid} outlived its SIGKILLed host by more than a second"
    );
    println!("child gone {:?} after the host was killed", died.elapsed());
}
