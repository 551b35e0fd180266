//! The Rust host's row of the matrix, the same steps for every plugin
//! language: start, call, health, kill→restart, destroy.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use polaris_plugin::{
    Health, PluginHandle, PluginState, PluginStatus, Registry,
    handshake::PluginAddr,
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub use crate::support::companion_yaml;
use crate::support::{connect, pid_gone};

/// Test-only messages of `tests/interop/proto/interop.proto`, written by
/// hand (prost derive) so the crate's generated code stays the contract's.
pub mod probe {
    /// `interop.ProbeRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProbeRequest {}

    /// `interop.ProbeResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProbeResponse {
        #[prost(int32, tag = "1")]
        pub gomaxprocs: i32,
        #[prost(string, tag = "2")]
        pub cpus_allowed_list: String,
        #[prost(int64, tag = "3")]
        pub pid: i64,
        #[prost(int64, tag = "4")]
        pub calls: i64,
        #[prost(string, tag = "5")]
        pub name: String,
    }

    impl prost::Name for ProbeRequest {
        const NAME: &'static str = "ProbeRequest";
        const PACKAGE: &'static str = "interop";
        fn type_url() -> String {
            "type.googleapis.com/interop.ProbeRequest".into()
        }
    }

    impl prost::Name for ProbeResponse {
        const NAME: &'static str = "ProbeResponse";
        const PACKAGE: &'static str = "interop";
        fn type_url() -> String {
            "type.googleapis.com/interop.ProbeResponse".into()
        }
    }
}

pub fn request(key: &str) -> RateLimitPluginRequest {
    RateLimitPluginRequest {
        r#type: RatelimitType::ApiRatelimit as i32,
        key: key.into(),
    }
}

pub fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// A registry with the one companion of `yaml`, ready.
pub async fn start(yaml: &str, name: &str) -> (Registry, PluginHandle) {
    super::logs::logs(); // record the plugin's forwarded stderr from its start
    let registry = Registry::from_yaml_str(yaml).await.unwrap();
    let plugin = registry.get(name).unwrap();
    plugin
        .wait_ready(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{name} not ready: {e}; {:?}", plugin.status()));
    (registry, plugin)
}

pub async fn allow(plugin: &PluginHandle, key: &str) -> bool {
    plugin
        .call_typed::<_, RateLimitPluginResponse>(&request(key))
        .await
        .unwrap_or_else(|e| panic!("call {key}: {e}; {:?}", plugin.status()))
        .allow
}

/// grpc.health.v1 `Check("plugin")` straight to the plugin's address.
pub async fn check_health(status: &PluginStatus) {
    let address = status
        .address
        .as_deref()
        .expect("a running plugin's address");
    let addr = if let Some(path) = address.strip_prefix("unix:") {
        PluginAddr::Unix(path.into())
    } else {
        PluginAddr::Tcp(address.trim_start_matches("tcp://").parse().unwrap())
    };
    let reply = HealthClient::new(connect(&addr).await)
        .check(HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving, "{address}");
}

/// Kills the plugin with SIGKILL and waits for the host to bring it back;
/// returns the time from the kill until it is ready again.
pub async fn kill_and_wait_restart(plugin: &PluginHandle) -> Duration {
    let before = plugin.status();
    let pid = before.pid.unwrap();
    let mut watch = plugin.watch();
    let killed = Instant::now();
    kill9(pid);
    // The host noticed: the state left Ready or, when the restart was
    // quicker than this task could look (a watch keeps only the latest
    // state, so a loaded machine can miss the states in between), a restart
    // was counted.
    tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|s| *s != PluginState::Ready || plugin.status().restarts > before.restarts),
    )
    .await
    .expect("the kill is observed")
    .unwrap();
    plugin.wait_ready(Duration::from_secs(20)).await.unwrap();
    let took = killed.elapsed();
    let after = plugin.status();
    assert_ne!(after.pid, Some(pid));
    assert!(after.restarts > before.restarts, "{after:?}");
    // The killed run's unix socket (and the SDK's private directory) is removed.
    if let Some(socket) = before
        .address
        .as_deref()
        .and_then(|a| a.strip_prefix("unix:"))
    {
        let socket = Path::new(socket);
        assert!(!socket.exists(), "{} left behind", socket.display());
        // An SDK plugin's own directory inside the run directory goes too.
        let dir = socket.parent().unwrap();
        if dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("polaris-plugin-"))
        {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
    took
}

