//! The remote owner on paused time, against in-process servers.

mod fleet;

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;

use super::start_at;
use crate::{
    Error, PluginHandle,
    call::{
        admission::Admission,
        tests::{Server, TestPlugin, accept},
    },
    config::{BackoffConfig, PluginConfig, PluginKind, RemoteAddress, RemoteConfig},
    conn::{Dest, testing::Connector},
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse},
    status::PluginState,
};

/// An in-process "address": up (a plugin serves every connection) or down
/// (connections are refused); counts dials and keeps the servers alive.
#[derive(Clone, Default)]
pub(super) struct Address {
    up: Arc<Mutex<Option<TestPlugin>>>,
    dials: Arc<AtomicU32>,
    servers: Arc<Mutex<Vec<Server>>>,
}

impl Address {
    pub(super) fn connector(&self) -> Dest {
        let this = self.clone();
        Dest::Memory(Connector(Arc::new(move || {
            this.dials.fetch_add(1, Ordering::SeqCst);
            let Some(plugin) = this.up.lock().clone() else {
                return Err(std::io::ErrorKind::ConnectionRefused.into());
            };
            let (client, server) = tokio::io::duplex(64 * 1024);
            this.servers.lock().push(accept(plugin, server));
            Ok(client)
        })))
    }

    pub(super) fn up(&self) -> TestPlugin {
        let plugin = TestPlugin(Arc::default());
        *self.up.lock() = Some(plugin.clone());
        plugin
    }

    /// Down: refuse new connections and kill the live ones.
    pub(super) fn down(&self) {
        *self.up.lock() = None;
        self.servers.lock().clear();
    }

    pub(super) fn dials(&self) -> u32 {
        self.dials.load(Ordering::SeqCst)
    }
}

fn plugin(address: &Address, backoff: BackoffConfig, call_timeout: Duration) -> PluginHandle {
    plugin_with(address, backoff, call_timeout, |_| {})
}

fn plugin_with(
    address: &Address,
    backoff: BackoffConfig,
    call_timeout: Duration,
    adjust: impl FnOnce(&mut RemoteConfig),
) -> PluginHandle {
    let mut remote = RemoteConfig::new(RemoteAddress::Tcp {
        host: "memory".into(),
        port: 1,
    });
    remote.backoff = backoff;
    adjust(&mut remote);
    let mut config = PluginConfig::new("r", PluginKind::Remote(remote.clone()));
    config.call_timeout = call_timeout;
    config.call.max_concurrent = NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN);
    let admission = Arc::new(Admission::new(64, 64));
    let started = start_at(
        &config,
        &remote,
        admission.clone(),
        &Default::default(),
        address.connector(),
    );
    PluginHandle::new(&config, admission, started)
}

pub(super) async fn call(plugin: &PluginHandle) -> Result<RateLimitPluginResponse, Error> {
    plugin
        .call_typed::<_, RateLimitPluginResponse>(&RateLimitPluginRequest::default())
        .await
}

/// 50 ms, then 50 s: after two failed dials the owner would wait 50 s.
const SLOW: BackoffConfig = BackoffConfig {
    initial: Duration::from_millis(50),
    factor: 1000.0,
    max: Duration::from_secs(50),
    jitter: 0.0,
};

async fn unreachable_twice(plugin: &PluginHandle) {
    plugin
        .watch()
        .wait_for(|s| matches!(s, PluginState::Unreachable { attempt, .. } if *attempt >= 2))
        .await
        .expect("owner alive");
}

