//! The plugin SDK, through the companion example run as a real child process.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use polaris_plugin::{
    codec,
    handshake::{Handshake, PluginAddr},
    proto::{
        go_plugin::{
            Empty, grpc_controller_client::GrpcControllerClient, grpc_stdio_client::GrpcStdioClient,
        },
        polaris::{
            RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType,
            plugin_client::PluginClient,
        },
    },
};

use crate::support::{PluginProcess, assert_serving, bin, eventually, pid_gone};

const COMPANION: &str = "rate-limit-server-v2";

fn rate_limit(key: &str) -> polaris_plugin::proto::polaris::Request {
    codec::marshal_request(&RateLimitPluginRequest {
        r#type: RatelimitType::ApiRatelimit as i32,
        key: key.into(),
    })
}

#[tokio::test]
async fn handshake_health_call_and_shutdown() {
    let mut cmd = PluginProcess::command(COMPANION);
    cmd.args(["--rate", "0.001", "--burst", "2"]);
    let mut plugin = PluginProcess::start(cmd);
    let PluginAddr::Unix(socket) = plugin.handshake.addr.clone() else {
        panic!("default transport is a unix socket: {:?}", plugin.handshake)
    };
    assert_eq!(plugin.handshake.app_version, 1);
    // A fresh private directory holds the socket.
    let dir = socket.parent().unwrap().to_path_buf();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o700,
        "socket dir {} mode {mode:o}",
        dir.display()
    );

    let channel = plugin.channel().await;
    assert_serving(channel.clone()).await;

    // The bucket really limits: a burst of 2, then deny; another key is separate.
    let mut client = PluginClient::new(channel.clone());
    let mut verdicts = vec![];
    for key in ["/a", "/a", "/a", "/b"] {
        let reply = client.call(rate_limit(key)).await.unwrap().into_inner();
        verdicts.push(
            codec::unmarshal_response::<RateLimitPluginResponse>(&reply)
                .unwrap()
                .allow,
        );
    }
    assert_eq!(verdicts, [true, true, false, true]);

    // A payload of the wrong type comes back as a gRPC error naming both type URLs.
    let wrong = codec::marshal_request(&RateLimitPluginResponse { allow: true });
    let status = client.call(wrong).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("proto.RateLimitPluginResponse"),
        "{status:?}"
    );

    // Shutdown: the plugin exits 0 within a second and removes its socket directory.
    GrpcControllerClient::new(channel)
        .shutdown(Empty {})
        .await
        .unwrap();
    assert_eq!(plugin.wait_exit(Duration::from_secs(1)).await, Some(0));
    assert!(
        !dir.exists(),
        "socket directory {} left behind",
        dir.display()
    );
    assert_eq!(
        plugin.rest_of_stdout(),
        "",
        "nothing but the handshake on stdout"
    );
}

#[test]
fn without_cookie_it_explains_and_exits_1() {
    let out = Command::new(bin(COMPANION))
        .env_remove("POLARIS_PLUGIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("This binary is a plugin"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("POLARIS_PLUGIN"), "stderr: {stderr}");
}

fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim() == "plugin-worker")
        .count()
}

#[test]
fn plugin_procs_sets_worker_threads() {
    for procs in [1, 2, 3] {
        let mut cmd = PluginProcess::command(COMPANION);
        cmd.env("PLUGIN_PROCS", procs.to_string());
        let plugin = PluginProcess::start(cmd);
        // A new thread names itself once it runs: wait for the names to settle.
        eventually(Duration::from_secs(2), "worker threads to start", || {
            worker_threads(plugin.pid()) >= procs
        });
        assert_eq!(worker_threads(plugin.pid()), procs, "PLUGIN_PROCS={procs}");
    }
}

