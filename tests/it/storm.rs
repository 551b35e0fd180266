//! The call contract under a random-phase kill storm: SIGKILLs of a Rust
//! plugin at random moments after each spawn while 8 callers call steadily.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use polaris_plugin::{
    Error, PluginState, Registry,
    config::{Config, Delivery},
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType},
};

use crate::support::{self, bin};

const CALLERS: usize = 8;

fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

struct Outcome {
    ok: u64,
    failed: Vec<Error>,
    delivered: HashMap<String, u32>,
    addresses: Vec<String>,
}

async fn storm(delivery: Delivery, kills: usize) -> Outcome {
    let dir = std::env::temp_dir().join(format!(
        "polaris-storm-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let record: PathBuf = dir.join("delivered");
    let yaml = support::companion_yaml(
        "storm",
        &bin("fixture-plugin"),
        &["--record", record.to_str().unwrap()],
        "      restart:\n        min-uptime: 0s\n",
    );
    let mut config = Config::from_yaml_str(&yaml, std::path::Path::new("")).unwrap();
    config.plugins[0].call.delivery = delivery;
    let registry = Registry::from_config(config).unwrap();
    let plugin = registry.get("storm").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let plugin = plugin.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, Vec::new());
                let mut n = 0u64;
                while !stop.is_cancelled() {
                    n += 1;
                    let request = RateLimitPluginRequest {
                        r#type: RatelimitType::ApiRatelimit as i32,
                        key: format!("c{c}-{n}"),
                    };
                    match plugin
                        .call_typed::<_, RateLimitPluginResponse>(&request)
                        .await
                    {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    let mut addresses = Vec::new();
    let mut watch = plugin.watch();
    for _ in 0..kills {
        watch
            .wait_for(|s| *s == PluginState::Ready)
            .await
            .expect("owner alive");
        let status = plugin.status();
        if let Some(address) = status.address {
            addresses.push(address);
        }
        // A random phase after readiness (not synchronisation: the kill
        // lands wherever the calls are).
        let phase = fastrand::u64(0..2000);
        tokio::time::sleep(Duration::from_micros(phase)).await;
        if let Some(pid) = status.pid {
            kill9(pid);
        }
    }
    stop.cancel();
    let (mut ok, mut failed) = (0, Vec::new());
    for caller in callers {
        let (o, f) = caller.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    registry.destroy().await;
    let text = std::fs::read_to_string(&record).unwrap_or_default();
    let mut delivered = HashMap::new();
    for line in text.lines() {
        *delivered.entry(line.to_owned()).or_insert(0u32) += 1;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    Outcome {
        ok,
        failed,
        delivered,
        addresses,
    }
}

fn assert_no_socket_left(addresses: &[String]) {
    for address in addresses {
        if let Some(path) = address.strip_prefix("unix:") {
            let path = std::path::Path::new(path);
            assert!(!path.exists(), "socket {} left behind", path.display());
            if let Some(dir) = path.parent() {
                assert!(
                    !dir.exists(),
                    "socket directory {} left behind",
                    dir.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_at_most_once_delivers_no_call_twice() {
    let out = storm(Delivery::AtMostOnce, 300).await;
    assert!(out.ok > 0);
    let twice: Vec<_> = out.delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    // The only calls that fail are those whose request may have reached a
    // process that was then killed: never unavailable, never a timeout.
    for e in &out.failed {
        assert!(matches!(e, Error::Transport { .. }), "{e}");
    }
    assert!(
        out.failed.len() <= 300 * CALLERS,
        "at most one failure per caller per kill: {}",
        out.failed.len()
    );
    assert_no_socket_left(&out.addresses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_at_least_once_fails_no_call() {
    let out = storm(Delivery::AtLeastOnce, 300).await;
    assert!(out.ok > 0);
    let failed: Vec<_> = out.failed.iter().map(ToString::to_string).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_no_socket_left(&out.addresses);
}
