//! A plain grpc-go server (no go-plugin) as a remote plugin of the Rust host:
//! it goes away and comes back at the same address.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use polaris_plugin::{Error, PluginState, Registry, proto::polaris::RateLimitPluginResponse};

use super::{go, matrix};

/// A running `go-remote`, killed (SIGKILL) on drop.
struct GoRemote {
    child: Child,
    addr: SocketAddr,
}

impl GoRemote {
    /// Starts it on `addr` (`127.0.0.1:0`: any free port) and reads the bound
    /// address from its first stdout line.
    fn start(addr: &str) -> Self {
        let mut child = Command::new(&go().remote)
            .args(["-addr", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("go-remote printed {line:?}: {e}"));
        GoRemote { child, addr }
    }
}

impl Drop for GoRemote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(interop_go),
    ignore = "needs Go and go-plugin: run .ci/install-interop"
)]
async fn go_grpc_server_as_remote_plugin_goes_away_and_comes_back() {
    let server = GoRemote::start("127.0.0.1:0");
    let addr = server.addr;
    let yaml = format!(
        "plugins:\n  - name: go-remote\n    mode: remote\n    call-timeout: 1s\n    remote:\n      address: {addr}\n      backoff: {{ initial: 20ms, max: 200ms }}\n"
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("go-remote").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert!(matrix::allow(&plugin, "/").await);
    let address = plugin.status().address.unwrap();
    assert!(address.ends_with(&addr.to_string()), "{address}");

    drop(server); // SIGKILL; the port is free again
    let err = plugin
        .call_typed::<_, RateLimitPluginResponse>(&matrix::request("/gone"))
        .await
        .unwrap_err();
    // The call went out on the dead connection (it may have been processed:
    // a transport failure, not sent again) or found the plugin down.
    assert!(
        matches!(&err, Error::Unavailable { .. } | Error::Transport { .. }),
        "{err}"
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        plugin.watch().wait_for(|s| *s != PluginState::Ready),
    )
    .await
    .expect("the host notices the server is gone")
    .unwrap();

    let _server = GoRemote::start(&addr.to_string());
    // Without any action by the host, calls succeed again.
    tokio::time::timeout(
        Duration::from_secs(10),
        plugin.watch().wait_for(|s| *s == PluginState::Ready),
    )
    .await
    .expect("reconnected")
    .unwrap();
    assert!(matrix::allow(&plugin, "/back").await);
    assert!(plugin.status().restarts >= 1);
    registry.destroy().await;
    assert_eq!(plugin.status().state, PluginState::Destroyed);
}
