//! Test helpers: example binaries, plugin processes, bounded waits.

pub mod http;

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use polaris_plugin::{
    handshake::{Handshake, PluginAddr},
    protocol::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE},
};
use tonic::transport::{Channel, Endpoint};

pub mod browser;

/// The path of an example binary or of the `polaris-plugin` command line, built once per
/// test run (they are other packages, so cargo does not build them for this test target).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // target/<profile>/deps/it-HASH -> target/<profile>
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let profile = match dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_owned(),
            other => other.to_owned(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "polaris-plugin-examples",
                "-p",
                "polaris-plugin-cli",
                "--bins",
                "--profile",
                &profile,
            ])
            .status()
            .expect("run cargo build for the example plugins");
        assert!(status.success(), "building the example plugins failed");
        dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A native-form config with one companion: `name` running `path args`,
/// plus `extra` lines inside `companion:` (indented 6 spaces).
pub fn companion_yaml(name: &str, path: &std::path::Path, args: &[&str], extra: &str) -> String {
    let args = args
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "plugins:\n  - name: {name}\n    mode: companion\n    call-timeout: 10s\n    drain-timeout: 5s\n    companion:\n      path: {path}\n      args: [{args}]\n{extra}",
        path = path.display()
    )
}

/// A fresh empty directory for one test's files (marker files, pid files).
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "polaris-it-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (bounded) until `cond` holds, checking every few milliseconds.
/// For conditions with no event to wait on (another process's /proc entry).
pub fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// [`eventually`] for async tests: yields to the runtime between checks, so
/// tasks the condition depends on keep running.
pub async fn eventually_async(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// True if `pid` no longer runs (gone, or a zombie awaiting its reaper).
pub fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// A plugin process started the way a host starts it.
pub struct PluginProcess {
    pub child: Child,
    pub handshake: Handshake,
    stdout: BufReader<std::process::ChildStdout>,
}

impl PluginProcess {
    /// A command for example plugin `name` with the cookie set.
    pub fn command(name: &str) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    /// Spawns `cmd` and reads its handshake line.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn plugin");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read handshake");
        let handshake = line
            .parse()
            .unwrap_or_else(|e| panic!("bad handshake {line:?}: {e}"));
        PluginProcess {
            child,
            handshake,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn channel(&self) -> Channel {
        connect(&self.handshake.addr).await
    }

    /// Waits for exit, at most `timeout`; returns the exit code. Async, so
    /// the test's own gRPC connections keep being served meanwhile.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "plugin did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Everything the plugin wrote to stdout after the handshake (call after exit).
    pub fn rest_of_stdout(&mut self) -> String {
        let mut s = String::new();
        self.stdout.read_to_string(&mut s).unwrap();
        s
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts grpc.health.v1 says service `"plugin"` is SERVING.
pub async fn assert_serving(channel: Channel) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .expect("health check");
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
}

/// A gRPC channel to a plugin address.
pub async fn connect(addr: &PluginAddr) -> Channel {
    let uri = match addr {
        PluginAddr::Unix(p) => format!("unix:{}", p.display()),
        PluginAddr::Tcp(a) => format!("http://{a}"),
    };
    Endpoint::from_shared(uri)
        .unwrap()
        .connect()
        .await
        .expect("connect to plugin")
}

/// Waits (at most 10 s) for the plugin to end `Failed`; returns that state.
pub async fn wait_failed(plugin: &polaris_plugin::PluginHandle) -> polaris_plugin::PluginState {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        plugin
            .watch()
            .wait_for(|s| matches!(s, polaris_plugin::PluginState::Failed { .. })),
    )
    .await
    .unwrap_or_else(|_| panic!("the plugin ends Failed: {:?}", plugin.status()))
    .expect("the plugin's owner task is alive")
    .clone()
}
