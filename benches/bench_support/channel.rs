//! `PluginHandle::channel()` with a generated client against `Registry::call`: same plugin,
//! same host, same run, interleaved.

use std::{path::Path, sync::Arc};

use polaris_plugin::proto::polaris::plugin_client::PluginClient;

use super::{Caller, Host, Report, companion_yaml, interleaved};

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
    let pid = plugin.status().pid.map(|p| p.to_string());
    let measured = interleaved(&mut callers, &[pid.clone(), pid]).await;
    report.calls("Rust plugin, unix socket", "Registry::call", &measured[0]);
    report.calls(
        "Rust plugin, unix socket",
        "channel() + PluginClient",
        &measured[1],
    );
    host.destroy().await;
}
