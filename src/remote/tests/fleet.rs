//! The fleet owner on paused time, against in-process servers and a stub resolver.

use std::{
    num::NonZeroUsize,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use parking_lot::Mutex;

use super::{Address, call};
use crate::{
    PluginHandle,
    call::admission::Admission,
    config::{
        BackoffConfig, EjectionConfig, Endpoints, FleetConfig, PluginConfig, PluginKind,
        RemoteAddress, RemoteConfig,
    },
    conn::Dest,
    remote::{
        resolve::{Resolve, Resolving},
        start_fleet,
    },
    status::{EndpointState, EndpointStatus, PluginStatus},
};

/// A resolver whose answer the test sets.
#[derive(Clone, Default)]
struct Stub(Arc<Mutex<Vec<Dest>>>);

impl Resolve for Stub {
    fn resolve(&self) -> Resolving {
        Box::pin(std::future::ready(Ok(self.0.lock().clone())))
    }
}

/// Addresses whose connector is made once, so that the stub's answers compare equal.
struct Fixed {
    address: Address,
    dest: Dest,
}

fn addresses(n: usize) -> Vec<Fixed> {
    (0..n)
        .map(|_| {
            let address = Address::default();
            let dest = address.connector();
            Fixed { address, dest }
        })
        .collect()
}

fn stub_of(stub: &Stub, set: &[&Fixed]) {
    *stub.0.lock() = set.iter().map(|f| f.dest.clone()).collect();
}

const BACKOFF: BackoffConfig = BackoffConfig {
    initial: Duration::from_millis(50),
    factor: 2.0,
    max: Duration::from_millis(400),
    jitter: 0.0,
};

fn fleet(stub: &Stub, ejection: EjectionConfig) -> PluginHandle {
    fleet_with_events(stub, ejection, &Default::default())
}

fn fleet_with_events(
    stub: &Stub,
    ejection: EjectionConfig,
    events: &crate::events::Events,
) -> PluginHandle {
    let mut remote = RemoteConfig::new(RemoteAddress::Tcp {
        host: "memory".into(),
        port: 1,
    });
    remote.backoff = BACKOFF;
    let mut fleet = FleetConfig::new(Endpoints::Dns {
        host: "memory".into(),
        port: 1,
    });
    fleet.resolve_interval = Duration::from_secs(1);
    fleet.ejection = ejection;
    remote.fleet = Some(fleet);
    let mut config = PluginConfig::new("f", PluginKind::Remote(remote.clone()));
    config.call_timeout = Duration::from_secs(5);
    config.health.interval = Duration::from_millis(200);
    config.call.max_concurrent = NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN);
    let admission = Arc::new(Admission::new(64, 64));
    let started = start_fleet(
        &config,
        &remote,
        admission.clone(),
        events,
        Box::new(stub.clone()),
    );
    PluginHandle::new(&config, admission, started)
}

/// Waits (paused time advances meanwhile) until the status satisfies `f`, at most ten
/// minutes of paused time.
async fn until(plugin: &PluginHandle, f: impl Fn(&PluginStatus) -> bool) -> PluginStatus {
    let mut watch = plugin.watch();
    let wait = async {
        loop {
            let status = plugin.status();
            if f(&status) {
                return status;
            }
            watch.changed().await.expect("owner alive");
        }
    };
    match tokio::time::timeout(Duration::from_secs(600), wait).await {
        Ok(status) => status,
        Err(_) => panic!(
            "the status never got there: {:#?}",
            plugin.status().endpoints
        ),
    }
}

fn ready(s: &PluginStatus) -> usize {
    s.endpoints
        .iter()
        .filter(|e| e.state == EndpointState::Ready)
        .count()
}

