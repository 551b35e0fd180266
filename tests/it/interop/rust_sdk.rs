//! Rust host × Rust SDK plugin (`rate-limit-server-v2`).

use super::matrix;
use crate::support::bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_host_rust_plugin_start_call_health_kill_restart_destroy() {
    let name = "interop-rust-matrix";
    let yaml = matrix::companion_yaml(name, &bin("rate-limit-server-v2"), &[], "");
    let status = matrix::start_call_health_kill_restart_destroy(&yaml, name).await;
    // Destroy went through Controller/Shutdown: a clean exit, no signal.
    assert_eq!(
        status.last_exit,
        Some(polaris_plugin::Exit::Exited { code: 0 }),
        "{status:?}"
    );
}
