//! Pluggable mode: real unix sockets in a watched folder, a real plugin process
//! (`rate-limit-server-v3 --pluggable SOCKET`). Every wait is on the registry's events or
//! a plugin's state, bounded only so that a broken build fails instead of hanging.

use std::{
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use polaris_plugin::{
    Mode, PluginState, Registry,
    config::Config,
    events::{Event, EventKind, Next, Subscription},
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse},
};

use crate::support::{bin, scratch_dir};

/// A bound on every wait, against hangs; not a timing assertion.
const HANG: Duration = Duration::from_secs(30);

/// `rate-limit-server-v3` serving as a pluggable plugin on `socket` (or another process of
/// the test); killed on drop.
struct Pluggable(Child);

impl Pluggable {
    fn start(socket: &Path) -> Self {
        let child = Command::new(bin("rate-limit-server-v3"))
            .arg("--pluggable")
            .arg(socket)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Pluggable(child)
    }

    /// SIGTERM: the SDK removes its socket, then stops once its connections are done
    /// (the host closes its own when it destroys the plugin); a host stops gracefully.
    fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
}

impl Drop for Pluggable {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn registry(folder: &Path, extra: &str) -> Registry {
    let yaml = format!(
        "pluggable:\n  folder: {}\n  health: {{ timeout: 300ms }}\n{extra}",
        folder.display()
    );
    Registry::from_yaml_str(&yaml).await.unwrap()
}

/// The next event of `kind` about `plugin`.
async fn event(events: &mut Subscription, plugin: &str, kind: EventKind) -> Event {
    let wait = async {
        loop {
            match events.next().await {
                Next::Event(e) if &*e.plugin == plugin && e.kind == kind => return e,
                Next::Closed => panic!("the event log closed"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(HANG, wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind:?} event for {plugin}"))
}

async fn allows(registry: &Registry, name: &str) -> bool {
    let plugin = registry.plugin(name).unwrap();
    let reply: RateLimitPluginResponse = plugin
        .call_typed(&RateLimitPluginRequest {
            r#type: 0,
            key: "/users".into(),
        })
        .await
        .unwrap();
    reply.allow
}

#[tokio::test]
async fn a_socket_appearing_in_the_folder_becomes_a_callable_plugin_and_goes_with_it() {
    let folder = scratch_dir("pluggable-appear");
    let registry = registry(&folder, "").await;
    let mut events = registry.events().subscribe(None);
    assert!(registry.names().is_empty());

    let server = Pluggable::start(&folder.join("rate.sock"));
    let found = event(&mut events, "rate", EventKind::Discovered).await;
    assert!(
        found.reason.as_deref().unwrap().contains("proto.Plugin"),
        "{found:?}"
    );
    // Registered and callable (the call waits for the owner's connection).
    assert!(allows(&registry, "rate").await);
    let plugin = registry.plugin("rate").unwrap();
    let status = plugin.status();
    assert_eq!(status.mode, Mode::Pluggable);
    assert_eq!(status.state, PluginState::Ready);
    let services = status.services.expect("reflection listed the services");
    assert!(
        services.iter().any(|s| s == "proto.Plugin")
            && services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );
    assert_eq!(
        status.address.as_deref(),
        Some(format!("unix:{}", folder.join("rate.sock").display()).as_str())
    );

    // The plugin stops and removes its socket: the plugin leaves the registry, destroyed.
    server.terminate();
    event(&mut events, "rate", EventKind::Removed).await;
    assert!(registry.get("rate").is_none(), "{:?}", registry.names());
    let gone = plugin
        .watch()
        .wait_for(|s| *s == PluginState::Destroyed)
        .await;
    assert_eq!(gone, Some(PluginState::Destroyed));
    // The plugin's connection is closed, so its graceful stop ends.
    let mut server = server;
    let exit = tokio::task::spawn_blocking(move || server.0.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    registry.destroy().await;
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test]
async fn a_socket_removed_while_its_server_runs_removes_the_plugin_and_the_host_leaves_files_alone()
{
    let folder = scratch_dir("pluggable-remove");
    let socket = folder.join("keep.sock");
    // Present before the registry: found by the first look.
    let _server = Pluggable::start(&socket);
    let registry = registry(&folder, "").await;
    let mut events = registry.events().subscribe(Some(0));
    event(&mut events, "keep", EventKind::Discovered).await;
    assert!(allows(&registry, "keep").await);

    std::fs::remove_file(&socket).unwrap();
    event(&mut events, "keep", EventKind::Removed).await;
    assert!(registry.get("keep").is_none());

    // Destroy touches nothing in the folder: a socket placed there stays.
    let other = folder.join("other.sock");
    let _listener = UnixListener::bind(&other).unwrap();
    registry.destroy().await;
    assert!(other.exists());
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test]
async fn a_socket_that_is_not_grpc_is_reported_and_skipped_until_replaced() {
    let folder = scratch_dir("pluggable-not-grpc");
    // Accepts connections and never speaks: no HTTP/2, no gRPC.
    let mute = tokio::net::UnixListener::bind(folder.join("mute.sock")).unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = mute.accept().await {
            conns.push(conn);
        }
    });
    let registry = registry(&folder, "").await;
    let mut events = registry.events().subscribe(Some(0));
    // A socket file nobody listens on: connections are refused.
    let stale = folder.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());

    for name in ["mute", "stale"] {
        let skipped = event(&mut events, name, EventKind::SocketSkipped).await;
        let reason = skipped.reason.unwrap();
        assert!(
            reason.contains("does not answer as a gRPC plugin"),
            "{name}: {reason}"
        );
    }
    assert!(registry.names().is_empty(), "{:?}", registry.names());

    // Replaced by a gRPC server at the same path (the SDK removes a socket nobody
    // answers on, and binds anew): looked at again, and registered.
    let _server = Pluggable::start(&stale);
    event(&mut events, "stale", EventKind::Discovered).await;
    assert!(allows(&registry, "stale").await);
    assert_eq!(registry.names(), ["stale"]);
    registry.destroy().await;
    held.abort();
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test]
async fn a_missing_folder_is_picked_up_when_it_appears_and_a_configured_name_wins_until_it_goes() {
    let scratch = scratch_dir("pluggable-missing");
    let folder: PathBuf = scratch.join("later");
    // A configured plugin named like a socket: the socket is skipped.
    let taken =
        "plugins:\n  - name: taken\n    mode: remote\n    remote: { address: 127.0.0.1:1 }\n";
    let registry = registry(&folder, taken).await;
    let mut events = registry.events().subscribe(None);
    std::fs::create_dir(&folder).unwrap();
    let _a = Pluggable::start(&folder.join("late.sock"));
    event(&mut events, "late", EventKind::Discovered).await;
    assert!(allows(&registry, "late").await);

    let _b = Pluggable::start(&folder.join("taken.sock"));
    let skipped = event(&mut events, "taken", EventKind::SocketSkipped).await;
    assert!(skipped.reason.unwrap().contains("is taken"));
    assert_eq!(registry.plugin("taken").unwrap().mode(), Mode::Remote);
    // A reload without the configured plugin frees the name: the socket takes it.
    let without = format!(
        "pluggable:\n  folder: {}\n  health: {{ timeout: 300ms }}\n",
        folder.display()
    );
    let report = registry
        .reload(Config::from_yaml_str(&without, Path::new("/")).unwrap())
        .await
        .unwrap();
    assert_eq!(report.removed, ["taken"]);
    event(&mut events, "taken", EventKind::Discovered).await;
    assert_eq!(registry.plugin("taken").unwrap().mode(), Mode::Pluggable);
    assert!(allows(&registry, "taken").await);
    registry.destroy().await;
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// `polaris-plugin run` with only a `pluggable:` section: `check` accepts it, and a socket
/// that appears shows in the admin API (mode, services, events), the metrics and `status`.
#[tokio::test]
async fn the_command_line_and_the_admin_api_show_pluggable_plugins() {
    use std::io::{BufRead as _, BufReader};

    use crate::support::http::{Sse, http, http_json};

    let folder = scratch_dir("pluggable-admin");
    let config = folder.join("host.yaml");
    let sockets = folder.join("sockets");
    std::fs::create_dir(&sockets).unwrap();
    std::fs::write(&config, "pluggable:\n  folder: sockets\n").unwrap();
    let cli = |args: &[&str]| {
        Command::new(bin("polaris-plugin"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let check = cli(&["check", config.to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{summary}");
    assert!(
        summary.contains(&format!(
            "pluggable: the unix sockets that appear in {}",
            sockets.display()
        )),
        "{summary}"
    );

    // Killed on drop (a failed assertion), like the plugin.
    let mut host = Pluggable(
        Command::new(bin("polaris-plugin"))
            .arg("run")
            .arg(&config)
            .args(["--admin-listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(host.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no admin address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    let mut events = Sse::open(&format!("{url}/maintain/v1/events?after=0")).await;
    let _server = Pluggable::start(&sockets.join("rl.sock"));
    events
        .until(HANG, |e| e["plugin"] == "rl" && e["kind"] == "discovered")
        .await;
    events
        .until(HANG, |e| e["plugin"] == "rl" && e["kind"] == "ready")
        .await;

    let (code, list) = http_json("GET", &format!("{url}/maintain/v1/plugins"), None, None).await;
    assert_eq!(code, 200, "{list}");
    let rl = &list["plugins"][0];
    assert_eq!(rl["name"], "rl", "{list}");
    assert_eq!(rl["mode"], "pluggable", "{list}");
    assert!(
        rl["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "proto.Plugin"),
        "{list}"
    );
    let (_, metrics) = http("GET", &format!("{url}/metrics"), None, None).await;
    assert!(
        metrics.contains(r#"polaris_plugin_info{plugin="rl",mode="pluggable"} 1"#),
        "{metrics}"
    );
    let status = cli(&["status", "--admin", &url]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("rl") && l.contains("pluggable") && l.contains("services: ")),
        "{table}"
    );

    host.terminate();
    let exit = tokio::task::spawn_blocking(move || host.0.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    std::fs::remove_dir_all(&folder).unwrap();
}
