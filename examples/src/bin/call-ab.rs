//! `call-ab`: sequential and concurrent calls through `Registry` to the
//! `rate-limit-server-v2` example beside this binary; prints one line per
//! figure. `benches/ab.sh` builds it at two commits and interleaves runs (the
//! A/B comparison in `docs/benchmarks.md`). Not an example to copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use polaris_plugin::{Registry, proto::polaris::*};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let yaml = format!(
        "plugins:\n  - name: rl\n    mode: companion\n    companion:\n      path: {}\n      max-procs: 2\n      args: [\"--rate\", \"1000000000\", \"--burst\", \"1000000000\"]\n",
        dir.join("rate-limit-server-v2").display()
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let p = registry.get("rl").unwrap();
    p.wait_ready(Duration::from_secs(10)).await.unwrap();
    let req = RateLimitPluginRequest {
        r#type: 1,
        key: "/k".into(),
    };
    for _ in 0..2000 {
        let _: RateLimitPluginResponse = p.call_typed(&req).await.unwrap();
    }
    let mut lat = Vec::with_capacity(20000);
    let t = Instant::now();
    for _ in 0..20000 {
        let s = Instant::now();
        let _: RateLimitPluginResponse = p.call_typed(&req).await.unwrap();
        lat.push(s.elapsed());
    }
    let total = t.elapsed();
    lat.sort();
    println!("p50_us {}", lat[10000].as_micros());
    println!("p99_us {}", lat[19800].as_micros());
    println!("tput_1 {:.0}", 20000.0 / total.as_secs_f64());
    for conc in [8usize, 64] {
        let t = Instant::now();
        let tasks: Vec<_> = (0..conc)
            .map(|_| {
                let p = p.clone();
                let req = req.clone();
                tokio::spawn(async move {
                    for _ in 0..(20000 / conc) {
                        let _: RateLimitPluginResponse = p.call_typed(&req).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "tput_{conc} {:.0}",
            (20000 / conc * conc) as f64 / t.elapsed().as_secs_f64()
        );
    }
    registry.destroy().await;
}
