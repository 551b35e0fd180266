//! The admin API of a running host (`polaris-plugin run`), and the command line acting on
//! it: real host and plugin processes, real sockets.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;

use crate::support::{
    bin, companion_yaml, eventually,
    http::{Sse, http, http_json},
    pid_gone, scratch_dir,
};

const WAIT: Duration = Duration::from_secs(20);

/// A `polaris-plugin run` process; SIGTERM and reaped on drop.
struct Host {
    child: Child,
    url: String,
    stderr: PathBuf,
}

impl Host {
    /// Runs `config`, the admin API on a free loopback port.
    fn start(config: &Path) -> Host {
        let stderr = config.with_extension("stderr");
        let mut child = Command::new(bin("polaris-plugin"))
            .arg("run")
            .arg(config)
            .args(["--admin-listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "no admin address in {line:?}; stderr: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .trim_end_matches('/')
            .to_owned();
        Host { child, url, stderr }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, then the exit code.
    fn stop(&mut self) -> Option<i32> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        self.child.wait().unwrap().code()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

fn cli(args: &[&str]) -> Output {
    Command::new(bin("polaris-plugin"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A limiter that allows two calls, then (refilling one token per 100 s) denies.
fn limiter_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("host.yaml");
    let yaml = companion_yaml(
        "rl",
        &bin("rate-limit-server-v2"),
        &["--rate", "0.01", "--burst", "2"],
        extra,
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn wait_ready(host: &Host) -> Value {
    let mut view = Value::Null;
    let url = host.at("/maintain/v1/plugins/rl");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, v) = http_json("GET", &url, None, None).await;
        assert_eq!(status, 200, "{v}");
        if v["ready"] == true {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not ready: {view}");
        view = v;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST .../rl/call` with an empty request.
async fn call_rl(host: &Host) -> (u16, Value) {
    let url = host.at("/maintain/v1/plugins/rl/call");
    http_json(
        "POST",
        &url,
        Some(r#"{"message":"RateLimitPluginRequest"}"#),
        None,
    )
    .await
}

fn call_args(admin: &str) -> Vec<&str> {
    vec![
        "call",
        "rl",
        "--admin",
        admin,
        "--message",
        "RateLimitPluginRequest",
        "--json",
        r#"{"type":"APIRatelimit","key":"/users"}"#,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_api_act_on_the_running_host() {
    let dir = scratch_dir("admin");
    let mut host = Host::start(&limiter_config(&dir, ""));
    let view = wait_ready(&host).await;
    let pid = view["pid"].as_u64().unwrap();
    assert_eq!(view["mode"], "companion");
    assert_eq!(view["run"], 1);

    // status: the running host's plugin (same pid), as a table and as JSON.
    let out = cli(&["status", "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("rl ") && l.contains(" ready ") && l.contains(&pid.to_string())),
        "{table}"
    );
    let out = cli(&["status", "--admin", &host.url, "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["plugins"][0]["pid"], pid);

    // call: one limiter across calls (two allowed, then denied), every field printed.
    let allows: Vec<Value> = (0..3)
        .map(|_| {
            let out = cli(&call_args(&host.url));
            assert!(out.status.success(), "{}", text(&out.stderr));
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["type"], "proto.RateLimitPluginResponse", "{v}");
            v["reply"]["allow"].clone()
        })
        .collect();
    assert_eq!(allows, [true, true, false]);

    // The API's call route, with a deadline of its own; bad requests are named.
    let url = host.at("/maintain/v1/plugins/rl/call");
    let (status, v) = http_json(
        "POST",
        &url,
        Some(r#"{"message":"proto.RateLimitPluginRequest","json":{"key":"/x"},"timeout":"3s"}"#),
        None,
    )
    .await;
    assert_eq!(
        (status, v["reply"]["allow"].clone()),
        (200, Value::Bool(true)),
        "{v}"
    );
    let (status, v) = http_json("POST", &url, Some(r#"{"message":"Nope"}"#), None).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Nope"), "{v}");
    assert_eq!(v["plugin"], "rl");
    let (status, v) = http_json("GET", &host.at("/maintain/v1/plugins/nope"), None, None).await;
    assert_eq!(
        (status, v["plugin"].clone()),
        (404, Value::from("nope")),
        "{v}"
    );

    // A SIGKILL shows up as events and as a restart in the metrics.
    let mut events = Sse::open(&host.at("/maintain/v1/events")).await;
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let exited = events.until(WAIT, |e| e["kind"] == "exited").await;
    assert_eq!(exited["plugin"], "rl");
    assert_eq!(exited["pid"], pid);
    assert!(
        exited["exit"].as_str().unwrap().contains("SIGKILL"),
        "{exited}"
    );
    let ready = events.until(WAIT, |e| e["kind"] == "ready").await;
    assert_ne!(ready["pid"], pid);
    assert!(ready["seq"].as_u64() > exited["seq"].as_u64());
    let (status, metrics) = http("GET", &host.at("/metrics"), None, None).await;
    assert_eq!(status, 200);
    for sample in [
        r#"polaris_plugin_restarts_total{plugin="rl"} 1"#,
        r#"polaris_plugin_calls_total{plugin="rl",outcome="ok"} 4"#,
        r#"polaris_plugin_calls_total{plugin="rl",outcome="error"} 0"#,
        r#"polaris_plugin_call_duration_seconds_count{plugin="rl"} 4"#,
        r#"polaris_plugin_up{plugin="rl"} 1"#,
        r#"polaris_plugin_state{plugin="rl",state="ready"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == sample),
            "no {sample} in\n{metrics}"
        );
    }

    // disable / enable / restart through the command line, each answering when done.
    let out = cli(&["disable", "rl", "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("now disabled"),
        "{}",
        text(&out.stdout)
    );
    let (status, v) = call_rl(&host).await;
    assert_eq!(status, 503, "{v}");
    let (status, _) = http("GET", &host.at("/readyz"), None, None).await;
    assert_eq!(status, 200, "a disabled plugin is not waited for");
    let out = cli(&["status", "--admin", &host.url]);
    assert!(
        out.status.success(),
        "disabled is not 'not ready': {}",
        text(&out.stderr)
    );
    let out = cli(&["enable", "rl", "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = wait_ready(&host).await["pid"].clone();
    let out = cli(&["restart", "rl", "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("restart done; now ready"),
        "{}",
        text(&out.stdout)
    );
    let (_, view) = http_json("GET", &host.at("/maintain/v1/plugins/rl"), None, None).await;
    let after = view["pid"].clone();
    assert_ne!(before, after);

    let last_pid = after.as_u64().unwrap() as u32;
    assert_eq!(host.stop(), Some(0));
    eventually(WAIT, "the plugin to exit with its host", || {
        pid_gone(last_pid)
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn events_replay_from_a_sequence_number() {
    let dir = scratch_dir("admin-events");
    let host = Host::start(&limiter_config(&dir, ""));
    wait_ready(&host).await;
    // The host's whole story so far: starting, then ready, numbered from 1.
    let mut events = Sse::open(&host.at("/maintain/v1/events?after=0")).await;
    let first = events.next(WAIT).await;
    assert_eq!(
        (first["seq"].clone(), first["kind"].clone()),
        (1.into(), "starting".into())
    );
    events.until(WAIT, |e| e["kind"] == "ready").await;
    let (status, list) =
        http_json("GET", &host.at("/maintain/v1/events?after=1"), None, None).await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.first(), Some(&2), "{list}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reachable_admin_address_without_a_token_is_refused_at_start() {
    let dir = scratch_dir("admin-open");
    let config = limiter_config(&dir, "admin:\n  listen: 0.0.0.0:0\n");
    let out = Command::new(bin("polaris-plugin"))
        .arg("run")
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("admin.listen") && stderr.contains("token-file"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_token_is_required_and_never_logged() {
    let dir = scratch_dir("admin-token");
    let token = format!("t0k-{}", fastrand::u64(..));
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let host = Host::start(&limiter_config(&dir, "admin:\n  token-file: token\n"));
    let url = host.at("/maintain/v1/plugins");
    let (status, v) = http_json("GET", &url, None, None).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("bearer token"), "{v}");
    let (status, _) = http("GET", &url, None, Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = http("GET", &url, None, Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = http("GET", &host.at("/metrics"), None, None).await;
    assert_eq!(status, 401, "metrics are guarded too");
    let (status, _) = http("GET", &host.at("/healthz"), None, None).await;
    assert_eq!(status, 200, "liveness is open");
    // The command line reads the token from --token-file, or from the file CONFIG names.
    let token_file = dir.join("token");
    eventually(WAIT, "status with --token-file to succeed", || {
        let args = [
            "status",
            "--admin",
            &host.url,
            "--token-file",
            token_file.to_str().unwrap(),
        ];
        cli(&args).status.success()
    });
    let config = dir.join("host.yaml");
    let out = cli(&["status", config.to_str().unwrap(), "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli(&["status", "--admin", &host.url]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bearer token"),
        "{}",
        text(&out.stderr)
    );
    let logged = host.stderr();
    assert!(!logged.is_empty());
    assert!(!logged.contains(&token), "the token was logged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_a_host_status_runs_the_plugins_once_and_says_so() {
    let dir = scratch_dir("admin-oneshot");
    // An address nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = limiter_config(&dir, &format!("admin:\n  listen: 127.0.0.1:{port}\n"));
    let config = config.to_str().unwrap();
    let out = cli(&["status", config, "--wait", "20s"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("no host answers at http://127.0.0.1:{port}"))
            && stderr.contains("once"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("rl ") && l.contains(" ready "))
    );
    // Without a config there is nothing to fall back to: a clear error.
    let out = cli(&["status", "--admin", &format!("http://127.0.0.1:{port}")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("polaris-plugin run CONFIG"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parses Prometheus text with the Prometheus project's own Python parser
/// (`prometheus_client.parser`); the samples as `name{labels} value` lines, sorted.
fn reference_parse(exposition: &str) -> Result<Vec<String>, String> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out.append(f"{s.name}{{{labels}}} {s.value:g}")
print("\n".join(sorted(out)))
"#;
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    Ok(text(&out.stdout).lines().map(str::to_owned).collect())
}

#[tokio::test]
#[cfg_attr(
    not(interop_python),
    ignore = "needs Python with prometheus_client: run .ci/install-interop"
)]
async fn metrics_parse_with_the_reference_parser_and_count_the_calls() {
    let dir = scratch_dir("admin-metrics");
    let host = Host::start(&limiter_config(&dir, ""));
    wait_ready(&host).await;
    for _ in 0..5 {
        let (status, v) = call_rl(&host).await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, metrics) = http("GET", &host.at("/metrics"), None, None).await;
    assert_eq!(status, 200);
    let samples = reference_parse(&metrics).unwrap_or_else(|e| panic!("{e}\n{metrics}"));
    for want in [
        r#"polaris_plugin_calls_total{outcome="ok",plugin="rl"} 5"#,
        r#"polaris_plugin_calls_total{outcome="timeout",plugin="rl"} 0"#,
        r#"polaris_plugin_call_duration_seconds_count{plugin="rl"} 5"#,
        r#"polaris_plugin_call_duration_seconds_bucket{le="+Inf",plugin="rl"} 5"#,
        r#"polaris_plugin_restarts_total{plugin="rl"} 0"#,
        r#"polaris_plugin_in_flight{plugin="rl"} 0"#,
        r#"polaris_plugin_up{plugin="rl"} 1"#,
        r#"polaris_plugin_host_info{version="0.1.0"} 1"#,
    ] {
        assert!(
            samples.iter().any(|s| s == want),
            "no {want} in\n{}",
            samples.join("\n")
        );
    }
    // Buckets are cumulative, ordered by their bound.
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.strip_prefix("polaris_plugin_call_duration_seconds_bucket{le=\""))
        .map(|s| {
            let (le, rest) = s.split_once('"').unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, rest.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.len(), 17, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A native config of companions `name → args`, each the rate limiter.
fn companions(dir: &Path, plugins: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("host.yaml");
    let mut yaml = String::from("plugins:\n");
    for (name, args) in plugins {
        yaml.push_str(&format!(
            "  - name: {name}\n    mode: companion\n    companion:\n      path: {}\n      args: [{args}]\n",
            bin("rate-limit-server-v2").display()
        ));
    }
    // Written beside, then renamed: the host never reads half a file.
    let staging = dir.join("host.yaml.new");
    std::fs::write(&staging, yaml).unwrap();
    std::fs::rename(&staging, &path).unwrap();
    path
}

async fn pids(host: &Host) -> HashMap<String, u64> {
    let (_, v) = http_json("GET", &host.at("/maintain/v1/plugins"), None, None).await;
    v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Waits until the host reports `n` reloads done or refused.
async fn reloads(host: &Host, key: &str, n: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = http_json("GET", &host.at("/maintain/v1/reload"), None, None).await;
        if v[key] == n {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reload: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_ready(host: &Host, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = http_json("GET", &host.at("/maintain/v1/plugins"), None, None).await;
        let plugins = v["plugins"].as_array().unwrap();
        if plugins.len() == n && plugins.iter().all(|p| p["ready"] == true) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not ready: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sighup_changes_only_what_the_config_changed() {
    let dir = scratch_dir("admin-reload");
    let config = companions(&dir, &[("a", ""), ("b", ""), ("c", "\"--rate\", \"5\"")]);
    let mut host = Host::start(&config);
    all_ready(&host, 3).await;
    let before = pids(&host).await;

    // d added, b removed, c changed, a untouched.
    companions(&dir, &[("a", ""), ("c", "\"--rate\", \"6\""), ("d", "")]);
    kill(Pid::from_raw(host.child.id() as i32), Signal::SIGHUP).unwrap();
    let status = reloads(&host, "done", 1).await;
    assert_eq!(
        status["last"]["added"],
        serde_json::json!(["d"]),
        "{status}"
    );
    assert_eq!(
        status["last"]["removed"],
        serde_json::json!(["b"]),
        "{status}"
    );
    assert_eq!(
        status["last"]["changed"],
        serde_json::json!(["c"]),
        "{status}"
    );
    assert_eq!(
        status["last"]["unchanged"],
        serde_json::json!(["a"]),
        "{status}"
    );
    all_ready(&host, 3).await;
    let after = pids(&host).await;
    assert_eq!(after["a"], before["a"], "a is untouched");
    assert_ne!(after["c"], before["c"], "c runs its new configuration");
    assert!(!after.contains_key("b"));
    eventually(WAIT, "b's process to be gone", || {
        pid_gone(before["b"] as u32)
    });
    let (_, c) = http_json("GET", &host.at("/maintain/v1/plugins/c"), None, None).await;
    assert_eq!(c["upgrades"]["done"], 1, "{c}");

    // An invalid config changes nothing, by SIGHUP or through the API.
    std::fs::write(
        &config,
        "plugins:\n  - name: a\n    mode: companion\n    companion: { path: /nonexistent }\n",
    )
    .unwrap();
    kill(Pid::from_raw(host.child.id() as i32), Signal::SIGHUP).unwrap();
    let status = reloads(&host, "refused", 1).await;
    assert!(
        status["last"]["refused"]
            .as_str()
            .unwrap()
            .contains("/nonexistent"),
        "{status}"
    );
    let (code, v) = http_json("POST", &host.at("/maintain/v1/reload"), None, None).await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("reload refused, nothing changed"),
        "{v}"
    );
    assert_eq!(pids(&host).await, after);

    // The CLI reloads one plugin by blue/green.
    let out = cli(&["reload", "--plugin", "a", "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(pids(&host).await["a"], after["a"]);
    assert_eq!(host.stop(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `describe` and method calls with JSON go through the running host's admin API: the
/// typed plugin's reflection describes it, the CLI calls `api.RateLimiter/Allow`, and bad
/// requests are refused with what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_method_calls_through_the_running_host() {
    let dir = scratch_dir("admin-typed");
    let config = dir.join("host.yaml");
    let yaml = companion_yaml("rl", &bin("rate-limit-typed"), &[], "");
    std::fs::write(&config, yaml).unwrap();
    let host = Host::start(&config);
    wait_ready(&host).await;

    let out = cli(&["describe", "rl", "--admin", &host.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("rl: services from the plugin (gRPC reflection v1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Allow(api.RateLimitRequest) returns (api.RateLimitResponse)"),
        "{stdout}"
    );

    let out = cli(&[
        "call",
        "rl",
        "api.RateLimiter/Allow",
        "--admin",
        &host.url,
        "--json",
        r#"{"type":"APIRatelimit","key":"/users"}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["reply"]["allow"], true, "{reply}");

    let url = host.at("/maintain/v1/plugins/rl/call");
    let (status, v) = http_json(
        "POST",
        &url,
        Some(r#"{"method":"api.RateLimiter/Deny","json":{}}"#),
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Allow"), "{v}");
    let (status, v) = http_json(
        "POST",
        &url,
        Some(r#"{"method":"api.RateLimiter/Allow","json":{},"descriptor_set":"!!"}"#),
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("base64"), "{v}");
    let (status, v) = http_json(
        "POST",
        &url,
        Some(r#"{"message":"RateLimitPluginRequest","method":"api.RateLimiter/Allow"}"#),
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = http_json(
        "GET",
        &host.at("/maintain/v1/plugins/rl/describe"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["source"], "reflection");
    assert_eq!(v["plugin"], "rl");
}
