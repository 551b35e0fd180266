//! The AutoMTLS call path against plaintext, same plugin binary, same run, interleaved.

use std::{path::Path, sync::Arc};

use super::{Caller, Host, Report, companion_yaml, interleaved};

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
    let measured = interleaved(&mut callers, &pids).await;
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
