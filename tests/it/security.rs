//! Security settings with real plugin processes: AutoMTLS between this host and Rust SDK
//! plugins (the Go peers are in `interop/`).

use std::time::Duration;

use polaris_plugin::{
    PluginHandle, PluginStatus, Registry,
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    interop::matrix::kill_and_wait_restart,
    support::{self, bin, wait_failed},
};

fn request(key: &str) -> RateLimitPluginRequest {
    RateLimitPluginRequest {
        r#type: RatelimitType::ApiRatelimit as i32,
        key: key.into(),
    }
}

async fn allow(plugin: &PluginHandle) -> bool {
    plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/k"))
        .await
        .unwrap_or_else(|e| panic!("call: {e}; {:?}", plugin.status()))
        .allow
}

/// A companion config with `auto-mtls: true` and quick restarts.
fn auto_mtls_yaml(name: &str, binary: &str, args: &[&str]) -> String {
    support::companion_yaml(
        name,
        &bin(binary),
        args,
        "      auto-mtls: true\n      restart:\n        max-restarts: 1\n        window: 60s\n        backoff: { initial: 10ms, max: 20ms }\n",
    )
}

/// A plaintext gRPC health check straight to the plugin's socket, bounded.
pub async fn plaintext_health(status: &PluginStatus) -> Result<(), String> {
    let address = status
        .address
        .as_deref()
        .expect("a running plugin's address");
    let path = address.strip_prefix("unix:").expect("a unix socket");
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("unix:{path}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "plugin".into(),
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("check: {s}"))
    };
    tokio::time::timeout(Duration::from_secs(10), check)
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mtls_companion_calls_over_tls_refuses_plaintext_and_survives_a_restart() {
    let name = "mtls";
    let registry = Registry::from_yaml_str(&auto_mtls_yaml(name, "rate-limit-server-v2", &[]))
        .await
        .unwrap();
    let plugin = registry.get(name).unwrap();
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();
    assert!(allow(&plugin).await);
    // The plugin serves only TLS: a plaintext client gets nothing from it.
    let plaintext = plaintext_health(&plugin.status()).await;
    assert!(plaintext.is_err(), "a plaintext health check passed");

    // A new run gets new certificates on both sides, and the host pins the new ones.
    kill_and_wait_restart(&plugin).await;
    assert!(allow(&plugin).await);

    registry.destroy().await;
    // Destroy went through Shutdown over the TLS control connection: exit 0, no signal.
    assert_eq!(
        plugin.status().last_exit,
        Some(polaris_plugin::Exit::Exited { code: 0 }),
        "{:?}",
        plugin.status()
    );
}

#[tokio::test]
async fn a_plugin_serving_another_certificate_than_its_handshake_names_is_refused() {
    let name = "liar";
    let registry = Registry::from_yaml_str(&auto_mtls_yaml(
        name,
        "fixture-plugin",
        &["--announce-other-cert"],
    ))
    .await
    .unwrap();
    let plugin = registry.get(name).unwrap();
    let state = wait_failed(&plugin).await.to_string();
    assert!(
        state.contains("other than the one announced in its handshake line"),
        "{state}"
    );
    registry.destroy().await;
}

#[tokio::test]
async fn auto_mtls_with_a_plugin_that_prints_no_certificate_says_to_turn_it_off() {
    let name = "plain";
    let registry = Registry::from_yaml_str(&auto_mtls_yaml(
        name,
        "fixture-plugin",
        &["--handshake-unix", "/nonexistent/plugin.sock"],
    ))
    .await
    .unwrap();
    let plugin = registry.get(name).unwrap();
    let state = wait_failed(&plugin).await.to_string();
    assert!(
        state.contains("carries no certificate") && state.contains("auto-mtls: false"),
        "{state}"
    );
    registry.destroy().await;
}

/// The environment a companion started with `env-inherit: <choice>` sees: `/bin/sh` writes
/// it to a file, then becomes the fixture plugin.
async fn environment_with(choice: &str) -> String {
    let dir = support::scratch_dir("env-inherit");
    let out = dir.join("env");
    let script = format!(
        "env > {}; exec {}",
        out.display(),
        bin("fixture-plugin").display()
    );
    let yaml = format!(
        "plugins:\n  - name: e\n    mode: companion\n    companion:\n      path: /bin/sh\n      args: [\"-c\", {script:?}]\n      env: {{ EXTRA: added }}\n      env-inherit: {choice}\n"
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("e").unwrap();
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();
    registry.destroy().await;
    let env = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    env
}

fn has(env: &str, name: &str) -> bool {
    env.lines().any(|l| l.starts_with(&format!("{name}=")))
}

#[tokio::test]
async fn env_inherit_passes_only_what_it_says_and_the_host_variables_always() {
    assert!(std::env::var_os("PATH").is_some() && std::env::var_os("HOME").is_some());
    let all = environment_with("all").await;
    let none = environment_with("none").await;
    let only = environment_with("[HOME]").await;
    assert!(has(&all, "PATH") && has(&all, "HOME"), "{all}");
    assert!(!has(&none, "PATH") && !has(&none, "HOME"), "{none}");
    assert!(has(&only, "HOME") && !has(&only, "PATH"), "{only}");
    for env in [&all, &none, &only] {
        for name in [
            "POLARIS_PLUGIN",
            "PLUGIN_NAME",
            "PLUGIN_PROTOCOL_VERSIONS",
            "GOMAXPROCS",
            "EXTRA",
        ] {
            assert!(has(env, name), "{name} missing from\n{env}");
        }
    }
}

#[tokio::test]
async fn a_plugin_past_its_memory_limit_is_restarted_and_its_status_says_why() {
    let yaml = support::companion_yaml(
        "hungry",
        &bin("fixture-plugin"),
        &["--allocate-mib", "1024"],
        "      limits: { memory: 768MiB, open-files: 256 }\n",
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("hungry").unwrap();
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();
    let pid = plugin.status().pid.unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 256 ")),
        "{limits}"
    );
    // The call makes it allocate past the limit: it aborts, and is restarted.
    let mut events = registry.events().subscribe(None);
    let e = plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/big"))
        .await
        .unwrap_err();
    assert!(matches!(e, polaris_plugin::Error::Transport { .. }), "{e}");
    let exited = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.next()).await {
            Ok(polaris_plugin::events::Next::Event(e))
                if e.kind == polaris_plugin::events::EventKind::Exited =>
            {
                break e;
            }
            Ok(_) => continue,
            Err(_) => panic!("no exit event; {:?}", plugin.status()),
        }
    };
    let reason = exited.reason.unwrap_or_default();
    assert!(
        reason.starts_with("memory limit 768MiB reached"),
        "{reason}; exit {:?}; stderr {:?}",
        exited.exit,
        plugin.stderr_tail()
    );
    let status: PluginStatus = plugin.status();
    if let Some(last_error) = &status.last_error {
        assert!(
            last_error.contains("memory limit 768MiB reached"),
            "{last_error}"
        );
    }
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();
    assert_ne!(plugin.status().pid, Some(pid), "restarted");
    registry.destroy().await;
}
