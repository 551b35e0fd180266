//! Rust host × a Python plugin on grpcio (handshake written by hand).

use super::{matrix, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_python),
    ignore = "needs Python and grpcio: run .ci/install-interop"
)]
async fn rust_host_python_plugin_start_call_health_kill_restart_destroy() {
    let py = python();
    let name = "interop-python-matrix";
    let stubs = py.stubs.to_str().unwrap();
    let yaml = matrix::companion_yaml(name, &py.plugin, &["--stubs", stubs], "");
    let status = matrix::start_call_health_kill_restart_destroy(&yaml, name).await;
    // The plugin implements Controller/Shutdown (and SIGTERM): a clean exit.
    assert_eq!(
        status.last_exit,
        Some(polaris_plugin::Exit::Exited { code: 0 }),
        "{status:?}"
    );
}