fn states(s: &PluginStatus) -> Vec<&'static str> {
    s.endpoints.iter().map(|e| e.state.name()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_resolver_adds_and_removes_endpoints_without_dropping_calls() {
    let a = addresses(3);
    let plugins: Vec<_> = a.iter().map(|f| f.address.up()).collect();
    let stub = Stub::default();
    stub_of(&stub, &[&a[0], &a[1]]);
    let plugin = fleet(&stub, EjectionConfig::DEFAULT);
    until(&plugin, |s| ready(s) == 2).await;

    // Calls go on, paced, while the endpoint set changes twice.
    let caller = {
        let plugin = plugin.clone();
        tokio::spawn(async move {
            let mut done = 0u32;
            loop {
                call(&plugin)
                    .await
                    .expect("no call fails while endpoints change");
                done += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
                if done == 2000 {
                    return done;
                }
            }
        })
    };
    stub_of(&stub, &[&a[0], &a[1], &a[2]]);
    until(&plugin, |s| ready(s) == 3).await;
    stub_of(&stub, &[&a[2]]);
    let s = until(&plugin, |s| s.endpoints.len() == 1).await;
    assert!(s.endpoints[0].calls == 0 || s.endpoints[0].state == EndpointState::Ready);
    let before = plugins[2].0.calls.load(Ordering::SeqCst);
    assert_eq!(caller.await.unwrap(), 2000);
    // Every call after the removal went to the one endpoint left.
    let total: u64 = plugins
        .iter()
        .map(|p| p.0.calls.load(Ordering::SeqCst))
        .sum();
    assert_eq!(total, 2000, "each call delivered once");
    assert!(plugins[2].0.calls.load(Ordering::SeqCst) > before);
    assert!(plugins[0].0.calls.load(Ordering::SeqCst) > 0);
}

#[tokio::test(start_paused = true)]
async fn a_lost_endpoint_leaves_rotation_and_calls_go_to_the_others() {
    let a = addresses(2);
    let plugins: Vec<_> = a.iter().map(|f| f.address.up()).collect();
    let stub = Stub::default();
    stub_of(&stub, &[&a[0], &a[1]]);
    let plugin = fleet(&stub, EjectionConfig::DEFAULT);
    until(&plugin, |s| ready(s) == 2).await;
    a[0].address.down();
    // Until the owner notices, a call may still pick the dead connection: a request that
    // came back unsent goes to the other endpoint; one that may have been written fails
    // (at most once), as a transport error.
    for _ in 0..50 {
        match call(&plugin).await {
            Ok(_) | Err(crate::Error::Transport { .. }) => {}
            Err(e) => panic!("only transport failures before the loss is noticed: {e}"),
        }
    }
    until(&plugin, |s| ready(s) == 1).await;
    let before = plugins[1].0.calls.load(Ordering::SeqCst);
    for _ in 0..50 {
        call(&plugin).await.expect("the live endpoint answers");
    }
    assert_eq!(plugins[1].0.calls.load(Ordering::SeqCst), before + 50);
    // Back up: in rotation again.
    a[0].address.up();
    until(&plugin, |s| ready(s) == 2).await;
}

#[tokio::test(start_paused = true)]
async fn failing_endpoints_are_ejected_for_growing_intervals_within_the_share() {
    let a = addresses(4);
    for f in &a[..2] {
        f.address.up();
    }
    let stub = Stub::default();
    stub_of(&stub, &[&a[0], &a[1], &a[2], &a[3]]);
    let ejection = EjectionConfig {
        consecutive_failures: 2,
        base_time: Duration::from_secs(10),
        max_time: Duration::from_secs(100),
        max_percent: 25,
    };
    let events = crate::events::Events::default();
    let plugin = fleet_with_events(&stub, ejection, &events);
    // Endpoints 2 and 3 never answer: at most one of four (25 %) is ejected, the other
    // stays unreachable.
    let s = until(&plugin, |s| {
        ready(s) == 2 && s.endpoints.iter().filter(|e| e.ejections > 0).count() == 1
    })
    .await;
    let ejected: Vec<&EndpointStatus> = s
        .endpoints
        .iter()
        .filter(|e| matches!(e.state, EndpointState::Ejected { .. }))
        .collect();
    assert_eq!(ejected.len(), 1, "{:?}", states(&s));
    let first = ejected[0].address.clone();
    let EndpointState::Ejected { until: first_until } = ejected[0].state else {
        unreachable!()
    };
    // Its ejection runs out, it fails again: ejected again, for longer (20 s).
    let s = until(&plugin, |s| {
        s.endpoints
            .iter()
            .any(|e| e.ejections == 2 && e.address == first)
            || s.endpoints.iter().filter(|e| e.ejections > 0).count() == 2
    })
    .await;
    let again = s
        .endpoints
        .iter()
        .find(|e| matches!(e.state, EndpointState::Ejected { .. }))
        .expect("one ejected");
    let EndpointState::Ejected {
        until: second_until,
    } = again.state
    else {
        unreachable!()
    };
    assert!(second_until > first_until);
    assert!(
        s.endpoints
            .iter()
            .filter(|e| matches!(e.state, EndpointState::Ejected { .. }))
            .count()
            <= 1
    );
    for _ in 0..20 {
        call(&plugin).await.expect("the healthy endpoints answer");
    }
    // Each ejection and each return is an event, naming the endpoint; an ejection says
    // until when.
    let kinds = |kind| {
        events
            .recent()
            .into_iter()
            .filter(move |e| e.kind == kind)
            .collect::<Vec<_>>()
    };
    let ejections = kinds(crate::events::EventKind::EndpointEjected);
    assert!(ejections.len() >= 2, "{ejections:?}");
    assert!(ejections.iter().all(|e| e.until.is_some()));
    assert!(
        ejections[0].reason.as_deref().unwrap().contains(&*first),
        "{ejections:?}"
    );
    assert!(!kinds(crate::events::EventKind::EndpointReturned).is_empty());
}

#[tokio::test(start_paused = true)]
async fn disable_enable_restart_and_destroy_a_fleet() {
    let a = addresses(2);
    for f in &a {
        f.address.up();
    }
    let stub = Stub::default();
    stub_of(&stub, &[&a[0], &a[1]]);
    let plugin = fleet(&stub, EjectionConfig::DEFAULT);
    until(&plugin, |s| ready(s) == 2).await;
    plugin.disable().await.unwrap();
    let s = plugin.status();
    assert_eq!(s.state, crate::PluginState::Disabled);
    assert!(s.endpoints.is_empty(), "no endpoints while disabled");
    assert!(matches!(
        call(&plugin).await,
        Err(crate::Error::Disabled { .. })
    ));
    plugin.enable().await.unwrap();
    until(&plugin, |s| ready(s) == 2).await;
    call(&plugin).await.unwrap();
    let generation = plugin.status().generation;
    plugin.restart().await.unwrap();
    let s = until(&plugin, |s| ready(s) == 2).await;
    assert!(
        s.endpoints
            .iter()
            .all(|e| e.generation.is_some_and(|g| g > generation)),
        "new connections after a restart"
    );
    plugin.destroy().await;
    assert_eq!(plugin.status().state, crate::PluginState::Destroyed);
    assert!(matches!(
        plugin.enable().await,
        Err(crate::Error::Destroyed { .. })
    ));
    assert!(matches!(
        call(&plugin).await,
        Err(crate::Error::Destroyed { .. })
    ));
}
