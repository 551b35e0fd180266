//! Measurement helpers for `benches/host.rs`.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use polaris_plugin::{
    PluginState, Registry, codec,
    proto::polaris::{RateLimitPluginRequest, Request, plugin_client::PluginClient},
};
use tonic::transport::{Channel, Endpoint};

pub mod channel;
pub mod fleet;
pub mod floor;
mod go;
pub mod mtls;
pub mod upgrade;
pub use go::{GoPeers, go_host_section};

/// Sequential calls per latency measurement.
pub const LATENCY_CALLS: usize = 20_000;
/// Calls per throughput measurement.
pub const THROUGHPUT_CALLS: usize = 20_000;
/// Concurrent callers measured.
pub const CONCURRENCY: [usize; 3] = [1, 8, 64];
/// Each throughput figure is the median of this many interleaved runs (this
/// machine's run-to-run spread is tens of percent).
pub const REPEATS: usize = 5;

/// The median of `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
pub const WARMUP_CALLS: usize = 2_000;

pub fn request() -> Request {
    codec::marshal_request(&RateLimitPluginRequest {
        r#type: 1,
        key: "/bench".into(),
    })
}

/// The example plugins, built in release mode.
pub struct Bins {
    pub v2: PathBuf,
    pub v3: PathBuf,
}

impl Bins {
    pub fn build() -> Self {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("building the example plugins (release)...");
        let ok = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "polaris-plugin-examples",
                "--bins",
            ])
            .status()
            .expect("run cargo")
            .success();
        assert!(ok, "building the example plugins failed");
        let dir = target_dir().join("release");
        Bins {
            v2: dir.join("rate-limit-server-v2"),
            v3: dir.join("rate-limit-server-v3"),
        }
    }
}

/// `target/` (this bench runs from target/release/deps/host-HASH).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The Rust example's limiter settings for benchmarks: never deny, so every
/// call does the same work.
pub const RATE_LIMIT_ARGS: [&str; 4] = ["--rate", "1000000000", "--burst", "1000000000"];

/// A native-form config with one companion; `args` only for the Rust example
/// (the Go plugin has flags of its own).
pub fn companion_yaml(
    name: &str,
    path: &Path,
    env: &str,
    procs: usize,
    rust_plugin: bool,
) -> String {
    let env = if env.is_empty() {
        String::new()
    } else {
        format!("      env: {{ {env} }}\n")
    };
    let args = if rust_plugin {
        let quoted: Vec<String> = RATE_LIMIT_ARGS.iter().map(|a| format!("{a:?}")).collect();
        format!("      args: [{}]\n", quoted.join(", "))
    } else {
        String::new()
    };
    format!(
        "plugins:\n  - name: {name}\n    mode: companion\n    call-timeout: 10s\n    companion:\n      path: {}\n      max-procs: {procs}\n{args}{env}",
        path.display()
    )
}

pub struct Host {
    pub registry: Arc<Registry>,
}

impl Host {
    pub async fn start(yaml: &str) -> Self {
        let registry = Registry::from_yaml_str(yaml).await.expect("bench config");
        registry
            .wait_ready(Duration::from_secs(30))
            .await
            .expect("plugins ready");
        Host {
            registry: Arc::new(registry),
        }
    }

    pub async fn destroy(&self) {
        self.registry.destroy().await;
    }
}

/// `rate-limit-server-v3` on a free loopback port.
pub struct RemoteServer {
    child: Child,
    pub addr: String,
}

impl RemoteServer {
    pub fn start(v3: &Path) -> Self {
        let mut child = Command::new(v3)
            .args([
                "--address",
                "127.0.0.1:0",
                "--rate",
                "1000000000",
                "--burst",
                "1000000000",
            ])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("v3 output").unwrap();
            if let Some((_, rest)) = line.split_once("addr=") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        RemoteServer { child, addr }
    }

