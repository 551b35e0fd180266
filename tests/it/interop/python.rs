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
    use rate_limit::typed::api::{RateLimitRequest, rate_limiter_client::RateLimiterClient};
    let py = python();
    let name = "interop-python-typed";
    let stubs = py.stubs.to_str().unwrap();
    let yaml = matrix::companion_yaml(name, &py.plugin, &["--stubs", stubs], "");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    let mut client = RateLimiterClient::new(plugin.channel());
    let request = |key: &str| RateLimitRequest {
        r#type: 1,
        key: key.into(),
    };
    assert!(
        client
            .allow(request("/users"))
            .await
            .unwrap()
            .into_inner()
            .allow
    );
    assert!(
        !client
            .allow(request("deny"))
            .await
            .unwrap()
            .into_inner()
            .allow
    );

    let described = plugin.describe().await.unwrap();
    assert!(
        matches!(described.source(), Source::Reflection { .. }),
        "{:?}",
        described.source()
    );
    let names = described.service_names();
    for service in ["proto.Plugin", "api.RateLimiter", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|s| s == service), "{service} in {names:?}");
    }
    let reply = plugin
        .call_json(
            &described,
            "api.RateLimiter/Allow",
            r#"{"type":"APIRatelimit","key":"/users"}"#,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply["allow"], true, "{reply}");
    registry.destroy().await;
}