/// start, call, health, kill→restart (a call issued right after the kill
/// succeeds), destroy. Returns the status after destroy.
pub async fn start_call_health_kill_restart_destroy(yaml: &str, name: &str) -> PluginStatus {
    let started = Instant::now();
    let (registry, plugin) = start(yaml, name).await;
    eprintln!(
        "{name}: ready {:?} after Registry::from_yaml_str",
        started.elapsed()
    );

    // call
    assert!(allow(&plugin, "/a").await);
    let status = plugin.status();
    assert_eq!(status.state, PluginState::Ready);
    assert_eq!(status.restarts, 0);

    // health: the host's probe, and one of our own
    assert_eq!(status.health, Health::Healthy, "{status:?}");
    check_health(&status).await;

    // kill -> restart. A call right after the kill either finds the death
    // already seen (it waits and succeeds on the new process) or went out on
    // the dead connection: then it may have been processed and, at most once,
    // is not sent again. The next call succeeds on a new process.
    let pid = status.pid.unwrap();
    kill9(pid);
    match plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/after-kill"))
        .await
    {
        Ok(reply) => assert!(reply.allow),
        Err(e) => assert!(matches!(e, polaris_plugin::Error::Transport { .. }), "{e}"),
    }
    assert!(allow(&plugin, "/after-kill-2").await);
    let restarted = plugin.status();
    assert_ne!(restarted.pid, Some(pid));
    assert!(restarted.restarts >= 1, "{restarted:?}");
    assert!(pid_gone(pid));
    let took = kill_and_wait_restart(&plugin).await;
    eprintln!("{name}: SIGKILL -> ready again in {took:?}");
    check_health(&plugin.status()).await;
    assert!(allow(&plugin, "/b").await);

    // destroy
    let pid = plugin.status().pid.unwrap();
    let destroying = Instant::now();
    registry.destroy().await;
    eprintln!("{name}: destroyed in {:?}", destroying.elapsed());
    assert!(pid_gone(pid));
    let status = plugin.status();
    assert_eq!(status.state, PluginState::Destroyed);
    assert!(matches!(
        plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await,
        Err(polaris_plugin::Error::Destroyed { .. })
    ));
    status
}

/// The typed `api.RateLimiter` (examples/proto/rate_limiter.proto) through the plugin's
/// channel with the generated Rust client: the interop peers allow any key but `deny`.
pub async fn typed_allow_and_deny(plugin: &PluginHandle) {
    use rate_limit::typed::api::{RateLimitRequest, rate_limiter_client::RateLimiterClient};
    let mut client = RateLimiterClient::new(plugin.channel());
    for (key, allowed) in [("/users", true), ("deny", false)] {
        let request = RateLimitRequest {
            r#type: 1,
            key: key.into(),
        };
        let reply = client.allow(request).await.unwrap().into_inner();
        assert_eq!(reply.allow, allowed, "{key}");
    }
}

/// The plugin's reflection lists `proto.Plugin`, the typed `api.RateLimiter` and health,
/// and `api.RateLimiter/Allow` is called with JSON through it (`deny` is denied).
pub async fn reflection_lists_and_calls(
    plugin: &PluginHandle,
) -> polaris_plugin::reflection::Description {
    let described = plugin.describe().await.unwrap();
    let names = described.service_names();
    for service in ["proto.Plugin", "api.RateLimiter", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|s| s == service), "{service} in {names:?}");
    }
    let reply = plugin
        .call_json(
            &described,
            "api.RateLimiter/Allow",
            r#"{"type":"APIRatelimit","key":"deny"}"#,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply["allow"], false, "{reply}");
    described
}
