//! `PluginHandle::channel()` with a generated client against `Registry::call`: same plugin,
//! same host, same run, interleaved.

use std::{path::Path, sync::Arc};

use polaris_plugin::proto::polaris::plugin_client::PluginClient;

use super::{
    CONCURRENCY, Caller, Host, LATENCY_CALLS, Measured, REPEATS, Report, THROUGHPUT_CALLS,
    WARMUP_CALLS, companion_yaml, latency, median, request, throughput,
};

/// One host on the Rust example plugin; `proto.Plugin/Call` through `Registry::call` and
/// through the plugin's channel with tonic's generated `PluginClient`, latency then
/// throughput, alternating so drift hits both alike.
pub async fn channel_section(report: &mut Report, v2: &Path) {
    eprintln!("measuring calls: channel() against Registry::call...");
    let host = Host::start(&companion_yaml("rl", v2, "", 2, true)).await;
    let plugin = host.registry.get("rl").unwrap();
    let mut callers = [
        Caller::Registry(host.registry.clone(), Arc::from("rl")),
        Caller::Channel(PluginClient::new(plugin.channel())),
    ];
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
        for _ in 0..REPEATS {
            for (k, caller) in callers.iter().enumerate() {
                runs[k].push(throughput(caller, *c, THROUGHPUT_CALLS).await);
            }
        }
        for k in 0..2 {
            measured[k].throughput[i] = median(&mut runs[k]);
        }
    }
    report.calls("Rust plugin, unix socket", "Registry::call", &measured[0]);
    report.calls(
        "Rust plugin, unix socket",
        "channel() + PluginClient",
        &measured[1],
    );
    host.destroy().await;
}
