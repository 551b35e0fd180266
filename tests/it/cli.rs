//! The `polaris-plugin` command line.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::support::{bin, companion_yaml, eventually, pid_gone};

fn cli() -> Command {
    let mut cmd = Command::new(bin("polaris-plugin"));
    cmd.env("NO_COLOR", "1");
    cmd
}

fn write_config(dir: &std::path::Path, extra_args: &str) -> std::path::PathBuf {
    let path = dir.join("host.yaml");
    std::fs::write(
        &path,
        format!(
            "plugins:\n  - name: rl\n    mode: companion\n    companion:\n      path: {}\n      args: [{extra_args}]\n",
            bin("rate-limit-server-v2").display()
        ),
    )
    .unwrap();
    path
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("polaris-plugin-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn call_prints_the_reply_as_json() {
    let dir = temp_dir("call");
    let config = write_config(&dir, "");
    let out = cli()
        .args(["call", "--oneshot"])
        .arg(&config)
        .args([
            "rl",
            "--message",
            "RateLimitPluginRequest",
            "--json",
            r#"{"type":"APIRatelimit","key":"/users"}"#,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["type"], "proto.RateLimitPluginResponse");
    assert_eq!(v["reply"]["allow"], true);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn call_with_bad_json_says_what_is_wrong() {
    let dir = temp_dir("badjson");
    let config = write_config(&dir, "");
    let out = cli()
        .arg("call")
        .arg("--oneshot")
        .arg(&config)
        .args([
            "rl",
            "--message",
            "RateLimitPluginRequest",
            "--json",
            r#"{"kee":"x"}"#,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("proto.RateLimitPluginRequest"), "{stderr}");
    let out = cli()
        .arg("call")
        .arg("--oneshot")
        .arg(&config)
        .args(["rl", "--message", "NoSuchMessage"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("bundled types"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let dir = temp_dir("run");
    let (pid_file, stopped) = (dir.join("plugin.pid"), dir.join("stopped"));
    // The fixture dies by SIGTERM, and writes `stopped` only after a graceful
    // stop: "exit 0 host=alive" there means the host stopped it through
    // `Shutdown` while the host still ran.
    let config = dir.join("host.yaml");
    std::fs::write(
        &config,
        companion_yaml(
            "rl",
            &bin("fixture-plugin"),
            &[
                "--die-on-sigterm",
                "--pid-file",
                pid_file.to_str().unwrap(),
                "--stopped",
                stopped.to_str().unwrap(),
            ],
            "",
        ),
    )
    .unwrap();
    let mut host = cli()
        .arg("run")
        .arg(&config)
        .args(["--admin-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the plugin to be ready, reading the host's log.
    let mut lines = BufReader::new(host.stderr.take().unwrap()).lines();
    let mut log = String::new();
    loop {
        let line = lines.next().expect("host log ended early").unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("state=ready") {
            break;
        }
    }
    let plugin: u32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = host.wait().unwrap();
    let log = format!("{log}{}", rest.join("\n"));
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        pid_gone(plugin),
        "the plugin outlived the host; log:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&stopped).ok().as_deref(),
        Some("exit 0 host=alive"),
        "the plugin did not end through Shutdown while the host ran; log:\n{log}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Kills the host if a test fails before it exits (its plugin follows: the
/// supervisor sets a parent-death signal).
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// F4: a host whose stderr is a full pipe nobody reads keeps reading its
/// plugin's stderr (dropping log lines instead of blocking) and still stops on
/// SIGTERM.
#[test]
fn run_never_blocks_on_an_unread_stderr() {
    // Far more than the host's stderr pipe (64 KiB, some 600 host lines), its
    // log queue (1024 lines) and the plugin's stderr pipe hold together: once
    // the plugin has written them all, the host has been past a full stderr
    // for thousands of lines.
    const LINES: u32 = 10_000;
    let dir = temp_dir("unread-stderr");
    let done = dir.join("spewed");
    let config = dir.join("host.yaml");
    let spew = LINES.to_string();
    let done_arg = done.display().to_string();
    std::fs::write(
        &config,
        companion_yaml(
            "rl",
            &bin("fixture-plugin"),
            &["--spew-stderr", &spew, "--spew-done", &done_arg],
            "",
        ),
    )
    .unwrap();
    let mut host = Host(
        cli()
            .arg("run")
            .arg(&config)
            .args(["--admin-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Held, never read until the host has exited.
    let mut stderr = host.0.stderr.take().unwrap();

    let bound = Duration::from_secs(20);
    let spewed = std::panic::catch_unwind(|| {
        eventually(bound, "the plugin to write all its lines", || done.exists())
    })
    .is_ok();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut status = None;
    let exited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(bound, "the host to exit after SIGTERM", || {
            status = host.0.try_wait().unwrap();
            status.is_some()
        })
    }))
    .is_ok();
    assert!(
        spewed && exited,
        "with its stderr unread, the host {}and {}",
        if spewed {
            ""
        } else {
            "stopped reading the plugin's stderr (the plugin blocked) "
        },
        if exited {
            "exited on SIGTERM"
        } else {
            "did not exit within 20 s of SIGTERM"
        }
    );
    let status = status.unwrap();
    assert!(status.success(), "exit {status:?}");

    // The pipe did fill, and lines were dropped rather than waited for.
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    let forwarded = log.matches("fixture spews line").count();
    assert!(log.len() > 32 * 1024, "{} bytes: {log}", log.len());
    assert!(
        forwarded < LINES as usize / 2,
        "{forwarded} lines forwarded"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_validates_without_starting() {
    let dir = temp_dir("check");
    let config = write_config(&dir, "");
    let out = cli().arg("check").arg(&config).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 plugin(s), ok"));
    std::fs::write(
        &config,
        "plugins:\n  - name: rl\n    mode: companion\n    companion: { path: /nonexistent }\n",
    )
    .unwrap();
    let out = cli().arg("check").arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_prints_each_binary_digest_and_whether_it_matches_its_pin() {
    let dir = temp_dir("check-pin");
    let config = write_config(&dir, "");
    let binary = bin("rate-limit-server-v2");
    let digest = polaris_plugin::config::Sha256Digest::of_file(&binary)
        .unwrap()
        .to_string();
    let out = cli().arg("check").arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256 {digest}  (not pinned)")),
        "{stdout}"
    );

    let pinned = |pin: &str| {
        let yaml = std::fs::read_to_string(&config).unwrap();
        let yaml = yaml
            .lines()
            .filter(|l| !l.contains("sha256"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&config, format!("{yaml}\n      sha256: {pin}\n")).unwrap();
        cli().arg("check").arg(&config).output().unwrap()
    };
    let out = pinned(&digest.to_uppercase());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256 {digest}  (pinned, matches)")),
        "{stdout}"
    );

    let other = "0".repeat(64);
    let out = pinned(&other);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "sha256 {digest}  (pinned, MISMATCH: companion.sha256 is {other}"
        )),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_and_run_refuse_a_config_without_plugins() {
    let dir = temp_dir("empty");
    let config = dir.join("host.yaml");
    for (yaml, says) in [
        ("server: { port: 8090 }\n", "configures no plugins"),
        (
            "pluigns:\n  - { name: r, mode: remote, remote: { address: 'h:1' } }\n",
            "did you mean plugins?",
        ),
        (
            "plugin:\n  - { name: r, mode: remote, remote: { address: 'h:1' } }\n",
            "for a list of plugins, write plugins:",
        ),
        (
            "plugin:\n  rl: { option: { name: r, mod: remote, remote: { address: 'h:1' } } }\n",
            "did you mean option.mode?",
        ),
    ] {
        std::fs::write(&config, yaml).unwrap();
        for command in ["check", "run"] {
            let out = cli().arg(command).arg(&config).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} {yaml:?}: {stderr}");
            assert!(stderr.contains(says), "{command} {yaml:?}: {stderr}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A config whose one companion is `/bin/true` (not a plugin), not restarted.
fn not_a_plugin_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("host.yaml");
    let extra = "      restart:\n        max-restarts: 0\n        window: 60s\n";
    std::fs::write(
        &config,
        companion_yaml("np", std::path::Path::new("/bin/true"), &[], extra),
    )
    .unwrap();
    config
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = temp_dir("json");
    let config = not_a_plugin_config(&dir);
    let flag = cli()
        .args(["call", "--oneshot", "--log-format", "json"])
        .arg(&config)
        .args(["np", "--message", "RateLimitPluginRequest"])
        .output()
        .unwrap();
    let env = cli()
        .env("POLARIS_PLUGIN_LOG_FORMAT", "json")
        .arg("call")
        .arg("--oneshot")
        .arg(&config)
        .args(["np", "--message", "RateLimitPluginRequest"])
        .output()
        .unwrap();
    for out in [flag, env] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let (log, error): (Vec<&str>, Vec<&str>) =
            stderr.lines().partition(|l| !l.starts_with("error: "));
        assert_eq!(error.len(), 1, "{stderr}");
        // At least the failed start (a warning) is logged.
        assert!(!log.is_empty(), "{stderr}");
        for line in log {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"));
            assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_shot_commands_are_quiet_by_default_and_uncoloured_on_a_pipe() {
    let dir = temp_dir("quiet");
    let config = write_config(&dir, "");
    let call = |rust_log: Option<&str>| {
        let mut cmd = cli();
        // Colour follows the terminal, not NO_COLOR alone: stderr is a pipe.
        cmd.env_remove("NO_COLOR").env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd
            .arg("call")
            .arg("--oneshot")
            .arg(&config)
            .args(["rl", "--message", "RateLimitPluginRequest"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let quiet = call(None);
    assert_eq!(quiet, "", "a successful call logs nothing by default");
    let verbose = call(Some("info"));
    assert!(
        verbose.contains(" INFO "),
        "RUST_LOG=info overrides:\n{verbose}"
    );
    assert!(!verbose.contains('\u{1b}'), "colour on a pipe:\n{verbose}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `run` logs at info by default, and a plugin's plain stderr line (here
/// why it exits at start) is there at INFO under the plugin's name.
#[test]
fn run_logs_a_plugins_plain_stderr_at_info() {
    let dir = temp_dir("plain-stderr");
    let config = dir.join("host.yaml");
    let extra = "      restart:\n        max-restarts: 0\n        window: 60s\n";
    std::fs::write(
        &config,
        companion_yaml(
            "crashy",
            &bin("fixture-plugin"),
            &["--exit-at-start", "7"],
            extra,
        ),
    )
    .unwrap();
    let mut host = Host(
        cli()
            .env_remove("RUST_LOG")
            .arg("run")
            .arg(&config)
            .args(["--admin-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = BufReader::new(host.0.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    // The stderr reader drains before the run's end is published: the line
    // comes before the failed state.
    for line in lines {
        let line = line.unwrap();
        let failed = line.contains("state=failed");
        log.push(line);
        if failed {
            break;
        }
    }
    let log = log.join("\n");
    assert!(
        log.lines().any(|l| l.contains(" INFO ")
            && l.contains("fixture: exiting at start with code 7")
            && l.contains("plugin=\"crashy\"")),
        "{log}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(host.0.wait().unwrap().success(), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}
