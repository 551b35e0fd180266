//! The host's benchmarks: `cargo bench --bench host` (see docs/benchmarks.md).
//!
//! Builds the example plugins in release mode, then measures in one run:
//! call latency and throughput through `Registry::call` and through a raw
//! tonic client on the same kind of connection (host overhead), the Go
//! reference host on the same plugins (when the interop toolchain is
//! installed), recovery after SIGKILL, remote fleets of 1/2/4 endpoints,
//! start-up of 1/10/50 companions, and memory. Prints a markdown table on stdout; progress on stderr.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod bench_support;

use bench_support::*;

fn main() {
    bench_support::floor::echo_child_if_asked();
    // BENCH_RUNTIME=current-thread runs the host (and the callers) on one
    // thread: no cross-thread wake-ups between a caller and the connection.
    let mut builder = match std::env::var("BENCH_RUNTIME").as_deref() {
        Ok("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    let runtime = builder.enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let bins = Bins::build();
    let mut report = Report::default();
    report.machine();

    if !enabled("calls") && !enabled("go") {
        return recovery_and_startup(report, &bins).await;
    }
    // 1 + 2: latency, throughput and host overhead, per transport.
    let rust_unix = Host::start(&companion_yaml("rust-unix", &bins.v2, "", 2, true)).await;
    let go = GoPeers::build();
    let go_host = match &go {
        Some(go) => Some(Host::start(&companion_yaml("go", &go.plugin, "", 2, false)).await),
        None => None,
    };
    if enabled("calls") {
        let mut floor = bench_support::floor::Floor::start();
        calls_section(
            &mut report,
            &mut floor,
            "Rust plugin, unix socket",
            &rust_unix,
            "rust-unix",
        )
        .await;
        let rust_tcp = Host::start(&companion_yaml(
            "rust-tcp",
            &bins.v2,
            "POLARIS_PLUGIN_TRANSPORT: tcp",
            2,
            true,
        ))
        .await;
        calls_section(
            &mut report,
            &mut floor,
            "Rust plugin, TCP loopback",
            &rust_tcp,
            "rust-tcp",
        )
        .await;
        rust_tcp.destroy().await;
        let remote = RemoteServer::start(&bins.v3);
        let remote_host = Host::start(&remote.yaml("remote")).await;
        calls_section(
            &mut report,
            &mut floor,
            "remote plugin, TCP loopback",
            &remote_host,
            "remote",
        )
        .await;
        remote_host.destroy().await;
        if let Some(go_host) = &go_host {
            calls_section(
                &mut report,
                &mut floor,
                "Go go-plugin plugin, unix socket",
                go_host,
                "go",
            )
            .await;
        }
    }
    // 3: the Go reference host on the same plugins, same workload.
    match (&go, &go_host) {
        (Some(go), Some(go_host)) if enabled("go") => {
            go_host_section(&mut report, go, go_host, "go", &go.plugin, "Go plugin", false).await;
            go_host_section(&mut report, go, &rust_unix, "rust-unix", &bins.v2, "Rust plugin", true).await;
        }
        (None, _) => report.note("Go peers not built (run .ci/install-interop first): the Go plugin and Go host rows are missing."),
        _ => {}
    }
    // 6 (part): the Rust plugin's own memory, after all those calls.
    if let Some(r) = rust_unix
        .registry
        .get("rust-unix")
        .and_then(|p| p.resources())
    {
        report.memory(
            "Rust plugin RSS (rate-limit-server-v2, after the runs)",
            r.rss_bytes,
        );
    }
    rust_unix.destroy().await;
    if let Some(go_host) = &go_host {
        go_host.destroy().await;
    }
    recovery_and_startup(report, &bins).await;
}

async fn recovery_and_startup(mut report: Report, bins: &Bins) {
    // 4: recovery after SIGKILL.
    if enabled("recovery") {
        recovery_section(&mut report, "Rust plugin", &bins.v2, true).await;
        if let Some(go) = GoPeers::build() {
            recovery_section(&mut report, "Go plugin", &go.plugin, false).await;
        }
    }
    // The AutoMTLS call path against plaintext.
    if enabled("channel") {
        bench_support::channel::channel_section(&mut report, &bins.v2).await;
    }
    if enabled("mtls") {
        bench_support::mtls::mtls_section(&mut report, &bins.v2).await;
    }
    // Remote fleets: 1, 2, 4 endpoints, and balancing's cost against one address.
    if enabled("fleet") {
        bench_support::fleet::fleet_section(&mut report, &bins.v3).await;
    }
    // Calls while the plugin is replaced back to back (issue: reload without a dropped call).
    if enabled("upgrades") {
        bench_support::upgrade::upgrades_section(&mut report, &bins.v2).await;
    }
    // 5 + 6: start-up and host memory per companion.
    if enabled("startup") {
        startup_section(&mut report, &bins.v2).await;
    }
    report.print();
}
