//! Remote plugins: gRPC servers at an address, no process control. The
//! owner task (`owner`) keeps one connection, health-checks it, and
//! reconnects with its own backoff (at once when a call is waiting), gating
//! calls on the published snapshot meanwhile. When the server comes back,
//! calls succeed again without any action by the host.
//!
//! A fleet (`remote.address` as a list, or `dns:///name:port`) has its own owner
//! (`fleet`): one task per endpoint (`endpoint`), the resolver (`resolve`), outlier
//! ejection (`eject`) and power-of-two-choices balancing (`balance`) over the endpoints in
//! rotation it publishes (`view`). `docs/scale-out.md` explains the model.

mod balance;
mod eject;
mod endpoint;
mod fleet;
mod owner;
mod resolve;
#[cfg(test)]
mod tests;
mod view;

pub(crate) use view::FleetView;

use std::sync::Arc;

use tokio_util::task::AbortOnDropHandle;

use crate::{
    call::{CallSettings, admission::Admission},
    command,
    config::{Endpoints, FleetConfig, PluginConfig, RemoteAddress, RemoteConfig},
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
    match &remote.fleet {
        Some(fleet) => start_fleet(
            plugin,
            remote,
            admission,
            events,
            resolve::of(&fleet.endpoints),
        ),
        None => start_at(plugin, remote, admission, events, dest(&remote.address)),
    }
}

/// [`start`] for a fleet whose endpoints `resolver` gives (a stub in tests).
pub(super) fn start_fleet(
    plugin: &PluginConfig,
    remote: &RemoteConfig,
    admission: Arc<Admission>,
    events: &Events,
    resolver: Box<dyn resolve::Resolve>,
) -> Started {
    let (mailbox, inbox) = command::channel();
    let (publisher, snapshot) = publisher(plugin, remote, events);
    let fleet_config = remote
        .fleet
        .clone()
        .unwrap_or_else(|| FleetConfig::new(Endpoints::List(vec![remote.address.clone()])));
    let owner = fleet::Fleet {
        name: plugin.name.clone(),
        settings: endpoint_settings(plugin, remote),
        ejection: fleet_config.ejection,
        resolve_interval: fleet_config.resolve_interval,
        resolver,
        admission,
        inbox,
        publisher,
    };
    Started {
        snapshot,
        mailbox,
        owner: AbortOnDropHandle::new(tokio::spawn(owner.run())),
    }
}

/// A remote plugin's publisher, connecting, with its address; warns about a TLS setting
/// that verifies nothing.
fn publisher(
    plugin: &PluginConfig,
    remote: &RemoteConfig,
    events: &Events,
) -> (
    Publisher,
    tokio::sync::watch::Receiver<crate::snapshot::Snapshot>,
) {
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
    (publisher, snapshot)
}

/// Orders waiting for their effect to be published.
type Acks = Vec<Ack>;

/// The effect is published: tells the orders waiting for it.
fn resolve_acks(acks: &mut Acks) {
    for done in acks.drain(..) {
        let _ = done.send(Ok(()));
    }
}

/// Destroyed: orders that arrive from now on find the owner gone, and those already
/// waiting are refused.
fn refuse_later_orders(inbox: &mut command::Inbox) {
    inbox.orders.close();
    while let Ok(command::Order { done, .. }) = inbox.orders.try_recv() {
        let _ = done.send(Err(command::GONE));
    }
}

/// What a disabled owner is asked to do next.
enum WhileDisabled {
    /// Enable: ack once the new phase is published.
    Enable(Ack),
    /// New settings, applied now and used from the enable on; ack at once.
    Upgrade(Option<Box<PluginConfig>>, Ack),
    Destroy(Ack),
    /// Every handle is gone.
    End,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), command::Refused>>;

/// Waits, disabled, for an order that changes something: `disable` and `restart` are
/// acknowledged as they are (nothing runs), nudges are dropped.
async fn while_disabled(inbox: &mut command::Inbox) -> WhileDisabled {
    use command::{Command, Order};
    loop {
        tokio::select! {
            order = inbox.orders.recv() => match order {
                Some(Order { command: Command::Enable, done }) => return WhileDisabled::Enable(done),
                Some(Order { command: Command::Disable | Command::Restart, done }) => {
                    let _ = done.send(Ok(()));
                }
                Some(Order { command: Command::Upgrade(config), done }) => {
                    return WhileDisabled::Upgrade(config, done);
                }
                Some(Order { command: Command::Destroy, done }) => return WhileDisabled::Destroy(done),
                None => return WhileDisabled::End,
            },
            Some(_) = inbox.nudges.recv() => {}
        }
    }
}

/// How a remote plugin's connections are opened: keepalive and how many.
pub(crate) fn conn_options(remote: &RemoteConfig) -> crate::conn::Options {
    crate::conn::Options {
        keepalive: remote.keepalive,
        lanes: remote.connections,
    }
}

/// How a remote plugin's connections are made and checked (each endpoint's, in a fleet).
fn endpoint_settings(plugin: &PluginConfig, remote: &RemoteConfig) -> endpoint::Settings {
    endpoint::Settings {
        tls: tls(remote),
        connect_timeout: remote.connect_timeout,
        conn: conn_options(remote),
        backoff: remote
            .backoff
            .to_backoff()
            .expect("Registry::from_config validated the backoff"),
        health: plugin.health.clone(),
        drain_timeout: plugin.drain_timeout,
    }
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
    let (publisher, snapshot) = publisher(plugin, remote, events);
    let s = endpoint_settings(plugin, remote);
    let owner = owner::Owner {
        name: plugin.name.clone(),
        dest,
        tls: s.tls,
        connect_timeout: s.connect_timeout,
        conn: s.conn,
        backoff: s.backoff,
        health: s.health,
        drain_timeout: s.drain_timeout,
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

/// The address as shown in the status: `https://host:port` with TLS; a fleet's list or
/// `dns:///name:port`.
pub(crate) fn uri(remote: &RemoteConfig) -> String {
    if let Some(fleet) = &remote.fleet {
        return match &remote.tls {
            Some(_) => format!("tls {}", fleet.endpoints),
            None => fleet.endpoints.to_string(),
        };
    }
    match (&remote.tls, &remote.address) {
        (Some(_), tcp @ RemoteAddress::Tcp { .. }) => format!("https://{tcp}"),
        (Some(_), unix) => format!("tls+{}", unix.to_uri()),
        (None, address) => address.to_uri(),
    }
}
