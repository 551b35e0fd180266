//! Remote fleets: throughput over 1, 2 and 4 endpoints (four `rate-limit-server-v3`
//! processes), and the cost of balancing: a fleet of one endpoint against the single-address
//! remote plugin on the same server, same run, interleaved.

use std::{sync::Arc, time::Duration};

use super::{
    CONCURRENCY, Caller, Host, LATENCY_CALLS, Measured, REPEATS, RemoteServer, Report,
    THROUGHPUT_CALLS, WARMUP_CALLS, latency, median, request, throughput,
};

/// A remote plugin `name` over `addresses` as a fleet (`None`: one address, no fleet).
fn yaml(name: &str, addresses: Option<&[&str]>, single: &str) -> String {
    let address = match addresses {
        Some(list) => format!("[{}]", list.join(", ")),
        None => single.to_owned(),
    };
    format!(
        "plugins:\n  - name: {name}\n    mode: remote\n    call-timeout: 10s\n    max-concurrent-calls: 128\n    remote:\n      address: {address}\n"
    )
}

/// Waits until every endpoint of `name` is in rotation.
async fn all_ready(host: &Host, name: &str) {
    let plugin = host.registry.get(name).unwrap();
    let mut watch = plugin.watch();
    let ready = async {
        while !plugin
            .status()
            .endpoints
            .iter()
            .all(|e| e.state == polaris_plugin::EndpointState::Ready)
        {
            watch.changed().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("every endpoint ready");
}

pub async fn fleet_section(report: &mut Report, v3: &std::path::Path) {
    eprintln!("measuring calls: remote fleets of 1, 2, 4 endpoints...");
    let servers: Vec<RemoteServer> = (0..4).map(|_| RemoteServer::start(v3)).collect();
    let addrs: Vec<&str> = servers.iter().map(|s| s.addr.as_str()).collect();
    let targets = [
        ("single", "remote plugin, one address (no fleet)", None),
        ("fleet1", "fleet, 1 endpoint", Some(&addrs[..1])),
        ("fleet2", "fleet, 2 endpoints", Some(&addrs[..2])),
        ("fleet4", "fleet, 4 endpoints", Some(&addrs[..4])),
    ];
    let mut hosts = Vec::new();
    for (name, _, list) in &targets {
        let host = Host::start(&yaml(name, *list, addrs[0])).await;
        all_ready(&host, name).await;
        hosts.push(host);
    }
    let mut callers: Vec<Caller> = hosts
        .iter()
        .zip(&targets)
        .map(|(h, (name, ..))| Caller::Registry(h.registry.clone(), Arc::from(*name)))
        .collect();
    let request = request();
    for _ in 0..WARMUP_CALLS {
        for caller in &mut callers {
            caller.call(&request).await;
        }
    }
    let mut measured = vec![Measured::default(); targets.len()];
    for (k, caller) in callers.iter_mut().enumerate() {
        measured[k].latency = latency(caller, LATENCY_CALLS).await;
    }
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let mut runs = vec![vec![]; targets.len()];
        for _ in 0..REPEATS {
            for (k, caller) in callers.iter().enumerate() {
                runs[k].push(throughput(caller, *c, THROUGHPUT_CALLS).await);
            }
        }
        for (k, r) in runs.iter_mut().enumerate() {
            measured[k].throughput[i] = median(r);
        }
    }
    for (k, (name, label, _)) in targets.iter().enumerate() {
        let spread: Vec<String> = hosts[k]
            .registry
            .get(name)
            .unwrap()
            .status()
            .endpoints
            .iter()
            .map(|e| e.calls.to_string())
            .collect();
        report.fleet(label, &measured[k], &spread.join(" / "));
    }
    report.fleet_cost(&measured[1], &measured[0]);
    for host in &hosts {
        host.destroy().await;
    }
}
