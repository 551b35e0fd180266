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

/// A Python plugin's own proto: the typed `api.RateLimiter` through
/// `PluginHandle::channel()` with the Rust client of the same proto, and `describe` from
/// grpcio's reflection, then a JSON call through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_python),
    ignore = "needs Python and grpcio: run .ci/install-interop"
)]
async fn python_plugin_typed_service_and_reflection() {
    use polaris_plugin::reflection::Source;
    let py = python();
    let name = "interop-python-typed";
    let stubs = py.stubs.to_str().unwrap();
    let yaml = matrix::companion_yaml(name, &py.plugin, &["--stubs", stubs], "");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    matrix::typed_allow_and_deny(&plugin).await;
    let described = matrix::reflection_lists_and_calls(&plugin).await;
    assert!(
        matches!(described.source(), Source::Reflection { .. }),
        "{:?}",
        described.source()
    );
    registry.destroy().await;
}
