//! A typed plugin (`rate-limit-typed`: `api.RateLimiter`, its own proto, reflection)
//! called from this host through `PluginHandle::channel()` with the generated client, and
//! described and called with JSON through reflection, from the library and the CLI.

use std::{process::Command, time::Duration};

use polaris_plugin::{Registry, config::Config, reflection::Source};
use rate_limit::typed::api::{
    PingRequest, RateLimitRequest, RatelimitType, rate_limiter_client::RateLimiterClient,
};

use crate::support::{bin, companion_yaml, scratch_dir};

fn config() -> String {
    companion_yaml(
        "typed",
        &bin("rate-limit-typed"),
        &["--rate", "1000", "--burst", "1000"],
        "",
    )
}

async fn registry() -> Registry {
    let registry =
        Registry::from_config(Config::from_yaml_str(&config(), std::path::Path::new(".")).unwrap())
            .unwrap();
    registry.wait_ready(Duration::from_secs(20)).await.unwrap();
    registry
}

#[tokio::test]
async fn a_generated_client_calls_the_typed_plugin_through_the_channel() {
    let registry = registry().await;
    let plugin = registry.plugin("typed").unwrap();
    let mut client = RateLimiterClient::new(plugin.channel());
    client.ping(PingRequest {}).await.unwrap();
    let allow = |key: &str| RateLimitRequest {
        r#type: RatelimitType::ApiRatelimit.into(),
        key: key.into(),
    };
    for _ in 0..3 {
        assert!(
            client
                .allow(allow("/users"))
                .await
                .unwrap()
                .into_inner()
                .allow
        );
    }
    let status = plugin.status();
    assert_eq!(status.calls.ok, 4, "{:?}", status.calls);
    // The plugin serves no proto.Plugin: its own answer, UNIMPLEMENTED.
    let err = plugin
        .call(polaris_plugin::codec::marshal_request(
            &polaris_plugin::proto::polaris::RateLimitPluginRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.grpc_code(), Some(tonic::Code::Unimplemented), "{err}");
    registry.destroy().await;
}

#[tokio::test]
async fn reflection_describes_the_typed_plugin_and_json_calls_it() {
    let registry = registry().await;
    let plugin = registry.plugin("typed").unwrap();
    let description = plugin.describe().await.unwrap();
    assert_eq!(description.source(), &Source::Reflection { version: "v1" });
    let names = description.service_names();
    assert!(names.iter().any(|n| n == "api.RateLimiter"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "proto.Plugin"),
        "not served: {names:?}"
    );
    let reply = plugin
        .call_json(
            &description,
            "api.RateLimiter/Allow",
            r#"{"type":"APIRatelimit","key":"/users"}"#,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply, serde_json::json!({ "allow": true }));
    let err = plugin
        .call_json(
            &description,
            "api.RateLimiter/Deny",
            "{}",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, polaris_plugin::Error::Request { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Allow"), "{err}");
    registry.destroy().await;
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let dir = scratch_dir("typed-cli");
    let path = dir.join("host.yaml");
    std::fs::write(&path, config()).unwrap();
    let out = Command::new(bin("polaris-plugin"))
        .env("NO_COLOR", "1")
        .args(args.iter().map(|a| {
            if *a == "CONFIG" {
                path.to_str().unwrap()
            } else {
                a
            }
        }))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_calls_a_method_with_json_and_describes_the_plugin() {
    let (ok, stdout, stderr) = cli(&[
        "call",
        "--oneshot",
        "CONFIG",
        "typed",
        "api.RateLimiter/Allow",
        "--json",
        r#"{"type":"APIRatelimit","key":"/users"}"#,
    ]);
    assert!(ok, "stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["reply"]["allow"], true, "{stdout}");
    assert_eq!(v["method"], "api.RateLimiter/Allow");

    let (ok, stdout, stderr) = cli(&["describe", "--oneshot", "CONFIG", "typed"]);
    assert!(ok, "stderr: {stderr}");
    assert!(
        stdout.contains("from the plugin (gRPC reflection v1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Allow(api.RateLimitRequest) returns (api.RateLimitResponse)"),
        "{stdout}"
    );

    let (ok, _, stderr) = cli(&[
        "call",
        "--oneshot",
        "CONFIG",
        "typed",
        "api.RateLimiter/Allow",
        "--json",
        r#"{"kind":"APIRatelimit"}"#,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("kind") && stderr.contains("api.RateLimitRequest"),
        "{stderr}"
    );
}
