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

/// What a storm saw.
pub struct Outcome {
    pub ok: u64,
    /// Failed calls: their key and error.
    pub failed: Vec<(String, Error)>,
    /// Per call key, the pids of the processes it was delivered to.
    pub delivered: HashMap<String, Vec<u32>>,
    pub addresses: Vec<String>,
}

async fn storm(delivery: Delivery, kills: usize) -> Outcome {
    storm_with(&bin("fixture-plugin"), "--record", delivery, kills).await
}

/// Kills `plugin` (started with `record_flag FILE`, which must append each
/// call's key to FILE) `kills` times at random moments after each start
/// while 8 callers call.
pub async fn storm_with(
    plugin_path: &std::path::Path,
    record_flag: &str,
    delivery: Delivery,
    kills: usize,
) -> Outcome {
    let dir = std::env::temp_dir().join(format!(
        "polaris-storm-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let record: PathBuf = dir.join("delivered");
    let name = match delivery {
        Delivery::AtMostOnce => "storm-at-most-once",
        _ => "storm-at-least-once",
    };
    let yaml = support::companion_yaml(
        name,
        plugin_path,
        &[record_flag, record.to_str().unwrap()],
        "      restart:\n        min-uptime: 0s\n",
    );
    let mut config = Config::from_yaml_str(&yaml, std::path::Path::new("")).unwrap();
    config.plugins[0].call.delivery = delivery;
    let registry = Registry::from_config(config).unwrap();
    let plugin = registry.get(name).unwrap();
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
                        Err(e) => failed.push((request.key, e)),
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
    // `STOP <pid>` lines mark graceful stops, not calls.
    for line in text.lines().filter(|l| !l.starts_with("STOP ")) {
        let (key, pid) = line.split_once(' ').unwrap_or((line, "0"));
        delivered
            .entry(key.to_owned())
            .or_insert_with(Vec::new)
            .push(pid.parse().unwrap_or(0));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    Outcome {
        ok,
        failed,
        delivered,
        addresses,
    }
}

pub fn assert_no_socket_left(addresses: &[String]) {
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

/// At most once: no call delivered twice, the only failures are calls whose
/// request may have reached a killed process, no socket left.
pub fn assert_at_most_once(out: &Outcome, kills: usize) {
    assert!(out.ok > 0);
    let twice: Vec<_> = out.delivered.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    // The only calls that fail are those whose request may have reached a
    // process that was then killed: never unavailable, never a timeout.
    for (key, e) in &out.failed {
        assert!(
            matches!(e, Error::Transport { .. }),
            "{key}: {e}; delivered to {:?}",
            out.delivered.get(key)
        );
    }
    assert!(
        out.failed.len() <= kills * CALLERS,
        "at most one failure per caller per kill: {}",
        out.failed.len()
    );
    assert_no_socket_left(&out.addresses);
}

/// At least once: no call fails, no socket left.
pub fn assert_at_least_once(out: &Outcome) {
    assert!(out.ok > 0);
    let failed: Vec<_> = out
        .failed
        .iter()
        .map(|(key, e)| format!("{key}: {e}; delivered to {:?}", out.delivered.get(key)))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_no_socket_left(&out.addresses);
}

const KILLS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_at_most_once_delivers_no_call_twice() {
    let out = storm(Delivery::AtMostOnce, KILLS).await;
    eprintln!(
        "rust, at most once: {KILLS} kills, {} calls ok, {} failed (transport)",
        out.ok,
        out.failed.len()
    );
    assert_at_most_once(&out, KILLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_at_least_once_fails_no_call() {
    let out = storm(Delivery::AtLeastOnce, KILLS).await;
    eprintln!("rust, at least once: {KILLS} kills, {} calls ok", out.ok);
    assert_at_least_once(&out);
}
