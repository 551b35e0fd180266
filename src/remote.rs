//! Remote plugins: gRPC servers at an address, no process control. The
//! owner task (`owner`) keeps one connection, health-checks it, and
//! reconnects with its own backoff (at once when a call is waiting), gating
//! calls on the published snapshot meanwhile. When the server comes back,
//! calls succeed again without any action by the host.

mod owner;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio_util::task::AbortOnDropHandle;

use crate::{
    call::{CallSettings, admission::Admission},
    command,
    config::{PluginConfig, RemoteAddress, RemoteConfig},
    conn::Dest,
    events::Events,
    plugin::Started,
    snapshot::Publisher,
    status::PluginState,
    tls::remote::RemoteTls,
};

/// Starts the plugin's owner task; returns at once.
pub(crate) fn start(
    plugin: &PluginConfig,
    remote: &RemoteConfig,
    admission: Arc<Admission>,
    events: &Events,
) -> Started {
    start_at(plugin, remote, admission, events, dest(&remote.address))
}

/// [`start`], connecting to `dest` (an in-process one in tests).
fn start_at(
    plugin: &PluginConfig,
    remote: &RemoteConfig,
    admission: Arc<Admission>,
    events: &Events,
    dest: Dest,
) -> Started {
    let (mailbox, inbox) = command::channel();
    let (publisher, snapshot) = Publisher::new(
        &plugin.name,
        PluginState::Connecting { attempt: 0 },
        CallSettings::of(plugin),
        events,
    );
    let address: Arc<str> = uri(remote).into();
    publisher.update(|s| s.address = Some(address));
    if remote.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
        tracing::warn!(plugin = %plugin.name, "remote.tls.insecure-skip-verify is true: the plugin's certificate is not verified, so anyone on the network path can pose as the plugin");
    }
    let owner = owner::Owner {
        name: plugin.name.clone(),
        dest,
        tls: tls(remote),
        connect_timeout: remote.connect_timeout,
        keepalive: remote.keepalive,
        backoff: remote
            .backoff
            .to_backoff()
            .expect("Registry::from_config validated the backoff"),
        health: plugin.health.clone(),
        drain_timeout: plugin.drain_timeout,
        admission,
        inbox,
        publisher,
        retiring: tokio::task::JoinSet::new(),
    };
    Started {
        snapshot,
        mailbox,
        owner: AbortOnDropHandle::new(tokio::spawn(owner.run())),
    }
}

pub(crate) fn dest(address: &RemoteAddress) -> Dest {
    match address {
        RemoteAddress::Unix(path) => Dest::Unix(path.clone()),
        tcp => Dest::Tcp(tcp.to_string()),
    }
}

/// The plugin's TLS settings at run time, when it has any.
pub(crate) fn tls(remote: &RemoteConfig) -> Option<Arc<RemoteTls>> {
    remote
        .tls
        .as_ref()
        .map(|t| Arc::new(RemoteTls::new(t.clone(), &remote.address)))
}

/// The address as shown in the status: `https://host:port` with TLS.
pub(crate) fn uri(remote: &RemoteConfig) -> String {
    match (&remote.tls, &remote.address) {
        (Some(_), tcp @ RemoteAddress::Tcp { .. }) => format!("https://{tcp}"),
        (Some(_), unix) => format!("tls+{}", unix.to_uri()),
        (None, address) => address.to_uri(),
    }
}