#[tokio::test]
async fn tcp_transport_when_asked() {
    let mut cmd = PluginProcess::command(COMPANION);
    cmd.env("POLARIS_PLUGIN_TRANSPORT", "tcp");
    let mut plugin = PluginProcess::start(cmd);
    let PluginAddr::Tcp(addr) = plugin.handshake.addr else {
        panic!("asked for tcp: {:?}", plugin.handshake)
    };
    assert!(addr.ip().is_loopback());
    let reply = PluginClient::new(plugin.channel().await)
        .call(rate_limit("/tcp"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        codec::unmarshal_response::<RateLimitPluginResponse>(&reply)
            .unwrap()
            .allow
    );
    // SIGTERM is a graceful stop too.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(plugin.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(plugin.wait_exit(Duration::from_secs(2)).await, Some(0));
}

#[tokio::test]
async fn socket_dir_in_plugin_unix_socket_dir_removed_on_sigterm() {
    let base = std::env::temp_dir().join(format!("sdk-sockdir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir(&base).unwrap();
    let mut cmd = PluginProcess::command(COMPANION);
    cmd.env("PLUGIN_UNIX_SOCKET_DIR", &base);
    let mut plugin = PluginProcess::start(cmd);
    let PluginAddr::Unix(socket) = plugin.handshake.addr.clone() else {
        panic!("default transport is a unix socket: {:?}", plugin.handshake)
    };
    let dir = socket.parent().unwrap();
    assert_eq!(dir.parent(), Some(base.as_path()), "{}", socket.display());
    assert_serving(plugin.channel().await).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(plugin.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(plugin.wait_exit(Duration::from_secs(2)).await, Some(0));
    let left: Vec<_> = std::fs::read_dir(&base).unwrap().collect();
    std::fs::remove_dir_all(&base).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn sigint_is_ignored_and_stdio_stream_ends_on_shutdown() {
    let mut plugin = PluginProcess::start(PluginProcess::command(COMPANION));
    let pid = nix::unistd::Pid::from_raw(plugin.pid() as i32);
    let channel = plugin.channel().await;
    let mut stdio = GrpcStdioClient::new(channel.clone())
        .stream_stdio(())
        .await
        .unwrap()
        .into_inner();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // Still serving after SIGINT.
    assert_serving(channel.clone()).await;
    GrpcControllerClient::new(channel)
        .shutdown(Empty {})
        .await
        .unwrap();
    // The held-open stdio stream ends instead of blocking the stop.
    let end = tokio::time::timeout(Duration::from_secs(2), stdio.message())
        .await
        .expect("the stdio stream ends with the plugin");
    assert!(matches!(end, Ok(None) | Err(_)));
    assert_eq!(plugin.wait_exit(Duration::from_secs(1)).await, Some(0));
}

/// Starts the companion with `PLUGIN_PROTOCOL_VERSIONS=offered`; returns the
/// version in its handshake and its stderr lines up to "plugin serving".
fn negotiate(offered: &str) -> (u32, Vec<String>) {
    let mut cmd = PluginProcess::command(COMPANION);
    cmd.env("PLUGIN_PROTOCOL_VERSIONS", offered)
        .stderr(Stdio::piped());
    let mut plugin = PluginProcess::start(cmd);
    let stderr = BufReader::new(plugin.child.stderr.take().unwrap());
    let mut lines = vec![];
    for line in stderr.lines() {
        let line = line.unwrap();
        let serving = line.contains("plugin serving");
        lines.push(line);
        if serving {
            return (plugin.handshake.app_version, lines);
        }
    }
    panic!("stderr ended before \"plugin serving\": {lines:?}")
}

#[test]
fn version_negotiation_agrees_on_a_shared_version_or_says_there_is_none() {
    // The SDK speaks only 1, so the handshake says 1 either way; what tells
    // negotiation apart from a constant is whether the plugin found 1 among
    // the host's versions, or explains that the host will refuse it.
    for offered in ["3,1,2", "1", "2, 1"] {
        let (version, stderr) = negotiate(offered);
        assert_eq!(version, 1, "offered {offered:?}");
        assert!(
            !stderr
                .iter()
                .any(|l| l.contains("no app protocol version in common")),
            "offered {offered:?}, which includes 1: {stderr:#?}"
        );
    }
    let (version, stderr) = negotiate("3,2");
    assert_eq!(version, 1, "nothing in common: the plugin's lowest");
    let warning = stderr
        .iter()
        .find(|l| l.contains("no app protocol version in common"))
        .unwrap_or_else(|| panic!("no explanation on stderr: {stderr:#?}"));
    assert!(warning.contains(r#""@level":"warn""#), "{warning}");
    assert!(
        warning.contains("PLUGIN_PROTOCOL_VERSIONS") && warning.contains("3,2"),
        "names what the host offered: {warning}"
    );
}

#[test]
fn exits_when_its_parent_is_killed() {
    // sh stands in for the host: it starts the plugin, prints the plugin's pid
    // and waits. Both lines arrive on the shared stdout, in either order.
    let mut host = Command::new("sh")
        .arg("-c")
        .arg(r#""$PLUGIN" & echo "pid $!"; wait"#)
        .env("PLUGIN", bin(COMPANION))
        .env(
            "POLARIS_PLUGIN",
            polaris_plugin::protocol::MAGIC_COOKIE_VALUE,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
    let (mut pid, mut handshake) = (None, None);
    while pid.is_none() || handshake.is_none() {
        let line = lines.next().expect("host output").unwrap();
        match line.strip_prefix("pid ") {
            Some(p) => pid = Some(p.parse::<u32>().unwrap()),
            None => handshake = Some(line.parse::<Handshake>().unwrap()),
        }
    }
    let pid = pid.unwrap();
    assert!(!pid_gone(pid));
    host.kill().unwrap(); // SIGKILL
    host.wait().unwrap();
    eventually(
        Duration::from_secs(2),
        "the orphaned plugin to exit",
        || pid_gone(pid),
    );
}
