//! Remote fleets against real servers on loopback: several `rate-limit-server-v3`
//! processes, a listener that accepts TCP and never speaks HTTP/2, and a proxy that turns
//! slow on demand.
//!
//! Duplicate delivery is checked with the servers themselves: every call carries a key of
//! its own, and the servers run with a bucket of one token that does not refill, so a
//! server that received a key answers `allow: false` when asked for it again. After the
//! calls, asking every live server for every key tells how many times each was delivered.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use polaris_plugin::{
    EndpointState, Error, PluginHandle, PluginStatus, Registry, codec,
    handshake::PluginAddr,
    proto::polaris::{
        RateLimitPluginRequest, RateLimitPluginResponse, plugin_client::PluginClient,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{remote_example::RemoteExample, support::connect};

/// One token per key, never refilled: a key's second delivery to a server is refused.
const ONCE: [&str; 4] = ["--burst", "1", "--rate", "0.000000001"];

fn server(address: &str) -> RemoteExample {
    RemoteExample::start(address, &ONCE)
}

/// A fleet plugin `f` at `addresses`, probing often and ejecting quickly.
async fn registry(addresses: &[String], extra: &str) -> Registry {
    let list = addresses
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let yaml = format!(
        "plugins:
  - name: f
    mode: remote
    call-timeout: 5s
    max-concurrent-calls: 64
    health: {{ interval: 100ms, timeout: 300ms, failure-threshold: 1 }}
    remote:
      address: [{list}]
      connect-timeout: 300ms
      backoff: {{ initial: 20ms, max: 200ms }}
      consecutive-failures: 3
      base-ejection-time: 500ms
      max-ejection-time: 2s
{extra}"
    );
    Registry::from_yaml_str(&yaml).await.unwrap()
}

/// Waits until the status satisfies `f`, on status changes, at most 30 s.
async fn until(
    plugin: &PluginHandle,
    what: &str,
    f: impl Fn(&PluginStatus) -> bool,
) -> PluginStatus {
    let mut watch = plugin.watch();
    let wait = async {
        loop {
            let status = plugin.status();
            if f(&status) {
                return status;
            }
            watch.changed().await.expect("owner alive");
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(status) => status,
        Err(_) => panic!(
            "timed out waiting for {what}: {:#?}",
            plugin.status().endpoints
        ),
    }
}

fn in_state(s: &PluginStatus, address: &str) -> Option<EndpointState> {
    s.endpoints
        .iter()
        .find(|e| e.address == address)
        .map(|e| e.state)
}

fn ready(s: &PluginStatus, addresses: &[String]) -> bool {
    addresses
        .iter()
        .all(|a| in_state(s, a) == Some(EndpointState::Ready))
}

fn request(key: &str) -> RateLimitPluginRequest {
    RateLimitPluginRequest {
        r#type: 0,
        key: key.into(),
    }
}

async fn call(plugin: &PluginHandle, key: &str) -> Result<bool, Error> {
    plugin
        .call_typed::<_, RateLimitPluginResponse>(&request(key))
        .await
        .map(|r| r.allow)
}

/// `n` calls with keys `{tag}-{i}` from 8 callers; every one must succeed with the first
/// delivery of its key (`allow: true`).
async fn calls(plugin: &PluginHandle, tag: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(n.div_ceil(8)) {
        let plugin = plugin.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for key in chunk {
                match call(&plugin, &key).await {
                    Ok(true) => {}
                    Ok(false) => panic!("{key} was delivered before"),
                    Err(e) => panic!("{key} failed: {e}"),
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    keys
}

/// How many of `servers` received each key: asked again directly, a server that has it
/// refuses it.
async fn deliveries(servers: &[SocketAddr], keys: &[String]) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = keys.iter().map(|k| (k.clone(), 0)).collect();
    for addr in servers {
        let mut client = PluginClient::new(connect(&PluginAddr::Tcp(*addr)).await);
        for key in keys {
            let reply = client
                .call(codec::marshal_request(&request(key)))
                .await
                .unwrap()
                .into_inner();
            let allow = codec::unmarshal_response::<RateLimitPluginResponse>(&reply)
                .unwrap()
                .allow;
            if !allow {
                *seen.get_mut(key).unwrap() += 1;
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_endpoints_share_the_load_survive_two_kills_and_take_them_back() {
    let mut servers: Vec<RemoteExample> = (0..4).map(|_| server("127.0.0.1:0")).collect();
    let addresses: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let registry = registry(&addresses, "").await;
    let plugin = registry.get("f").unwrap();
    until(&plugin, "four endpoints ready", |s| ready(s, &addresses)).await;

    // Steady calls spread: no endpoint above 40 %.
    let keys = calls(&plugin, "spread", 800).await;
    let s = plugin.status();
    let total: u64 = s.endpoints.iter().map(|e| e.calls).sum();
    assert_eq!(total, 800, "{:#?}", s.endpoints);
    for e in &s.endpoints {
        assert!(
            e.calls * 100 <= total * 40,
            "{} took {} of {total}",
            e.address,
            e.calls
        );
    }
    let all: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let seen = deliveries(&all, &keys).await;
    assert!(seen.values().all(|&n| n == 1), "each key delivered once");

    // Kill two while callers are busy: calls in flight on them may fail (at most once),
    // only as transport errors.
    let busy = {
        let plugin = plugin.clone();
        tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..400 {
                match call(&plugin, &format!("busy-{i}")).await {
                    Ok(_) => {}
                    Err(Error::Transport { .. }) => failed += 1,
                    Err(e) => panic!("only transport failures while the kill is noticed: {e}"),
                }
            }
            failed
        })
    };
    for s in &mut servers[..2] {
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }
    let killed = &addresses[..2];
    until(&plugin, "the killed endpoints out of rotation", |s| {
        killed
            .iter()
            .all(|a| in_state(s, a) != Some(EndpointState::Ready))
    })
    .await;
    let failed = busy.await.unwrap();
    // Issued after the kill was noticed: none fails, none is delivered twice.
    let keys = calls(&plugin, "after-kill", 400).await;
    let live: Vec<SocketAddr> = servers[2..].iter().map(|s| s.addr).collect();
    let seen = deliveries(&live, &keys).await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered other than once: {twice:?}");
    eprintln!("{failed} calls in flight at the kill failed");

    // Back on the same ports: in rotation again, and taking calls.
    for (s, a) in servers[..2].iter_mut().zip(killed) {
        *s = server(a);
    }
    until(&plugin, "the restarted endpoints back in rotation", |s| {
        ready(s, &addresses)
    })
    .await;
    let before: Vec<u64> = plugin.status().endpoints.iter().map(|e| e.calls).collect();
    calls(&plugin, "back", 400).await;
    let after = plugin.status();
    for a in killed {
        let i = after
            .endpoints
            .iter()
            .position(|e| &e.address == a)
            .unwrap();
        assert!(
            after.endpoints[i].calls > before[i],
            "{a} takes calls again"
        );
    }
    registry.destroy().await;
}

/// Accepts connections and never answers; keeps them open.
async fn silent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// A TCP proxy to `upstream` that, once `slow` is set, delivers every chunk 500 ms late
/// (a line with latency, not a queue: chunks are not delayed behind each other).
async fn proxy(
    upstream: SocketAddr,
    slow: Arc<AtomicBool>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, slow.clone()));
            tokio::spawn(pipe(sr, cw, slow.clone()));
        }
    });
    (addr, task)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    slow: Arc<AtomicBool>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            // The endpoint's behaviour under test (latency), not synchronisation.
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = if slow.load(Ordering::SeqCst) {
            Duration::from_millis(500)
        } else {
            Duration::ZERO
        };
        if tx
            .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_endpoints_are_ejected_and_calls_go_elsewhere() {
    let good = server("127.0.0.1:0");
    let slow_server = server("127.0.0.1:0");
    let slow = Arc::new(AtomicBool::new(false));
    let (slow_addr, _proxy) = proxy(slow_server.addr, slow.clone()).await;
    let (silent_addr, _silent) = silent().await;
    let addresses = [
        good.addr.to_string(),
        slow_addr.to_string(),
        silent_addr.to_string(),
    ];
    let registry = registry(&addresses, "      max-ejection-percent: 100\n").await;
    let plugin = registry.get("f").unwrap();
    let (good_a, slow_a, silent_a) = (&addresses[0], &addresses[1], &addresses[2]);

    // The silent endpoint accepts TCP but never completes HTTP/2 and its health check: its
    // failed dials eject it; it never takes a call.
    until(&plugin, "the silent endpoint ejected", |s| {
        ready(s, &[good_a.clone(), slow_a.clone()])
            && matches!(in_state(s, silent_a), Some(EndpointState::Ejected { .. }))
    })
    .await;
    calls(&plugin, "three", 200).await;

    // The proxied endpoint turns slow: its health checks time out, it is ejected, and
    // every call still succeeds within its deadline (those it held answer late).
    slow.store(true, Ordering::SeqCst);
    let busy = {
        let plugin = plugin.clone();
        tokio::spawn(async move { calls(&plugin, "slow", 400).await })
    };
    let s = until(&plugin, "the slow endpoint ejected", |s| {
        s.endpoints
            .iter()
            .any(|e| &e.address == slow_a && e.ejections > 0)
    })
    .await;
    busy.await.unwrap();
    let slow_calls = s
        .endpoints
        .iter()
        .find(|e| &e.address == slow_a)
        .unwrap()
        .calls;
    // Out of rotation, it takes no more calls while it stays slow.
    calls(&plugin, "after", 200).await;
    let s = plugin.status();
    let e = s.endpoints.iter().find(|e| &e.address == slow_a).unwrap();
    assert_ne!(e.state, EndpointState::Ready);
    assert_eq!(
        e.calls, slow_calls,
        "no calls to the slow endpoint once ejected"
    );
    let silent = s.endpoints.iter().find(|e| &e.address == silent_a).unwrap();
    assert_eq!(silent.calls, 0);
    assert!(silent.ejections >= 1);
    let good_e = s.endpoints.iter().find(|e| &e.address == good_a).unwrap();
    assert!(good_e.calls >= 200);
    registry.destroy().await;
}

/// The documents of a file of Kubernetes manifests.
fn manifests(file: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("\n---\n")
        .map(|doc| yaml_serde::from_str(doc).unwrap())
        .collect()
}

#[test]
fn the_kubernetes_example_host_config_loads_and_names_the_headless_service() {
    use polaris_plugin::config::{Config, Endpoints, PluginConfig};

    let host = manifests("examples/k8s/host.yaml");
    let config_map = host.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let yaml = config_map["data"]["host.yaml"].as_str().unwrap();
    let config = Config::from_yaml_str(yaml, std::path::Path::new("/etc/polaris-plugin")).unwrap();
    let remote = config
        .get("rate-limit")
        .and_then(PluginConfig::remote)
        .unwrap();
    let Some(Endpoints::Dns { host: name, port }) = remote.fleet.as_ref().map(|f| &f.endpoints)
    else {
        panic!("a dns:/// fleet: {remote:?}");
    };
    // The name is the headless Service's, in its namespace, at its port.
    let plugin = manifests("examples/k8s/rate-limit.yaml");
    let service = plugin.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    let expected = format!(
        "{}.{}.svc.cluster.local",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    assert_eq!(name, &expected);
    assert_eq!(service["spec"]["ports"][0]["port"], u64::from(*port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_endpoints_under_steady_calls() {
    let servers: Vec<RemoteExample> = (0..3).map(|_| server("127.0.0.1:0")).collect();
    let addresses: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let registry = registry(&addresses[..2], "").await;
    let plugin = registry.get("f").unwrap();
    until(&plugin, "two endpoints ready", |s| {
        ready(s, &addresses[..2])
    })
    .await;
    let busy = {
        let plugin = plugin.clone();
        tokio::spawn(async move { calls(&plugin, "reload", 1600).await })
    };
    // The new config drops the first server and adds the third.
    let list = format!("'{}', '{}'", addresses[1], addresses[2]);
    let yaml = format!(
        "plugins:\n  - name: f\n    mode: remote\n    call-timeout: 5s\n    max-concurrent-calls: 64\n    health: {{ interval: 100ms, timeout: 300ms, failure-threshold: 1 }}\n    remote:\n      address: [{list}]\n      connect-timeout: 300ms\n      backoff: {{ initial: 20ms, max: 200ms }}\n"
    );
    let config =
        polaris_plugin::config::Config::from_yaml_str(&yaml, std::path::Path::new("/")).unwrap();
    registry.reload(config).await.unwrap();
    let s = until(&plugin, "the new endpoint set", |s| {
        s.endpoints.len() == 2 && ready(s, &addresses[1..])
    })
    .await;
    assert!(s.endpoints.iter().all(|e| e.address != addresses[0]));
    // Every call succeeded, each delivered once.
    let keys = busy.await.unwrap();
    let all: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let seen = deliveries(&all, &keys).await;
    let other: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(other.is_empty(), "delivered other than once: {other:?}");
    registry.destroy().await;
}