    pub fn yaml(&self, name: &str) -> String {
        format!(
            "plugins:\n  - name: {name}\n    mode: remote\n    call-timeout: 10s\n    remote:\n      address: {}\n",
            self.addr
        )
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who makes the calls: the host, or a raw tonic client.
#[derive(Clone)]
pub enum Caller {
    Registry(Arc<Registry>, Arc<str>),
    Raw(PluginClient<Channel>),
    /// A generated client on `PluginHandle::channel()`.
    Channel(PluginClient<polaris_plugin::channel::PluginChannel>),
}

impl Caller {
    pub async fn call(&mut self, request: &Request) {
        match self {
            Caller::Registry(r, name) => {
                r.call(name, request.clone()).await.expect("call");
            }
            Caller::Raw(client) => {
                client.call(request.clone()).await.expect("raw call");
            }
            Caller::Channel(client) => {
                client.call(request.clone()).await.expect("channel call");
            }
        }
    }

    /// A raw tonic client to the plugin `name`'s current address.
    pub async fn raw_for(host: &Host, name: &str) -> Caller {
        let address = host.registry.get(name).unwrap().status().address.unwrap();
        let uri = match address.strip_prefix("tcp://") {
            Some(a) => format!("http://{a}"),
            None => address,
        };
        let channel = Endpoint::from_shared(uri)
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        Caller::Raw(PluginClient::new(channel))
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

///
/// The calls are made from a spawned task, as a server's request handler makes them
/// (`BENCH_CALLER=block-on`: from `block_on`'s thread, which on a multi-thread runtime
/// is not one of its workers, so every wake-up between it and the connection crosses
/// threads).
pub async fn latency(caller: &mut Caller, calls: usize) -> Latency {
    let mut caller = caller.clone();
    let sample = async move {
        let request = request();
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            caller.call(&request).await;
            samples.push(t.elapsed());
        }
        samples
    };
    let mut samples = if std::env::var("BENCH_CALLER").as_deref() == Ok("block-on") {
        sample.await
    } else {
        tokio::spawn(sample).await.unwrap()
    };
    samples.sort_unstable();
    Latency {
        p50: percentile(&samples, 0.50),
        p99: percentile(&samples, 0.99),
        p999: percentile(&samples, 0.999),
    }
}

/// Calls per second with `concurrency` callers sharing `total` calls.
pub async fn throughput(caller: &Caller, concurrency: usize, total: usize) -> f64 {
    let per_task = total / concurrency;
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut caller = caller.clone();
            tokio::spawn(async move {
                let request = request();
                for _ in 0..per_task {
                    caller.call(&request).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per_task * concurrency) as f64 / start.elapsed().as_secs_f64()
}

/// What one path measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub latency: Latency,
    pub throughput: [f64; 3],
    /// CPU time per call at 64 callers, in µs: (this process, the plugin).
    pub cpu_per_call: Option<(f64, f64)>,
    /// The floor's p50 and p99 around the latency runs (mean of before and after).
    pub floor: Option<(Duration, Duration)>,
}

/// Two paths measured alike in one run, alternating so drift hits both the same: warm-up,
/// sequential latency, then throughput at each concurrency (median of [`REPEATS`]), with
/// the CPU per call of this process and of `pids[k]` (the plugin behind path `k`).
pub async fn interleaved(callers: &mut [Caller; 2], pids: &[Option<String>; 2]) -> [Measured; 2] {
    let request = request();
    for _ in 0..WARMUP_CALLS {
        for caller in callers.iter_mut() {
            caller.call(&request).await;
        }
    }
    let mut measured = [Measured::default(); 2];
    for (k, caller) in callers.iter_mut().enumerate() {
        measured[k].latency = latency(caller, LATENCY_CALLS).await;
    }
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let mut runs = [vec![], vec![]];
        let mut cpu = [(0.0, 0.0); 2];
        for _ in 0..REPEATS {
            for (k, caller) in callers.iter().enumerate() {
                let plugin_cpu = || pids[k].as_deref().map_or(0.0, cpu_seconds);
                let before = (cpu_seconds("self"), plugin_cpu());
                runs[k].push(throughput(caller, *c, THROUGHPUT_CALLS).await);
                cpu[k].0 += cpu_seconds("self") - before.0;
                cpu[k].1 += plugin_cpu() - before.1;
            }
        }
        let per_call = |t: f64| t * 1e6 / (THROUGHPUT_CALLS * REPEATS) as f64;
        for k in 0..2 {
            measured[k].throughput[i] = median(&mut runs[k]);
            measured[k].cpu_per_call = Some((per_call(cpu[k].0), per_call(cpu[k].1)));
        }
    }
    measured
}

/// User + system CPU time of a process so far, in seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    // After the comm field: state is index 0, utime 11, stime 12 (clock ticks).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Whether the section named `name` runs (env `BENCH_ONLY`, comma-separated:
/// calls, go, recovery, mtls, upgrades, startup; default all).
pub fn enabled(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == name))
}

/// Latency and throughput through the registry and through a raw client,
/// interleaved so drift hits both alike. Returns the registry's figures.
pub async fn calls_section(
    report: &mut Report,
    floor: &mut floor::Floor,
    label: &str,
    host: &Host,
    name: &str,
) -> Measured {
    eprintln!("measuring calls: {label}...");
    let mut via_host = Caller::Registry(host.registry.clone(), Arc::from(name));
    let mut raw = Caller::raw_for(host, name).await;
    let request = request();
    for _ in 0..WARMUP_CALLS {
        via_host.call(&request).await;
        raw.call(&request).await;
    }
    let mut host_m = Measured::default();
    let mut raw_m = Measured::default();
    // The floor just before and just after the latency runs: the multiples use their mean.
    let before = floor.sample().await;
    host_m.latency = latency(&mut via_host, LATENCY_CALLS).await;
    raw_m.latency = latency(&mut raw, LATENCY_CALLS).await;
    let after = floor.sample().await;
    report.floor(label, before, after);
    host_m.floor = Some(((before.p50 + after.p50) / 2, (before.p99 + after.p99) / 2));
    raw_m.floor = host_m.floor;
    let plugin_pid = host
        .registry
        .get(name)
        .unwrap()
        .status()
        .pid
        .map(|p| p.to_string());
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let mut runs = [vec![], vec![]];
        let mut cpu = [(0.0, 0.0); 2];
        for _ in 0..REPEATS {
            for (k, caller) in [&via_host, &raw].into_iter().enumerate() {
                let before = (
                    cpu_seconds("self"),
                    plugin_pid.as_deref().map_or(0.0, cpu_seconds),
                );
                runs[k].push(throughput(caller, *c, THROUGHPUT_CALLS).await);
                let after = (
                    cpu_seconds("self"),
                    plugin_pid.as_deref().map_or(0.0, cpu_seconds),
                );
                cpu[k].0 += after.0 - before.0;
                cpu[k].1 += after.1 - before.1;
            }
        }
        let per_call = |t: f64| t * 1e6 / (THROUGHPUT_CALLS * REPEATS) as f64;
        host_m.throughput[i] = median(&mut runs[0]);
        raw_m.throughput[i] = median(&mut runs[1]);
        host_m.cpu_per_call = Some((per_call(cpu[0].0), per_call(cpu[0].1)));
        raw_m.cpu_per_call = Some((per_call(cpu[1].0), per_call(cpu[1].1)));
    }
    report.calls(label, "Registry::call", &host_m);
    report.calls(label, "raw tonic client", &raw_m);
    report.ratio(label, &host_m, &raw_m);
    host_m
}

