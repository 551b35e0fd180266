//! Blue/green upgrades of a companion with real processes: the binary replaced by rename
//! under steady calls, and new binaries that are not fit to serve.

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use polaris_plugin::{
    Error, PluginHandle, Registry,
    config::Config,
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType},
};

use crate::{
    storm::assert_no_socket_left,
    support::{self, pid_gone, scratch_dir},
};

const CALLERS: usize = 8;
const UPGRADES: usize = 50;

/// Puts a copy of `source` at `path` the way deploy tools do: written beside it, then
/// renamed over it. `salt` bytes appended make each copy a different file (an ELF
/// executable runs with trailing bytes).
fn deploy(source: &Path, path: &Path, salt: usize) {
    let mut bytes = std::fs::read(source).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, salt));
    let staging = path.with_extension("new");
    std::fs::write(&staging, bytes).unwrap();
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

fn registry(dir: &Path, binary: &Path, args: &[&str]) -> (Registry, PluginHandle) {
    let yaml = support::companion_yaml("up", binary, args, "");
    let config = Config::from_yaml_str(&yaml, dir).unwrap();
    let registry = Registry::from_config(config).unwrap();
    let plugin = registry.get("up").unwrap();
    (registry, plugin)
}

async fn call(plugin: &PluginHandle, key: String) -> Result<RateLimitPluginResponse, Error> {
    plugin
        .call_typed(&RateLimitPluginRequest {
            r#type: RatelimitType::ApiRatelimit as i32,
            key,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_upgrades_under_steady_calls_fail_no_call_and_leave_nothing_behind() {
    let dir = scratch_dir("upgrade");
    let binary = dir.join("plugin");
    let fixture = support::bin("fixture-plugin");
    deploy(&fixture, &binary, 0);
    let record = dir.join("record");
    let (registry, plugin) = registry(&dir, &binary, &["--record", record.to_str().unwrap()]);
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (plugin, stop) = (plugin.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                let mut n = 0u64;
                while !stop.is_cancelled() {
                    n += 1;
                    let key = format!("c{c}-{n}");
                    match call(&plugin, key.clone()).await {
                        Ok(_) => ok.push(key),
                        Err(e) => failed.push(format!("{key}: {e}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    let mut pids = vec![plugin.status().pid.unwrap()];
    let mut addresses = vec![plugin.status().address.unwrap()];
    for i in 1..=UPGRADES {
        deploy(&fixture, &binary, i);
        plugin
            .upgrade()
            .await
            .unwrap_or_else(|e| panic!("upgrade {i}: {e}"));
        let status = plugin.status();
        assert!(
            !pids.contains(&status.pid.unwrap()),
            "upgrade {i}: same pid"
        );
        pids.push(status.pid.unwrap());
        addresses.push(status.address.unwrap());
    }
    stop.cancel();
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for caller in callers {
        let (o, f) = caller.await.unwrap();
        ok.extend(o);
        failed.extend(f);
    }
    let status = plugin.status();
    assert_eq!(status.upgrades.done, UPGRADES as u64);
    registry.destroy().await;

    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.len() > UPGRADES, "calls went on: {}", ok.len());
    // Every answered call was delivered exactly once, and never to a process after it
    // was told to stop.
    let text = std::fs::read_to_string(&record).unwrap();
    let mut delivered: HashMap<&str, u32> = HashMap::new();
    let mut stopped: HashMap<u32, usize> = HashMap::new();
    let mut late = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        if let Some(pid) = line.strip_prefix("STOP ") {
            stopped.insert(pid.parse().unwrap(), line_no);
            continue;
        }
        let (key, pid) = line.split_once(' ').unwrap();
        let pid: u32 = pid.parse().unwrap();
        if stopped.contains_key(&pid) {
            late.push(line);
        }
        *delivered.entry(key).or_default() += 1;
    }
    assert!(late.is_empty(), "delivered after the stop began: {late:?}");
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    for key in &ok {
        assert_eq!(
            delivered.get(key.as_str()),
            Some(&1),
            "{key} answered but not recorded"
        );
    }
    // Every process was stopped gracefully, and is gone; no socket is left.
    for pid in &pids {
        assert!(
            stopped.contains_key(pid),
            "pid {pid} was not stopped gracefully"
        );
        support::eventually(
            Duration::from_secs(10),
            "the old processes to be gone",
            || pid_gone(*pid),
        );
    }
    assert_no_socket_left(&addresses);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A script at `path`.
fn script(path: &Path, body: &str) {
    let staging = path.with_extension("new");
    std::fs::write(&staging, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

#[tokio::test]
async fn a_new_binary_that_cannot_serve_leaves_the_old_one_serving() {
    let dir = scratch_dir("upgrade-bad");
    let binary: PathBuf = dir.join("plugin");
    let fixture = support::bin("fixture-plugin");
    deploy(&fixture, &binary, 0);
    let (registry, plugin) = registry(&dir, &binary, &[]);
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();
    let pid = plugin.status().pid.unwrap();

    for (body, expect) in [
        (
            "echo 'going away' >&2; exit 0",
            "exited with code 0 before printing a handshake line",
        ),
        (
            "echo nonsense; exec sleep 100",
            "not a go-plugin handshake line",
        ),
    ] {
        script(&binary, body);
        let err = plugin.upgrade().await.unwrap_err().to_string();
        assert!(
            err.contains("upgrade failed") && err.contains(expect),
            "{body}: {err}"
        );
        assert!(err.contains("goes on serving"), "{err}");
        // The old process still answers, and is still the one serving.
        call(&plugin, "after".into()).await.unwrap();
        let status = plugin.status();
        assert_eq!(status.pid, Some(pid));
        assert!(status.others.is_empty(), "{:?}", status.others);
    }
    let err = plugin.upgrade().await.unwrap_err().to_string();
    assert!(
        err.contains("going away") || err.contains("nonsense"),
        "stderr tail: {err}"
    );
    assert_eq!(plugin.status().upgrades.failed, 3);

    // A good binary again: the upgrade goes through.
    deploy(&fixture, &binary, 1);
    plugin.upgrade().await.unwrap();
    assert_ne!(plugin.status().pid, Some(pid));
    registry.destroy().await;
    assert!(pid_gone(pid));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn remote_config(name: &str, addr: &str) -> Config {
    let yaml = format!(
        "plugins:\n  - name: {name}\n    mode: remote\n    call-timeout: 10s\n    remote:\n      address: {addr}\n"
    );
    Config::from_yaml_str(&yaml, Path::new("")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_a_remote_plugin_to_its_new_address_without_a_failed_call() {
    use crate::remote_example::RemoteExample;
    let (a, b) = (
        RemoteExample::start("127.0.0.1:0", &[]),
        RemoteExample::start("127.0.0.1:0", &[]),
    );
    let registry = Registry::from_config(remote_config("far", &a.addr.to_string())).unwrap();
    let plugin = registry.get("far").unwrap();
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let caller = {
        let (plugin, stop) = (plugin.clone(), stop.clone());
        tokio::spawn(async move {
            let mut failed = Vec::new();
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                if let Err(e) = call(&plugin, format!("k{n}")).await {
                    failed.push(e.to_string());
                }
            }
            (n, failed)
        })
    };
    let report = registry
        .reload(remote_config("far", &b.addr.to_string()))
        .await
        .unwrap();
    assert_eq!(report.changed, ["far"]);
    assert_eq!(plugin.status().address, Some(format!("http://{}", b.addr)));
    // A new address nobody serves: the reload reports it; the connection to b stays.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = registry
        .reload(remote_config("far", &dead.to_string()))
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("goes on serving"), "{report:?}");
    assert_eq!(plugin.status().address, Some(format!("http://{}", b.addr)));
    stop.cancel();
    let (calls, failed) = caller.await.unwrap();
    assert!(calls > 1);
    assert!(failed.is_empty(), "{failed:?}");
    // The next reload with the same good address changes nothing; after destroy, none.
    let report = registry
        .reload(remote_config("far", &b.addr.to_string()))
        .await
        .unwrap();
    assert_eq!(report.unchanged, ["far"], "{report:?}");
    registry.destroy().await;
    let e = registry
        .reload(remote_config("far", &b.addr.to_string()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::RegistryDestroyed), "{e}");
}