/// `remote.connections` is how many connections the plugin is dialled with; by default one
/// per worker of the runtime (one on this current-thread test runtime).
#[tokio::test]
async fn remote_connections_sets_how_many_connections_are_dialled() {
    for (connections, dials) in [(None, 1), (NonZeroUsize::new(3), 3)] {
        let address = Address::default();
        address.up();
        let plugin = plugin_with(&address, SLOW, Duration::from_secs(10), |r| {
            r.connections = connections;
        });
        assert!(call(&plugin).await.unwrap().allow);
        assert_eq!(address.dials(), dials, "connections: {connections:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_makes_the_owner_dial_now_not_when_its_backoff_ends() {
    let address = Address::default();
    let plugin = plugin(&address, SLOW, Duration::from_secs(10));
    unreachable_twice(&plugin).await;
    address.up();
    // The next dial is 50 s away, the call's deadline 10 s: only a dial
    // made for the waiting call can answer it.
    assert!(call(&plugin).await.unwrap().allow);
}

#[tokio::test(start_paused = true)]
async fn waiting_calls_do_not_make_the_owner_dial_more_than_once_per_initial_delay() {
    let address = Address::default();
    let plugin = plugin(&address, SLOW, Duration::from_secs(1));
    unreachable_twice(&plugin).await;
    let before = address.dials();
    let started = Instant::now();
    // Calls keep waiting for a whole second against a server that stays down.
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let plugin = plugin.clone();
            tokio::spawn(async move { call(&plugin).await })
        })
        .collect();
    for c in calls {
        assert!(matches!(c.await.unwrap(), Err(Error::Unavailable { .. })));
    }
    let elapsed = started.elapsed();
    let dials = address.dials() - before;
    // At most one dial per 50 ms of waiting, plus the first.
    let allowed = (elapsed.as_millis() / 50) as u32 + 1;
    assert!(
        dials >= 1 && dials <= allowed,
        "{dials} dials in {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_suspected_connection_is_checked_at_once_and_redialed() {
    let address = Address::default();
    let first = address.up();
    // Probes every hour: only suspicion can make the owner notice.
    let plugin = {
        let address = address.clone();
        let mut remote = RemoteConfig::new(RemoteAddress::Tcp {
            host: "memory".into(),
            port: 1,
        });
        remote.backoff = SLOW;
        let mut config = PluginConfig::new("r", PluginKind::Remote(remote.clone()));
        config.health.interval = Duration::from_secs(3600);
        let admission = Arc::new(Admission::new(64, 64));
        let started = start_at(
            &config,
            &remote,
            admission.clone(),
            &Default::default(),
            address.connector(),
        );
        PluginHandle::new(&config, admission, started)
    };
    assert!(call(&plugin).await.unwrap().allow);
    let generation = plugin.status().generation;
    // The server restarts: the old connection dies, a new one is accepted.
    address.down();
    let second = address.up();
    // The call on the dead connection fails (it may have been sent) and
    // tells the owner, which redials at once.
    let _ = call(&plugin).await;
    plugin
        .watch()
        .wait_for(|s| *s == PluginState::Ready)
        .await
        .unwrap();
    assert!(call(&plugin).await.unwrap().allow);
    assert!(plugin.status().generation > generation);
    assert_eq!(first.0.calls.load(Ordering::SeqCst), 1);
    assert!(second.0.calls.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(start_paused = true)]
async fn disable_closes_enable_reconnects_destroy_is_terminal() {
    let address = Address::default();
    address.up();
    let plugin = plugin(&address, SLOW, Duration::from_secs(10));
    assert!(call(&plugin).await.unwrap().allow);
    plugin.disable().await.unwrap();
    assert_eq!(plugin.status().state, PluginState::Disabled);
    assert!(matches!(call(&plugin).await, Err(Error::Disabled { .. })));
    let dials = address.dials();
    plugin.enable().await.unwrap();
    assert_ne!(plugin.status().state, PluginState::Disabled);
    assert!(call(&plugin).await.unwrap().allow);
    assert_eq!(address.dials(), dials + 1);
    plugin.destroy().await;
    assert_eq!(plugin.status().state, PluginState::Destroyed);
    assert_eq!(plugin.watch().current(), PluginState::Destroyed);
    assert!(matches!(
        plugin.enable().await,
        Err(Error::Destroyed { .. })
    ));
    assert!(matches!(call(&plugin).await, Err(Error::Destroyed { .. })));
}
