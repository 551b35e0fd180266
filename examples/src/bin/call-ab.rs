//! `call-ab`: sequential and concurrent calls through `Registry` to the
//! `rate-limit-server-v2` example beside this binary; prints one line per
//! figure. `benches/ab.sh` builds it at two commits and interleaves runs (the
//! A/B comparison in `docs/benchmarks.md`). Not an example to copy.
//!
//! Knobs (environment): `CALLAB_RUNTIME=current-thread` runs the host on a
//! current-thread runtime (default: multi-thread, 2 workers); `CALLAB_PROCS`
//! sets the plugin's `max-procs` (default 2); `CALLAB_COUNTERS=1` also prints,
//! per phase, the context switches (voluntary + involuntary, all threads) and
//! the CPU µs per call of the host and of the plugin (`/proc`); `CALLAB_SEQ_ONLY=1`
//! stops after the sequential calls; `CALLAB_SPAWN=1` makes the calls from a spawned
//! task (as a server's request handler would) instead of `block_on`'s thread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use polaris_plugin::{PluginHandle, Registry, proto::polaris::*};

fn main() {
    let current = std::env::var("CALLAB_RUNTIME").as_deref() == Ok("current-thread");
    let runtime = if current {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    }
    .enable_all()
    .build()
    .unwrap();
    if std::env::var("CALLAB_SPAWN").as_deref() == Ok("1") {
        // As a server's request handler would: in a task, not in `block_on`.
        runtime.block_on(async { tokio::spawn(run()).await.unwrap() });
    } else {
        runtime.block_on(run());
    }
}

/// Context switches and CPU time (µs) of every thread of a process.
fn counters(pid: u32) -> (u64, u64) {
    let mut switches = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    (switches, ticks * 1_000_000 / hz)
}

struct Probe {
    on: bool,
    host: u32,
    plugin: u32,
    start: [(u64, u64); 2],
}

impl Probe {
    fn new(p: &PluginHandle) -> Self {
        let on = std::env::var("CALLAB_COUNTERS").as_deref() == Ok("1");
        let host = std::process::id();
        let plugin = p.status().pid.unwrap_or(0);
        Probe {
            on,
            host,
            plugin,
            start: [counters(host), counters(plugin)],
        }
    }

    fn restart(&mut self) {
        self.start = [counters(self.host), counters(self.plugin)];
    }

    fn report(&mut self, phase: &str, calls: usize) {
        if self.on {
            let now = [counters(self.host), counters(self.plugin)];
            for (i, side) in ["host", "plugin"].iter().enumerate() {
                let cs = (now[i].0 - self.start[i].0) as f64 / calls as f64;
                let cpu = (now[i].1 - self.start[i].1) as f64 / calls as f64;
                println!("cs_{side}_{phase} {cs:.2}");
                println!("cpu_{side}_{phase} {cpu:.1}");
            }
        }
        self.restart();
    }
}

async fn run() {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let procs = std::env::var("CALLAB_PROCS").unwrap_or_else(|_| "2".into());
    let yaml = format!(
        "plugins:\n  - name: rl\n    mode: companion\n    companion:\n      path: {}\n      max-procs: {procs}\n      args: [\"--rate\", \"1000000000\", \"--burst\", \"1000000000\"]\n",
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
    let mut probe = Probe::new(&p);
    let mut lat = Vec::with_capacity(20000);
    let t = Instant::now();
    for _ in 0..20000 {
        let s = Instant::now();
        let _: RateLimitPluginResponse = p.call_typed(&req).await.unwrap();
        lat.push(s.elapsed());
    }
    let total = t.elapsed();
    probe.report("seq", 20000);
    lat.sort();
    println!("p50_us {}", lat[10000].as_micros());
    println!("p99_us {}", lat[19800].as_micros());
    println!("tput_1 {:.0}", 20000.0 / total.as_secs_f64());
    let levels: &[usize] = if std::env::var("CALLAB_SEQ_ONLY").as_deref() == Ok("1") {
        &[]
    } else {
        &[8, 64]
    };
    for &conc in levels {
        probe.restart();
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
        probe.report(&format!("c{conc}"), 20000 / conc * conc);
    }
    registry.destroy().await;
}