/// SIGKILL → first successful call, over 50 kills of a stable plugin.
pub async fn recovery_section(report: &mut Report, label: &str, plugin: &Path, rust_plugin: bool) {
    const KILLS: usize = 50;
    eprintln!("measuring recovery: {label}...");
    // A run counts as stable after min-uptime; the bench lets each run reach
    // it, so every restart is immediate (no backoff), as for a plugin that
    // crashes once in a while.
    let yaml = companion_yaml("victim", plugin, "", 1, rust_plugin).replace(
        "      max-procs: 1\n",
        "      max-procs: 1\n      restart: { min-uptime: 100ms }\n",
    );
    let host = Host::start(&yaml).await;
    let handle = host.registry.get("victim").unwrap();
    let request = request();
    let mut samples = Vec::with_capacity(KILLS);
    for _ in 0..KILLS {
        handle
            .call(request.clone())
            .await
            .expect("call before kill");
        tokio::time::sleep(Duration::from_millis(150)).await; // past min-uptime
        let pid = handle.status().pid.unwrap();
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        handle
            .call(request.clone())
            .await
            .expect("first call after kill");
        samples.push(t.elapsed());
        assert_eq!(handle.status().state, PluginState::Ready);
    }
    samples.sort_unstable();
    report.recovery(
        label,
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        KILLS,
    );
    host.destroy().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `from_yaml` → every plugin ready, for 1, 10 and 50 companions; host RSS
/// with 1 and 50.
pub async fn startup_section(report: &mut Report, v2: &Path) {
    let mut rss = vec![];
    for n in [1usize, 10, 50] {
        eprintln!("measuring start-up: {n} companions...");
        let mut yaml = String::from("plugins:\n");
        for i in 0..n {
            let one = companion_yaml(&format!("rl-{i}"), v2, "", 1, true);
            yaml.push_str(one.strip_prefix("plugins:\n").unwrap());
        }
        let before = rss_bytes();
        let t = Instant::now();
        let registry = Registry::from_yaml_str(&yaml).await.unwrap();
        registry.wait_ready(Duration::from_secs(60)).await.unwrap();
        let took = t.elapsed();
        // One call each, so every connection is fully set up.
        for name in registry.names() {
            registry.call(&name, request()).await.unwrap();
        }
        let after = rss_bytes();
        report.startup(n, took);
        rss.push((n, before, after));
        registry.destroy().await;
    }
    let (_, _, after1) = rss[0];
    let (_, _, after50) = rss[2];
    report.memory("host RSS with 1 companion", after1);
    report.memory("host RSS with 50 companions", after50);
    report.memory_per(
        "host memory per companion ((RSS50 - RSS1) / 49)",
        after50.saturating_sub(after1) / 49,
    );
}

/// The printed results.
#[derive(Default)]
pub struct Report {
    header: String,
    calls: String,
    ratios: String,
    go: String,
    recovery: String,
    floors: String,
    upgrades: String,
    mtls: String,
    fleet: String,
    fleet_cost: String,
    startup: String,
    memory: String,
    notes: String,
}

/// `a / b` for latency (p50, p99) and throughput (1, 8, 64 callers), as a table row.
fn ratio_row(out: &mut String, target: &str, a: &Measured, b: &Measured) {
    let lat =
        |f: fn(&Latency) -> Duration| f(&a.latency).as_secs_f64() / f(&b.latency).as_secs_f64();
    let tput = |i: usize| a.throughput[i] / b.throughput[i];
    let _ = writeln!(
        out,
        "| {target} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        lat(|l| l.p50),
        lat(|l| l.p99),
        tput(0),
        tput(1),
        tput(2),
    );
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

impl Report {
    pub fn machine(&mut self) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let _ = writeln!(
            self.header,
            "Machine: {cores} CPUs ({cpu}), Linux {}",
            kernel.trim()
        );
    }

    pub fn floor(&mut self, during: &str, before: floor::FloorSample, after: floor::FloorSample) {
        let _ = writeln!(
            self.floors,
            "| {during} | {} / {} | {} / {} |",
            us(before.p50),
            us(before.p99),
            us(after.p50),
            us(after.p99)
        );
    }

    pub fn calls(&mut self, target: &str, path: &str, m: &Measured) {
        let cpu = m.cpu_per_call.map_or("-".to_owned(), |(host, plugin)| {
            format!("{host:.0} / {plugin:.0}")
        });
        let times = |d: Duration, f: Option<Duration>| match f {
            Some(f) if !f.is_zero() => {
                format!("{} ({:.1}×)", us(d), d.as_secs_f64() / f.as_secs_f64())
            }
            _ => us(d),
        };
        let _ = writeln!(
            self.calls,
            "| {target} | {path} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {cpu} |",
            times(m.latency.p50, m.floor.map(|f| f.0)),
            times(m.latency.p99, m.floor.map(|f| f.1)),
            us(m.latency.p999),
            m.throughput[0],
            m.throughput[1],
            m.throughput[2]
        );
    }

    pub fn ratio(&mut self, target: &str, host: &Measured, raw: &Measured) {
        ratio_row(&mut self.ratios, target, host, raw);
    }

    pub fn go_row(&mut self, plugin: &str, ours: &Measured, go: &Measured) {
        let total = |m: &Measured| {
            m.cpu_per_call.map_or("-".to_owned(), |(a, b)| {
                format!("{:.0}", if b.is_nan() { a } else { a + b })
            })
        };
        let _ = writeln!(
            self.go,
            "| {plugin} | Rust host | {} | {} | {:.0} | {:.0} | {:.0} | {} |",
            us(ours.latency.p50),
            us(ours.latency.p99),
            ours.throughput[0],
            ours.throughput[1],
            ours.throughput[2],
            total(ours)
        );
        let _ = writeln!(
            self.go,
            "| {plugin} | Go host | {} | {} | {:.0} | {:.0} | {:.0} | {} |",
            us(go.latency.p50),
            us(go.latency.p99),
            go.throughput[0],
            go.throughput[1],
            go.throughput[2],
            total(go)
        );
        let _ = writeln!(
            self.go,
            "| {plugin} | **Rust / Go** | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | |",
            ours.latency.p50.as_secs_f64() / go.latency.p50.as_secs_f64(),
            ours.latency.p99.as_secs_f64() / go.latency.p99.as_secs_f64(),
            ours.throughput[0] / go.throughput[0],
            ours.throughput[1] / go.throughput[1],
            ours.throughput[2] / go.throughput[2],
        );
    }

    pub fn recovery(&mut self, label: &str, p50: Duration, p95: Duration, kills: usize) {
        let _ = writeln!(
            self.recovery,
            "| {label} | {} | {} | {kills} |",
            us(p50),
            us(p95)
        );
    }

    pub fn upgrades(
        &mut self,
        label: &str,
        per_second: f64,
        p50: Duration,
        p99: Duration,
        upgrades: usize,
        failed: usize,
    ) {
        let _ = writeln!(
            self.upgrades,
            "| {label} | {per_second:.0} | {} | {} | {upgrades} | {failed} |",
            us(p50),
            us(p99)
        );
    }

    /// A remote fleet's figures and how its endpoints shared the calls.
    pub fn fleet(&mut self, target: &str, m: &Measured, spread: &str) {
        let _ = writeln!(
            self.fleet,
            "| {target} | {} | {} | {:.0} | {:.0} | {:.0} | {spread} |",
            us(m.latency.p50),
            us(m.latency.p99),
            m.throughput[0],
            m.throughput[1],
            m.throughput[2],
        );
    }

    /// Balancing's cost: a fleet of one against the single-address plugin.
    pub fn fleet_cost(&mut self, fleet: &Measured, single: &Measured) {
        ratio_row(
            &mut self.fleet_cost,
            "fleet of 1 / one address",
            fleet,
            single,
        );
    }

    pub fn mtls(&mut self, tls: &Measured, plain: &Measured) {
        ratio_row(&mut self.mtls, "Rust plugin, unix socket", tls, plain);
    }

    pub fn startup(&mut self, n: usize, took: Duration) {
        let _ = writeln!(self.startup, "| {n} | {:.1} |", took.as_secs_f64() * 1e3);
    }

    pub fn memory(&mut self, what: &str, bytes: u64) {
        let _ = writeln!(
            self.memory,
            "| {what} | {:.1} MiB |",
            bytes as f64 / 1048576.0
        );
    }

    pub fn memory_per(&mut self, what: &str, bytes: u64) {
        let _ = writeln!(self.memory, "| {what} | {:.0} KiB |", bytes as f64 / 1024.0);
    }

    pub fn note(&mut self, note: &str) {
        let _ = writeln!(self.notes, "- {note}");
    }

    pub fn print(&self) {
        println!("{}", self.header);
        println!(
            "### Calls (latency in µs over {LATENCY_CALLS} sequential calls; throughput in calls/s, {THROUGHPUT_CALLS} calls per level)\n"
        );
        println!(
            "| target | path | p50 | p99 | p999 | 1 caller | 8 callers | 64 callers | CPU µs/call, host / plugin |\n|---|---|---|---|---|---|---|---|---|"
        );
        print!("{}", self.calls);
        if !self.floors.is_empty() {
            println!(
                "\n### The floor: a raw unix-socket round trip between two processes (100 B each way, blocking), p50 / p99 µs, sampled just before and just after each latency run; the (×) figures above are multiples of the mean of the two\n"
            );
            println!("| during | before | after |\n|---|---|---|");
            print!("{}", self.floors);
        }
        println!(
            "\n### Host overhead (Registry::call / raw tonic; latency ratios: lower is better, throughput ratios: higher is better)\n"
        );
        println!("| target | p50 | p99 | tput 1 | tput 8 | tput 64 |\n|---|---|---|---|---|---|");
        print!("{}", self.ratios);
        if !self.go.is_empty() {
            println!(
                "\n### Against the Go reference host (go-plugin client), same plugin, same workload\n"
            );
            println!(
                "| plugin | host | p50 µs | p99 µs | 1 caller | 8 callers | 64 callers | CPU µs/call, host + plugin |\n|---|---|---|---|---|---|---|---|"
            );
            print!("{}", self.go);
        }
        if !self.mtls.is_empty() {
            println!(
                "\n### AutoMTLS / plaintext (Registry::call, same plugin, same run; latency ratios: lower is better, throughput ratios: higher is better)\n"
            );
            println!(
                "| target | p50 | p99 | tput 1 | tput 8 | tput 64 |\n|---|---|---|---|---|---|"
            );
            print!("{}", self.mtls);
        }
        if !self.fleet.is_empty() {
            println!(
                "\n### Remote fleets (rate-limit-server-v3 processes on loopback; latency µs, throughput calls/s; same run, interleaved, medians of 5)\n"
            );
            println!(
                "| target | p50 | p99 | 1 caller | 8 callers | 64 callers | calls per endpoint |\n|---|---|---|---|---|---|---|"
            );
            print!("{}", self.fleet);
            println!(
                "\n| balancing's cost | p50 | p99 | tput 1 | tput 8 | tput 64 |\n|---|---|---|---|---|---|"
            );
            print!("{}", self.fleet_cost);
        }
        println!("\n### Recovery: SIGKILL → first successful call (µs)\n");
        println!("| plugin | p50 | p95 | kills |\n|---|---|---|---|");
        print!("{}", self.recovery);
        if !self.upgrades.is_empty() {
            println!(
                "\n### Calls during blue/green upgrades (Rust plugin, 8 callers, 5 s phases interleaved, medians of 3)\n"
            );
            println!(
                "| phase | calls/s | p50 µs | p99 µs | upgrades | failed calls |\n|---|---|---|---|---|---|"
            );
            print!("{}", self.upgrades);
        }
        println!("\n### Start-up: from_yaml → every plugin ready (ms)\n");
        println!("| companions | ms |\n|---|---|");
        print!("{}", self.startup);
        println!("\n### Memory\n");
        println!("| what | size |\n|---|---|");
        print!("{}", self.memory);
        if !self.notes.is_empty() {
            println!("\n{}", self.notes);
        }
    }
}
