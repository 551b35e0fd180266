//! `overload-rss`: 10x overload of one plugin's call bound, host memory
//! before and after (docs/benchmarks.md, "Overload"). The plugin allows 64
//! calls in flight and 64 waiting; 1280 callers send 16 KiB requests to a
//! plugin that holds each call 5 ms, for several rounds. With the bound, the
//! host's RSS stays flat and the excess is refused at once. Not an example
//! to copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use polaris_plugin::{Error, Registry, proto::polaris::*};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    // `overload-rss unbounded`: the same load with the bound lifted (the
    // host as it was before the call contract: everything queues).
    let (slots, queue) = match std::env::args().nth(1).as_deref() {
        Some("unbounded") => (65536, 65536),
        _ => (64, 64),
    };
    let yaml = format!(
        "plugins:\n  - name: busy\n    mode: companion\n    call-timeout: 60s\n    max-concurrent-calls: {slots}\n    max-queued-calls: {queue}\n    companion:\n      path: {}\n      args: [\"--slow-call\", \"5\"]\n",
        dir.join("fixture-plugin").display()
    );
    println!(
        "max-concurrent-calls {slots}, max-queued-calls {queue}; host RSS at start {} KiB",
        rss_kib()
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("busy").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let key = "k".repeat(16 * 1024);
    let mut rss = Vec::new();
    for round in 0..6 {
        let started = Instant::now();
        let tasks: Vec<_> = (0..1280)
            .map(|_| {
                let plugin = plugin.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let mut counts = (0u32, 0u32);
                    for _ in 0..10 {
                        let request = RateLimitPluginRequest {
                            r#type: 1,
                            key: key.clone(),
                        };
                        match plugin
                            .call_typed::<_, RateLimitPluginResponse>(&request)
                            .await
                        {
                            Ok(_) => counts.0 += 1,
                            Err(Error::Overloaded { .. }) => counts.1 += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    counts
                })
            })
            .collect();
        let (mut ok, mut overloaded) = (0, 0);
        for t in tasks {
            let (o, r) = t.await.unwrap();
            ok += o;
            overloaded += r;
        }
        rss.push(rss_kib());
        println!(
            "round {round}: {ok} ok, {overloaded} overloaded in {:?}; host RSS {} KiB",
            started.elapsed(),
            rss[round]
        );
    }
    println!(
        "host RSS after round 1: {} KiB, after round 6: {} KiB",
        rss[0], rss[5]
    );
    registry.destroy().await;
}
