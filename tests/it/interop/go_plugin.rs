//! Rust host × a Go plugin on hashicorp/go-plugin (`tests/interop/go/plugin`).

use std::time::Duration;

use polaris_plugin::{PluginHandle, proto::polaris::RateLimitPluginResponse};
use tracing::Level;

use super::{
    go,
    logs::logs,
    matrix::{self, probe},
};

async fn probe(plugin: &PluginHandle) -> probe::ProbeResponse {
    plugin
        .call_typed(&probe::ProbeRequest {})
        .await
        .unwrap_or_else(|e| panic!("probe: {e}"))
}

/// `Cpus_allowed_list` ("0-1", "0,2-3") as CPU numbers.
fn cpu_list(list: &str) -> Vec<usize> {
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn rust_host_go_plugin_start_call_health_kill_restart_destroy() {
    let name = "interop-go-matrix";
    let yaml = matrix::companion_yaml(name, &go().plugin, &[], "");
    let status = matrix::start_call_health_kill_restart_destroy(&yaml, name).await;
    // Destroy ends it through Controller/Shutdown: go-plugin stops its gRPC
    // server, plugin.Serve returns, main returns 0. A SIGTERM (which Go
    // plugins do not handle) or SIGKILL would show as a signal here.
    exited_0_having_logged(&status, name, "go plugin stopped");
}

/// The plugin's last run ended with exit 0 (Shutdown, not a signal) and it logged a line
/// starting with `logged`.
fn exited_0_having_logged(status: &polaris_plugin::PluginStatus, name: &str, logged: &str) {
    assert_eq!(
        status.last_exit,
        Some(polaris_plugin::Exit::Exited { code: 0 }),
        "{status:?}"
    );
    let lines = logs().of(name);
    assert!(
        lines.iter().any(|l| l.message.starts_with(logged)),
        "no line {logged:?}: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_plugin_gomaxprocs_and_affinity_equal_max_procs() {
    let host_cpus = std::thread::available_parallelism().unwrap().get();
    for max_procs in [1usize, 2] {
        let name = format!("interop-go-procs-{max_procs}");
        let yaml = matrix::companion_yaml(
            &name,
            &go().plugin,
            &[],
            &format!("      max-procs: {max_procs}\n"),
        );
        let (registry, plugin) = matrix::start(&yaml, &name).await;
        let expected = max_procs.min(host_cpus);
        let seen = probe(&plugin).await;
        let status = plugin.status();
        assert_eq!(seen.name, name, "PLUGIN_NAME");
        assert_eq!(seen.pid, i64::from(status.pid.unwrap()));
        assert_eq!(seen.gomaxprocs as usize, expected, "GOMAXPROCS: {seen:?}");
        let affinity = cpu_list(&seen.cpus_allowed_list);
        assert_eq!(affinity.len(), expected, "affinity: {seen:?}");
        assert_eq!(Some(affinity), status.cpus, "the CPUs the host reports");
        registry.destroy().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_plugin_hclog_lines_land_at_their_tracing_level() {
    let logs = logs();
    let name = "interop-go-levels";
    let yaml = matrix::companion_yaml(name, &go().plugin, &["-log-levels"], "");
    let (registry, _plugin) = matrix::start(&yaml, name).await;
    let probes = |lines: &[super::logs::Line]| {
        lines
            .iter()
            .filter(|l| l.message.starts_with("level probe "))
            .map(|l| (l.level, l.message.clone()))
            .collect::<Vec<_>>()
    };
    let lines = logs
        .wait_for(name, Duration::from_secs(10), |l| probes(l).len() == 5)
        .await;
    let expected = [
        (Level::TRACE, "trace"),
        (Level::DEBUG, "debug"),
        (Level::INFO, "info"),
        (Level::WARN, "warn"),
        (Level::ERROR, "error"),
    ];
    for ((level, message), (want_level, word)) in probes(&lines).into_iter().zip(expected) {
        assert_eq!(level, want_level, "{message}");
        // hclog's @module (the plugin's logger name) comes along as a field.
        assert!(
            message.starts_with(&format!("level probe {word} ")) && message.contains("@module"),
            "{message}"
        );
    }
    // The start line with its key/value fields, at info.
    let start = lines
        .iter()
        .find(|l| l.message.starts_with("go plugin starting"))
        .expect("start line");
    assert_eq!(start.level, Level::INFO);
    assert!(start.message.contains("gomaxprocs=1"), "{}", start.message);
    registry.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_plugin_crash_after_n_calls_is_restarted() {
    let name = "interop-go-crash";
    let yaml = matrix::companion_yaml(name, &go().plugin, &["-crash-after", "3"], "");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    let first = plugin.status().pid.unwrap();
    // Every third call a process answers panics it mid-call. At most once
    // (the default), that call fails as a transport failure carrying the
    // panic's exit, and is not sent to the next process; the others succeed.
    for i in 1..=7 {
        let reply = plugin
            .call_typed::<_, RateLimitPluginResponse>(&matrix::request(&format!("/{i}")))
            .await;
        if i % 3 == 0 {
            let err = reply.unwrap_err();
            let polaris_plugin::Error::Transport { last_exit, .. } = &err else {
                panic!("call {i}: {err}");
            };
            assert_eq!(
                last_exit.as_ref(),
                Some(&polaris_plugin::Exit::Exited { code: 2 }),
                "{err}"
            );
        } else {
            assert!(reply.unwrap().allow, "call {i}");
        }
    }
    let status = plugin.status();
    assert!(status.restarts >= 2, "{status:?}");
    assert_ne!(status.pid, Some(first));
    assert!(
        status
            .last_exit
            .as_ref()
            .is_some_and(|e| e.to_string().contains("code 2")),
        "a Go panic exits 2: {status:?}"
    );
    // The panic and its stack trace (plain text on stderr) land at error.
    let lines = logs()
        .wait_for(name, Duration::from_secs(5), |l| {
            l.iter()
                .any(|l| l.message.starts_with("panic: crash-after 3"))
        })
        .await;
    let panic = lines
        .iter()
        .position(|l| l.message.starts_with("panic: crash-after 3"))
        .unwrap();
    assert_eq!(lines[panic].level, Level::ERROR);
    assert!(
        lines[panic + 1..]
            .iter()
            .any(|l| l.message.starts_with("goroutine ") && l.level == Level::ERROR),
        "{lines:#?}"
    );
    registry.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_plugin_survives_20_kill_restart_cycles() {
    // Each run lives only milliseconds before the next kill. With the default
    // min-uptime (1s) every such run counts as a failed start, so the restart
    // delay would grow exponentially (200ms, 400ms, ... up to 30s) and the
    // test would be about backoff. It is about recovery: min-uptime 0s makes
    // every run count as stable, so each restart happens at once.
    let name = "interop-go-20-kills";
    let extra = "      restart:\n        min-uptime: 0s\n";
    let yaml = matrix::companion_yaml(name, &go().plugin, &[], extra);
    let (registry, plugin) = matrix::start(&yaml, name).await;
    let mut took = vec![];
    for cycle in 0..20 {
        took.push(matrix::kill_and_wait_restart(&plugin).await);
        // Every call issued after the restart succeeds.
        for i in 0..5 {
            assert!(
                matrix::allow(&plugin, &format!("/{cycle}/{i}")).await,
                "cycle {cycle} call {i}"
            );
        }
        let seen = probe(&plugin).await;
        assert_eq!(seen.calls, 5, "a fresh process each cycle");
    }
    assert!(plugin.status().restarts >= 20);
    took.sort();
    eprintln!(
        "{name}: SIGKILL -> ready: min {:?}, median {:?}, max {:?} over 20 cycles",
        took[0], took[10], took[19]
    );
    registry.destroy().await;
}

/// The kill storm on a go-plugin plugin: 1000 SIGKILLs at random moments
/// after each start, 8 callers; at most once, then at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_plugin_kill_storm_keeps_the_call_contract() {
    use polaris_plugin::config::Delivery;

    use crate::storm::{assert_at_least_once, assert_at_most_once, storm_with};
    const KILLS: usize = 1000;
    let out = storm_with(&go().plugin, "-record", Delivery::AtMostOnce, KILLS).await;
    eprintln!(
        "go, at most once: {KILLS} kills, {} calls ok, {} failed (transport)",
        out.ok,
        out.failed.len()
    );
    assert_at_most_once(&out, KILLS);
    let out = storm_with(&go().plugin, "-record", Delivery::AtLeastOnce, KILLS).await;
    eprintln!("go, at least once: {KILLS} kills, {} calls ok", out.ok);
    assert_at_least_once(&out);
}

/// This host with `auto-mtls: true` and go-plugin's AutoMTLS server (v1.0.1): the Go
/// plugin answers `PLUGIN_CLIENT_CERT` with its P-521 certificate in the handshake; calls,
/// a restart with new certificates, and Shutdown all go over TLS pinned to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn rust_host_auto_mtls_go_plugin_call_restart_destroy() {
    let name = "interop-go-automtls";
    let yaml = matrix::companion_yaml(name, &go().plugin, &[], "      auto-mtls: true\n");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    assert!(matrix::allow(&plugin, "/a").await);
    // The Go plugin serves only TLS now: a plaintext check to its socket fails.
    let plaintext = crate::security::plaintext_health(&plugin.status()).await;
    assert!(plaintext.is_err(), "plaintext health check passed");
    matrix::kill_and_wait_restart(&plugin).await;
    assert!(matrix::allow(&plugin, "/b").await);
    registry.destroy().await;
    exited_0_having_logged(&plugin.status(), name, "configuring server automatic mTLS");
}

/// A Go plugin's own proto: the host calls the typed `api.RateLimiter` it serves through
/// `PluginHandle::channel()` with the Rust client generated from the same
/// `examples/proto/rate_limiter.proto`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_plugin_typed_service_through_the_channel() {
    let name = "interop-go-typed";
    let yaml = matrix::companion_yaml(name, &go().plugin, &[], "");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    matrix::typed_allow_and_deny(&plugin).await;
    registry.destroy().await;
}

/// `describe` on a go-plugin plugin: go-plugin 1.0.1 serves no reflection, so the bundled
/// descriptors answer and say so; with reflection registered (as go-plugin 1.2 and later
/// do) its own v1alpha reflection lists every service it serves, the typed one included,
/// and a method of it is called with JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn describe_a_go_plugin_with_and_without_reflection() {
    use polaris_plugin::reflection::Source;
    let name = "interop-go-describe";
    let yaml = matrix::companion_yaml(name, &go().plugin, &[], "");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    let bundled = plugin.describe().await.unwrap();
    assert!(
        matches!(bundled.source(), Source::Bundled { .. }),
        "{:?}",
        bundled.source()
    );
    assert!(bundled.service_names().iter().any(|s| s == "proto.Plugin"));
    registry.destroy().await;

    let name = "interop-go-reflection";
    let yaml = matrix::companion_yaml(name, &go().plugin, &["-reflection"], "");
    let (registry, plugin) = matrix::start(&yaml, name).await;
    let described = matrix::reflection_lists_and_calls(&plugin).await;
    assert_eq!(
        described.source(),
        &Source::Reflection { version: "v1alpha" }
    );
    assert!(
        described
            .service_names()
            .iter()
            .any(|s| s == "plugin.GRPCController")
    );
    registry.destroy().await;
}
