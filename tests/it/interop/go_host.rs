//! A Go host on hashicorp/go-plugin's client (`tests/interop/go/host`) loading
//! our Rust SDK plugin, and (as a reference) the Go plugin.

use std::{path::Path, process::Stdio, time::Duration};

use serde_json::Value;

use super::go;
use crate::support::bin;

/// Runs `go-host args`, bounded; returns its JSON report and its stderr (the
/// go-plugin client's hclog lines, with the plugin's forwarded ones).
async fn go_host(args: &[&str]) -> (Value, String) {
    let child = tokio::process::Command::new(&go().host)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("go-host finishes within 60s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("go-host report {stdout:?}: {e}\nstderr:\n{stderr}"));
    assert!(
        out.status.success(),
        "go-host {}: {report:#}\nstderr:\n{stderr}",
        out.status
    );
    (report, stderr)
}

/// Load, Dispense, 3 calls, Ping, Kill: all fine, the plugin exits 0 after
/// Shutdown within go-plugin's 2s grace, and the client logged no error.
async fn check_mode(plugin: &Path, flags: &[&str]) -> (Value, String) {
    let mut args = vec!["-plugin", plugin.to_str().unwrap(), "-calls", "3"];
    args.extend_from_slice(flags);
    let (r, stderr) = go_host(&args).await;
    let ctx = format!("{r:#}\nstderr:\n{stderr}");
    assert_eq!(r["loaded"], true, "{ctx}");
    assert_eq!(r["protocol"], "grpc", "{ctx}");
    assert_eq!(r["dispensed"], true, "{ctx}");
    assert_eq!(r["calls_ok"], 3, "{ctx}");
    assert_eq!(r["allow"], true, "{ctx}");
    assert_eq!(r["ping"], "ok", "{ctx}");
    assert_eq!(r["killed"], true, "{ctx}");
    assert_eq!(r["exit_code"], 0, "{ctx}");
    assert_eq!(r["graceful"], true, "no SIGKILL after the 2s wait: {ctx}");
    assert_eq!(r["errors"], Value::Array(vec![]), "{ctx}");
    assert_eq!(r["warnings"], Value::Array(vec![]), "{ctx}");
    eprintln!(
        "go-host × {}: Kill took {} ms",
        plugin.display(),
        r["kill_ms"]
    );
    (r, stderr)
}

#[tokio::test]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_host_loads_rust_sdk_plugin_dispense_call_ping_kill() {
    let (_, stderr) = check_mode(&bin("rate-limit-server-v2"), &[]).await;
    // Kill went through Controller/Shutdown, and the plugin's hclog JSON
    // stderr reached the Go host's logger.
    assert!(
        stderr.contains("shutdown requested by the host") && stderr.contains("plugin stopped"),
        "{stderr}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_host_loads_go_plugin_reference() {
    check_mode(&go().plugin, &[]).await;
}

/// go-plugin's AutoMTLS: the Go host puts its certificate in `PLUGIN_CLIENT_CERT`, the
/// Rust plugin serves TLS requiring it and prints its own in the handshake, the Go host
/// pins that one; load, calls, Ping and Kill (Shutdown) all go over TLS.
#[tokio::test]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_host_with_auto_mtls_loads_rust_sdk_plugin() {
    let (_, stderr) = check_mode(&bin("rate-limit-server-v2"), &["-automtls"]).await;
    assert!(
        stderr.contains("configuring client automatic mTLS"),
        "{stderr}"
    );
    // The plugin's own log line, forwarded by the Go host: it served TLS.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("plugin serving") && l.contains(r#""tls":true"#)),
        "{stderr}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_host_bench_mode_reports_percentiles() {
    for concurrency in ["1", "4"] {
        let (r, stderr) = go_host(&[
            "-bench",
            "-plugin",
            bin("rate-limit-server-v2").to_str().unwrap(),
            "-calls",
            "300",
            "-concurrency",
            concurrency,
        ])
        .await;
        let ctx = format!("{r:#}\nstderr:\n{stderr}");
        assert_eq!(r["calls"], 300, "{ctx}");
        assert_eq!(r["errors"], 0, "{ctx}");
        let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {ctx}"));
        assert!(
            num("p50_us") > 0.0 && num("p50_us") <= num("p99_us"),
            "{ctx}"
        );
        assert!(num("p99_us") <= num("p999_us"), "{ctx}");
        assert!(num("calls_per_sec") > 0.0, "{ctx}");
        eprintln!("go-host bench × rate-limit-server-v2, concurrency {concurrency}: {r}");
    }
}
