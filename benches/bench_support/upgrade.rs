//! Calls during continuous blue/green upgrades against steady state, in one run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use polaris_plugin::PluginHandle;

use super::{Host, Report, companion_yaml, median, percentile, request};

/// Callers calling throughout each phase.
const CALLERS: usize = 8;
/// How long each phase lasts.
const PHASE: Duration = Duration::from_secs(5);
/// Steady and reloading phases, interleaved.
const ROUNDS: usize = 3;

/// What the callers saw in one phase.
struct Phase {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    failed: usize,
    upgrades: usize,
}

/// 8 callers for [`PHASE`], with `upgrade` back to back meanwhile or not.
async fn phase(plugin: &PluginHandle, upgrading: bool) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (plugin, stop) = (plugin.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut samples, mut failed) = (Vec::new(), 0usize);
                let request = request();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match plugin.call(request.clone()).await {
                        Ok(_) => samples.push(t.elapsed()),
                        Err(_) => failed += 1,
                    }
                }
                (samples, failed)
            })
        })
        .collect();
    let started = Instant::now();
    let mut upgrades = 0;
    if upgrading {
        while started.elapsed() < PHASE {
            plugin.upgrade().await.expect("upgrade");
            upgrades += 1;
        }
    } else {
        tokio::time::sleep(PHASE).await;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let (mut samples, mut failed) = (Vec::new(), 0);
    for caller in callers {
        let (s, f) = caller.await.expect("caller");
        samples.extend(s);
        failed += f;
    }
    samples.sort_unstable();
    Phase {
        per_second: samples.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        failed,
        upgrades,
    }
}

/// Steady vs continuous upgrades of the Rust companion, interleaved, medians of
/// [`ROUNDS`].
pub async fn upgrades_section(report: &mut Report, v2: &std::path::Path) {
    eprintln!("measuring calls during continuous upgrades...");
    let host = Host::start(&companion_yaml("upgraded", v2, "", 1, true)).await;
    let plugin = host.registry.get("upgraded").expect("configured");
    let mut rows: [Vec<Phase>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, upgrading) in [false, true].into_iter().enumerate() {
            rows[i].push(phase(&plugin, upgrading).await);
        }
    }
    for (label, phases) in ["steady", "upgrading back to back"].iter().zip(&rows) {
        let mut rate: Vec<f64> = phases.iter().map(|p| p.per_second).collect();
        let mut p50: Vec<f64> = phases.iter().map(|p| p.p50.as_secs_f64()).collect();
        let mut p99: Vec<f64> = phases.iter().map(|p| p.p99.as_secs_f64()).collect();
        let failed: usize = phases.iter().map(|p| p.failed).sum();
        let upgrades: usize = phases.iter().map(|p| p.upgrades).sum();
        report.upgrades(
            label,
            median(&mut rate),
            Duration::from_secs_f64(median(&mut p50)),
            Duration::from_secs_f64(median(&mut p99)),
            upgrades,
            failed,
        );
    }
    host.destroy().await;
}
