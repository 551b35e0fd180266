//! The AutoMTLS call path against plaintext, same plugin binary, same run, interleaved.

use std::{path::Path, sync::Arc};

use super::{
    CONCURRENCY, Caller, Host, LATENCY_CALLS, Measured, REPEATS, Report, THROUGHPUT_CALLS,
    WARMUP_CALLS, companion_yaml, cpu_seconds, latency, median, request, throughput,
};

/// Two hosts on the Rust example plugin, one with `auto-mtls: true`; calls through
/// `Registry::call` on each, latency then throughput, alternating so drift hits both alike.
pub async fn mtls_section(report: &mut Report, v2: &Path) {
    eprintln!("measuring calls: AutoMTLS against plaintext...");
    let plain = Host::start(&companion_yaml("plain", v2, "", 2, true)).await;
    let tls_yaml = format!(
        "{}      auto-mtls: true\n",
        companion_yaml("mtls", v2, "", 2, true)
    );
    let tls = Host::start(&tls_yaml).await;
    let mut callers = [
        Caller::Registry(plain.registry.clone(), Arc::from("plain")),
        Caller::Registry(tls.registry.clone(), Arc::from("mtls")),
    ];
    let pid = |host: &Host, name: &str| {
        let status = host.registry.get(name).unwrap().status();
        status.pid.map(|p| p.to_string())
    };
    let pids = [pid(&plain, "plain"), pid(&tls, "mtls")];
    let request = request();
    for _ in 0..WARMUP_CALLS {
        for caller in &mut callers {
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
    report.calls(
        "Rust plugin, unix socket, plaintext",
        "Registry::call",
        &measured[0],
    );
    report.calls(
        "Rust plugin, unix socket, AutoMTLS",
        "Registry::call",
        &measured[1],
    );
    report.mtls(&measured[1], &measured[0]);
    plain.destroy().await;
    tls.destroy().await;
}
