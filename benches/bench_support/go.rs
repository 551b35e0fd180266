//! The Go peers of tests/interop: the go-plugin plugin and the Go reference
//! host (hashicorp/go-plugin's client), built by tests/interop/go/build.sh.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use super::{
    CONCURRENCY, Caller, Host, LATENCY_CALLS, Latency, Measured, RATE_LIMIT_ARGS, REPEATS, Report,
    THROUGHPUT_CALLS, WARMUP_CALLS, cpu_seconds, latency, median, request, target_dir, throughput,
};

pub struct GoPeers {
    pub plugin: PathBuf,
    pub host: PathBuf,
}

impl GoPeers {
    /// Builds them if the Go toolchain is installed (.ci/install-interop).
    pub fn build() -> Option<Self> {
        let have_go = Command::new("go")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_go {
            return None;
        }
        eprintln!("building the Go peers (tests/interop/go/build.sh)...");
        let out = target_dir().join("interop-bench");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ok = Command::new("bash")
            .arg(root.join("tests/interop/go/build.sh"))
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("building the Go peers failed; Go rows skipped");
            return None;
        }
        Some(GoPeers {
            plugin: out.join("go-plugin"),
            host: out.join("go-host"),
        })
    }
}

#[derive(serde::Deserialize)]
struct GoBench {
    errors: i64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    calls_per_sec: f64,
    first_error: Option<String>,
}

fn go_bench(
    go: &GoPeers,
    plugin: &Path,
    calls: usize,
    concurrency: usize,
    rust_plugin: bool,
) -> GoBench {
    let mut cmd = Command::new(&go.host);
    cmd.args([
        "-bench",
        "-procs",
        "2",
        "-calls",
        &calls.to_string(),
        "-concurrency",
        &concurrency.to_string(),
    ])
    .arg("-plugin")
    .arg(plugin);
    if rust_plugin {
        cmd.arg("--").args(RATE_LIMIT_ARGS);
    }
    let out = cmd.output().expect("run go-host");
    assert!(
        out.status.success(),
        "go-host failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: GoBench = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "go-host output {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(
        report.errors, 0,
        "go-host call errors: {:?}",
        report.first_error
    );
    report
}

/// The Go host and our host (`ours`, plugin `name`) calling the same plugin
/// binary with the same workload; throughput runs interleaved, medians.
pub async fn go_host_section(
    report: &mut Report,
    go: &GoPeers,
    ours: &Host,
    name: &str,
    plugin: &Path,
    label: &str,
    rust_plugin: bool,
) {
    eprintln!("measuring against the Go reference host: {label}...");
    let us = |v: f64| Duration::from_secs_f64(v / 1e6);
    let mut caller = Caller::Registry(ours.registry.clone(), Arc::from(name));
    // A warm-up, as the Go host makes one (up to 1 000 calls) before it measures.
    let request = request();
    for _ in 0..WARMUP_CALLS {
        caller.call(&request).await;
    }
    let mut mine = Measured {
        latency: latency(&mut caller, LATENCY_CALLS).await,
        ..Measured::default()
    };
    let sequential = go_bench(go, plugin, LATENCY_CALLS, 1, rust_plugin);
    let mut theirs = Measured {
        latency: Latency {
            p50: us(sequential.p50_us),
            p99: us(sequential.p99_us),
            p999: us(sequential.p999_us),
        },
        ..Measured::default()
    };
    let plugin_pid = ours
        .registry
        .get(name)
        .unwrap()
        .status()
        .pid
        .map(|p| p.to_string());
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let (mut a, mut b) = (vec![], vec![]);
        let (mut cpu_mine, mut cpu_theirs) = (0.0, 0.0);
        for _ in 0..REPEATS {
            let before = cpu_seconds("self") + plugin_pid.as_deref().map_or(0.0, cpu_seconds);
            a.push(throughput(&caller, *c, THROUGHPUT_CALLS).await);
            cpu_mine +=
                cpu_seconds("self") + plugin_pid.as_deref().map_or(0.0, cpu_seconds) - before;
            // The Go host and its plugin are our (reaped) descendants: their
            // CPU time shows in RUSAGE_CHILDREN (start-up and warm-up included).
            let before = children_cpu_seconds();
            b.push(go_bench(go, plugin, THROUGHPUT_CALLS, *c, rust_plugin).calls_per_sec);
            cpu_theirs += children_cpu_seconds() - before;
        }
        mine.throughput[i] = median(&mut a);
        theirs.throughput[i] = median(&mut b);
        let per_call = |t: f64| t * 1e6 / (THROUGHPUT_CALLS * REPEATS) as f64;
        mine.cpu_per_call = Some((per_call(cpu_mine), f64::NAN));
        theirs.cpu_per_call = Some((per_call(cpu_theirs), f64::NAN));
    }
    report.go_row(label, &mine, &theirs);
}

fn children_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}
