//! The host runtime with real plugin processes: Registry, calls, crashes,
//! restarts, remote reconnects, disable/enable, destroy.

use std::time::Duration;

use std::path::Path;

use polaris_plugin::{
    Error, PluginHandle, PluginState, Registry, codec,
    config::{Config, Delivery},
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType},
};

use crate::{
    remote_example::RemoteExample,
    support::{self, bin, eventually_async, pid_gone, wait_failed},
};

fn request(key: &str) -> RateLimitPluginRequest {
    RateLimitPluginRequest {
        r#type: RatelimitType::ApiRatelimit as i32,
        key: key.into(),
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// A native-form config with one companion `name` running the example
/// binary `binary` with `args`.
fn companion_yaml(name: &str, binary: &str, args: &[&str], extra: &str) -> String {
    support::companion_yaml(name, &bin(binary), args, extra)
}

#[tokio::test]
async fn polaris_form_companion_and_remote_by_name_and_typed() {
    let remote = RemoteExample::start("127.0.0.1:0", &[]);
    let yaml = format!(
        r#"
bootstrap: {{ logger: {{}} }}   # the host's own sections are ignored
plugin:
  history:
    name: HistoryLogger          # no option.mode: the host's own plugin, skipped
  ratelimit:
    name: remote-rate-limit
    option:
      name: rate-limit-server-v2
      mode: companion
      companion:
        path: {v2}
        max-procs: 1
        args: ["--burst", "1", "--rate", "0.001"]
  ratelimit-remote:
    name: remote-rate-limit-v3
    option:
      name: rate-limit-server-v3
      mode: remote
      remote:
        address: {addr}
"#,
        v2 = bin("rate-limit-server-v2").display(),
        addr = remote.addr
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    assert_eq!(
        registry.names(),
        ["rate-limit-server-v2", "rate-limit-server-v3"]
    );

    // By name, untyped.
    let reply = registry
        .call(
            "rate-limit-server-v2",
            codec::marshal_request(&request("/a")),
        )
        .await
        .unwrap();
    assert!(
        codec::unmarshal_response::<RateLimitPluginResponse>(&reply)
            .unwrap()
            .allow
    );
    // Typed, through the handle: the burst of 1 is spent, so the bucket denies.
    let v2 = registry.get("rate-limit-server-v2").unwrap();
    let verdict: RateLimitPluginResponse = v2.call_typed(&request("/a")).await.unwrap();
    assert!(!verdict.allow);

    let v3 = registry.get("rate-limit-server-v3").unwrap();
    let verdict: RateLimitPluginResponse = v3.call_typed(&request("/a")).await.unwrap();
    assert!(verdict.allow);

    let status = v2.status();
    assert_eq!(status.state, PluginState::Ready);
    assert!(status.pid.is_some());
    assert!(status.address.unwrap().starts_with("unix:"));
    assert_eq!(v3.status().state, PluginState::Ready);

    // An unknown name lists the known ones.
    let err = registry
        .call("nope", codec::marshal_request(&request("/")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPlugin { known, .. } if known.len() == 2),
        "{err}"
    );
    assert!(err.to_string().contains("rate-limit-server-v3"));

    let pid = status.pid.unwrap();
    registry.destroy().await;
    assert!(pid_gone(pid));
    assert!(matches!(
        v2.call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await,
        Err(Error::Destroyed { .. })
    ));
}

#[tokio::test]
async fn bad_config_is_an_error_naming_plugin_and_key() {
    let err = Registry::from_yaml_str("plugins:\n  - name: x\n    mode: sidecar\n")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{text}");
    assert!(text.contains("\"x\"") && text.contains("sidecar"), "{text}");
}

/// A registry from `yaml` whose every plugin has `delivery`.
fn with_delivery(yaml: &str, delivery: Delivery) -> Registry {
    let mut config = Config::from_yaml_str(yaml, Path::new("")).unwrap();
    for plugin in &mut config.plugins {
        plugin.call.delivery = delivery;
    }
    Registry::from_config(config).unwrap()
}

#[tokio::test]
async fn sigkill_then_call_right_after_succeeds_on_a_new_pid_at_least_once() {
    let registry = with_delivery(
        &companion_yaml("rl", "rate-limit-server-v2", &[], ""),
        Delivery::AtLeastOnce,
    );
    let plugin = registry.get("rl").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let old = plugin.status().pid.unwrap();
    kill9(old);
    let verdict: RateLimitPluginResponse = plugin.call_typed(&request("/k")).await.unwrap();
    assert!(verdict.allow);
    let status = plugin.status();
    assert_ne!(status.pid, Some(old));
    assert!(status.restarts >= 1);
    registry.destroy().await;
}

#[tokio::test]
async fn sigkill_then_call_right_after_is_sent_at_most_once() {
    let registry = Registry::from_yaml_str(&companion_yaml("rl", "rate-limit-server-v2", &[], ""))
        .await
        .unwrap();
    let plugin = registry.get("rl").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let old = plugin.status().pid.unwrap();
    kill9(old);
    // Either the host saw the death first (the call waits and succeeds on the
    // next process) or the call went out on the dead connection: then it may
    // have been processed, and is not sent again.
    match plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/k"))
        .await
    {
        Ok(verdict) => assert!(verdict.allow),
        Err(e) => assert!(matches!(e, Error::Transport { .. }), "{e}"),
    }
    let verdict: RateLimitPluginResponse = plugin.call_typed(&request("/k")).await.unwrap();
    assert!(verdict.allow);
    assert_ne!(plugin.status().pid, Some(old));
    registry.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_kills_under_steady_calls() {
    // Each run lives only milliseconds before the next kill: by default (a run
    // shorter than min-uptime is a quick failure) that is a crash loop and
    // backs off. This test is about recovery, so every run counts as stable.
    // Calls opt into at-least-once, so none may fail.
    let extra = "      restart:\n        min-uptime: 0s\n";
    let registry = with_delivery(
        &companion_yaml("rl", "rate-limit-server-v2", &[], extra),
        Delivery::AtLeastOnce,
    );
    let plugin = registry.get("rl").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();

    // Steady background calls, each recorded with when it started and ended.
    let stop = tokio_util::sync::CancellationToken::new();
    let background = {
        let plugin = plugin.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, vec![]);
            while !stop.is_cancelled() {
                let started = std::time::Instant::now();
                match plugin
                    .call_typed::<_, RateLimitPluginResponse>(&request("/bg"))
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push((started, std::time::Instant::now(), e.to_string())),
                }
            }
            (ok, failed)
        })
    };
    let mut kills = vec![];
    let mut watch = plugin.watch();
    for i in 0..50 {
        let status = plugin.status();
        let (pid, restarts) = (status.pid.unwrap(), status.restarts);
        kills.push(std::time::Instant::now());
        kill9(pid);
        // Observe the kill: the plugin leaves Ready, or (a watch channel keeps
        // only the latest value) it is already back with one more restart.
        tokio::time::timeout(
            Duration::from_secs(5),
            watch.wait_for(|s| *s != PluginState::Ready || plugin.status().restarts > restarts),
        )
        .await
        .unwrap_or_else(|_| panic!("kill {i} not observed"));
        // A call issued after the kill was observed succeeds.
        let verdict = plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/fg"))
            .await;
        assert!(verdict.is_ok(), "kill {i}: {verdict:?}");
        assert_ne!(plugin.status().pid, Some(pid));
    }
    stop.cancel();
    let (ok, failed) = background.await.unwrap();
    assert!(ok > 0);
    assert!(failed.is_empty(), "at-least-once calls failed: {failed:?}");
    drop(kills);
    assert!(plugin.status().restarts >= 50);
    registry.destroy().await;
}

#[tokio::test]
async fn crash_loop_ends_failed_with_last_stderr() {
    let extra = "      restart:\n        max-restarts: 3\n        window: 60s\n        backoff: { initial: 10ms, max: 40ms }\n";
    let registry = Registry::from_yaml_str(&companion_yaml(
        "crashy",
        "fixture-plugin",
        &["--exit-at-start", "7"],
        extra,
    ))
    .await
    .unwrap();
    let plugin = registry.get("crashy").unwrap();
    let state = wait_failed(&plugin).await;
    let PluginState::Failed { reason } = state else {
        unreachable!()
    };
    assert!(
        reason
            .to_string()
            .contains("fixture: exiting at start with code 7"),
        "{reason}"
    );
    let err = plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("exiting at start"), "{err}");
    registry.destroy().await;
}

#[tokio::test]
async fn crash_after_n_calls_is_restarted() {
    let registry = Registry::from_yaml_str(&companion_yaml(
        "c",
        "fixture-plugin",
        &["--crash-after", "3"],
        "",
    ))
    .await
    .unwrap();
    let plugin = registry.get("c").unwrap();
    let first = {
        plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
        plugin.status().pid.unwrap()
    };
    // Every third call a process answers crashes it mid-call. At most once:
    // that call fails as a transport failure carrying the crash, and is not
    // sent to the next process; the calls after it succeed.
    for i in 1..=7 {
        let reply = plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await;
        if i % 3 == 0 {
            let err = reply.unwrap_err();
            let Error::Transport { last_exit, .. } = &err else {
                panic!("call {i}: {err}");
            };
            assert_eq!(
                last_exit.as_ref(),
                Some(&polaris_plugin::Exit::Exited { code: 3 }),
                "{err}"
            );
        } else {
            assert!(reply.is_ok(), "call {i}: {reply:?}");
        }
    }
    assert!(plugin.status().restarts >= 2);
    assert_ne!(plugin.status().pid, Some(first));
    registry.destroy().await;
}

#[tokio::test]
async fn a_call_that_crashes_the_plugin_is_sent_again_only_at_least_once() {
    let registry = with_delivery(
        &companion_yaml("c", "fixture-plugin", &["--crash-after", "3"], ""),
        Delivery::AtLeastOnce,
    );
    let plugin = registry.get("c").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let first = plugin.status().pid.unwrap();
    for i in 1..=4 {
        let reply = plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await;
        assert!(reply.is_ok(), "call {i}: {reply:?}");
    }
    assert_ne!(plugin.status().pid, Some(first));
    registry.destroy().await;
}

#[tokio::test]
async fn bad_handshake_is_a_failed_start_with_a_clear_reason() {
    let extra = "      restart:\n        max-restarts: 1\n        window: 60s\n        backoff: { initial: 10ms, max: 20ms }\n";
    let registry = Registry::from_yaml_str(&companion_yaml(
        "bad",
        "fixture-plugin",
        &["--bad-handshake"],
        extra,
    ))
    .await
    .unwrap();
    let plugin = registry.get("bad").unwrap();
    let state = wait_failed(&plugin).await;
    assert!(
        state.to_string().contains("this is not a handshake"),
        "{state}"
    );
    registry.destroy().await;
}

#[tokio::test]
async fn remote_server_goes_away_and_comes_back() {
    let server = RemoteExample::start("127.0.0.1:0", &[]);
    let addr = server.addr;
    let yaml = format!(
        "plugins:\n  - name: r\n    mode: remote\n    call-timeout: 1s\n    remote:\n      address: {addr}\n      backoff: {{ initial: 20ms, max: 200ms }}\n"
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("r").unwrap();
    assert!(
        plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await
            .unwrap()
            .allow
    );

    drop(server); // SIGKILL, same port free again
    let err = plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/"))
        .await
        .unwrap_err();
    // The call either went out on the dead connection (it may have been
    // processed: a transport error, not retried) or found it down.
    assert!(
        matches!(&err, Error::Unavailable { .. } | Error::Transport { .. }),
        "{err}"
    );

    let _server = RemoteExample::start(&addr.to_string(), &[]);
    // Without any action by the host, calls succeed again.
    tokio::time::timeout(
        Duration::from_secs(10),
        plugin.watch().wait_for(|s| *s == PluginState::Ready),
    )
    .await
    .unwrap();
    assert!(
        plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await
            .unwrap()
            .allow
    );
    assert!(plugin.status().restarts >= 1);
    registry.destroy().await;
}

#[tokio::test]
async fn disable_enable_restart() {
    let registry = Registry::from_yaml_str(&companion_yaml("rl", "rate-limit-server-v2", &[], ""))
        .await
        .unwrap();
    let plugin = registry.get("rl").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let pid = plugin.status().pid.unwrap();

    plugin.disable().await.unwrap();
    assert_eq!(plugin.status().state, PluginState::Disabled);
    assert!(pid_gone(pid));
    let err = plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Disabled { .. }), "{err}");

    plugin.enable().await.unwrap();
    assert!(
        plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await
            .is_ok()
    );
    let pid2 = plugin.status().pid.unwrap();
    assert_ne!(pid2, pid);

    plugin.restart().await.unwrap();
    assert!(
        plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await
            .is_ok()
    );
    assert_ne!(plugin.status().pid, Some(pid2));
    registry.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_lets_a_call_the_plugin_has_finish_before_stopping_it() {
    // The fixture exits at once when asked to stop (`--no-drain-on-shutdown`),
    // so the call can only finish if the host drains before `Shutdown`.
    let dir = support::scratch_dir("drain");
    let arrived = dir.join("arrived");
    let registry = Registry::from_yaml_str(&companion_yaml(
        "slow",
        "fixture-plugin",
        &[
            "--slow-call",
            "500",
            "--no-drain-on-shutdown",
            "--arrived",
            arrived.to_str().unwrap(),
        ],
        "",
    ))
    .await
    .unwrap();
    let plugin = registry.get("slow").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();

    let call = tokio::spawn({
        let plugin = plugin.clone();
        async move {
            plugin
                .call_typed::<_, RateLimitPluginResponse>(&request("/slow"))
                .await
        }
    });
    // The plugin has the call (the host's in-flight count rises before it sends).
    eventually_async(
        Duration::from_secs(5),
        "the call to reach the plugin",
        || arrived.exists(),
    )
    .await;
    assert_eq!(plugin.status().in_flight, 1);
    registry.destroy().await;
    let reply = call.await.unwrap();
    assert!(reply.is_ok(), "the call the plugin had finished: {reply:?}");
    assert_eq!(plugin.status().state, PluginState::Destroyed);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn destroy_stops_the_plugin_through_shutdown_and_it_exits_0() {
    // The fixture dies by SIGTERM (`--die-on-sigterm`, as Go plugins do), so
    // exit code 0 means it ended through the Controller's `Shutdown`.
    let registry = Registry::from_yaml_str(&companion_yaml(
        "go-like",
        "fixture-plugin",
        &["--die-on-sigterm"],
        "",
    ))
    .await
    .unwrap();
    let plugin = registry.get("go-like").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let pid = plugin.status().pid.unwrap();
    registry.destroy().await;
    assert!(pid_gone(pid));
    let status = plugin.status();
    assert_eq!(status.state, PluginState::Destroyed);
    assert_eq!(
        status.last_exit,
        Some(polaris_plugin::Exit::Exited { code: 0 }),
        "{status:?}"
    );
}

#[tokio::test]
async fn dropping_the_registry_leaves_no_child() {
    let registry = Registry::from_yaml_str(&companion_yaml("rl", "rate-limit-server-v2", &[], ""))
        .await
        .unwrap();
    let plugin = registry.get("rl").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let pid = plugin.status().pid.unwrap();
    drop(plugin);
    drop(registry);
    eventually_async(Duration::from_secs(5), "the plugin process to go", || {
        pid_gone(pid)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_returns_once_every_reader_sees_it_enabled() {
    // F3: after enable() returned, calls failed `Disabled` and status() said
    // Disabled on a multi-threaded runtime.
    let registry = Registry::from_yaml_str(&companion_yaml("rl", "rate-limit-server-v2", &[], ""))
        .await
        .unwrap();
    let plugin = registry.get("rl").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    for i in 0..10 {
        plugin.disable().await.unwrap();
        assert_eq!(plugin.status().state, PluginState::Disabled);
        plugin.enable().await.unwrap();
        let state = plugin.status().state;
        assert_ne!(state, PluginState::Disabled, "round {i}");
        assert_ne!(plugin.watch().current(), PluginState::Disabled, "round {i}");
        plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
        let reply = plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await;
        assert!(reply.is_ok(), "round {i}: {reply:?}");
    }
    registry.destroy().await;
}

#[tokio::test]
async fn destroy_is_terminal_and_does_not_wait_for_calls_waiting_for_readiness() {
    // F8: calls merely waiting for readiness held destroy.
    let yaml = companion_yaml("never", "fixture-plugin", &["--no-handshake"], "")
        .replace("call-timeout: 10s", "call-timeout: 60s");
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("never").unwrap();
    let waiting = {
        let plugin = plugin.clone();
        tokio::spawn(async move {
            plugin
                .call_typed::<_, RateLimitPluginResponse>(&request("/"))
                .await
        })
    };
    // The call is admitted and waiting.
    eventually_async(Duration::from_secs(10), "the call to wait", || {
        plugin.status().in_flight == 1
    })
    .await;
    tokio::time::timeout(Duration::from_secs(20), plugin.destroy())
        .await
        .expect("destroy does not wait out the waiting call's timeout");
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Destroyed { .. }), "{err}");
    // Terminal: later commands are refused; status and watch agree.
    assert!(matches!(
        plugin.enable().await,
        Err(Error::Destroyed { .. })
    ));
    assert!(matches!(
        plugin.restart().await,
        Err(Error::Destroyed { .. })
    ));
    assert!(matches!(
        plugin.disable().await,
        Err(Error::Destroyed { .. })
    ));
    assert_eq!(plugin.status().state, PluginState::Destroyed);
    assert_eq!(plugin.watch().current(), PluginState::Destroyed);
    assert_eq!(plugin.status().pid, None);
}

#[tokio::test]
async fn a_remote_server_that_comes_back_serves_a_waiting_call_before_its_backoff_ends() {
    // F7: the host used a returning server only when its reconnect backoff
    // expired. Here the backoff after the second failure is 50 s, longer than
    // the call timeout: the waiting call makes the owner dial at once.
    let server = RemoteExample::start("127.0.0.1:0", &[]);
    let addr = server.addr;
    let yaml = format!(
        "plugins:\n  - name: r\n    mode: remote\n    call-timeout: 20s\n    remote:\n      address: {addr}\n      backoff: {{ initial: 50ms, factor: 1000, max: 50s, jitter: 0 }}\n"
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("r").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    drop(server);
    plugin.restart().await.unwrap(); // notice now, not at the next probe
    tokio::time::timeout(
        Duration::from_secs(10),
        plugin
            .watch()
            .wait_for(|s| matches!(s, PluginState::Unreachable { attempt, .. } if *attempt >= 2)),
    )
    .await
    .expect("two failed dials");
    let _server = RemoteExample::start(&addr.to_string(), &[]);
    let verdict = plugin
        .call_typed::<_, RateLimitPluginResponse>(&request("/"))
        .await
        .unwrap();
    assert!(verdict.allow);
    registry.destroy().await;
}

#[tokio::test]
async fn a_crash_looping_plugin_with_a_fallback_answers_every_call_with_it() {
    // call-timeout 60 s: a call that waited for the plugin would hang the test.
    let yaml = companion_yaml(
        "crashy",
        "fixture-plugin",
        &["--exit-at-start", "7"],
        "      restart:\n        backoff: { initial: 10ms, max: 100ms }\n",
    )
    .replace("call-timeout: 10s", "call-timeout: 60s")
    .replace(
        "    drain-timeout: 5s\n",
        "    drain-timeout: 5s\n    on-unavailable: fail-fast\n    fallback: { type: proto.RateLimitPluginResponse, json: { allow: true } }\n",
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("crashy").unwrap();
    for i in 0..100 {
        let reply = plugin
            .call_reply(codec::marshal_request(&request("/")))
            .await
            .unwrap();
        assert!(reply.is_fallback(), "call {i}: {reply:?}");
        let verdict: RateLimitPluginResponse =
            codec::unmarshal_response(&reply.into_response()).unwrap();
        assert!(verdict.allow);
    }
    let calls = plugin.status().calls;
    assert_eq!((calls.fallback, calls.ok), (100, 0), "{calls:?}");
    registry.destroy().await;
}

/// A unix socket this test owns and listens on, in a directory of its own.
fn foreign_socket(tag: &str) -> (std::os::unix::net::UnixListener, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "polaris-foreign-{tag}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sock");
    (std::os::unix::net::UnixListener::bind(&path).unwrap(), path)
}

#[tokio::test]
async fn a_socket_a_plugin_names_but_the_host_did_not_make_is_never_deleted() {
    // F1: when a plugin's run ended, the host unlinked whatever unix socket
    // the plugin had printed; a plugin naming another server's socket got it
    // deleted while that server ran on. Here the "other server" is a gRPC
    // server this test runs; the plugin advertises it, becomes ready through
    // it, and is killed twice.
    let (listener, path) = foreign_socket("f1");
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let extra = "      restart:\n        min-uptime: 0s\n";
    let yaml = companion_yaml(
        "liar",
        "fixture-plugin",
        &["--handshake-unix", path.to_str().unwrap()],
        extra,
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("liar").unwrap();
    for _ in 0..2 {
        plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
        let status = plugin.status();
        assert_eq!(
            status.address.as_deref(),
            Some(&*format!("unix:{}", path.display()))
        );
        kill9(status.pid.unwrap());
        // The run ended: the state left Ready, or it is back with a restart.
        tokio::time::timeout(
            Duration::from_secs(10),
            plugin.watch().wait_for(|s| {
                *s != PluginState::Ready || plugin.status().restarts > status.restarts
            }),
        )
        .await
        .unwrap();
    }
    registry.destroy().await;
    assert!(
        path.exists(),
        "the foreign socket {} was deleted",
        path.display()
    );
    assert!(!server.is_finished(), "the foreign server still serves");
    server.abort();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn start_timeout_bounds_only_the_handshake_line() {
    // F11: a plugin that prints its handshake and then never answers held its
    // start for the whole start-timeout; connecting and the first health
    // check have the health timeout.
    let (_listener, path) = foreign_socket("f11");
    let extra =
        "      start-timeout: 1h\n      restart:\n        max-restarts: 0\n        window: 60s\n";
    let yaml = companion_yaml(
        "mute",
        "fixture-plugin",
        &["--handshake-unix", path.to_str().unwrap()],
        extra,
    )
    .replace(
        "mode: companion\n",
        "mode: companion\n    health: { timeout: 200ms }\n",
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("mute").unwrap();
    // With the whole start bounded by start-timeout (1 h) this would not end
    // within wait_failed's bound.
    let state = wait_failed(&plugin).await;
    let PluginState::Failed { reason } = state else {
        unreachable!()
    };
    let exit = reason
        .last_exit
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(exit.contains("after its handshake"), "{reason}");
    registry.destroy().await;
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_ten_times_overload_excess_calls_are_refused_at_once() {
    // 4 slots and 4 queue places; 80 callers at once, each call held 3 s by
    // the plugin. The 72 that find no room fail at once with Overloaded,
    // before any admitted call has finished; the plugin never holds more
    // than the 4 slots' calls.
    let yaml = companion_yaml("busy", "fixture-plugin", &["--slow-call", "3000"], "")
        .replace("call-timeout: 10s", "call-timeout: 60s")
        .replace(
            "    drain-timeout: 5s\n",
            "    drain-timeout: 5s\n    max-concurrent-calls: 4\n    max-queued-calls: 4\n",
        );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("busy").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..80 {
        let plugin = plugin.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let result = plugin
                .call_typed::<_, RateLimitPluginResponse>(&request("/"))
                .await;
            let _ = done.send(result.map(|_| ()));
        });
    }
    drop(done_tx);
    let mut order = Vec::new();
    while let Some(result) = done_rx.recv().await {
        order.push(result);
    }
    let overloaded = order
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(Error::Overloaded {
                    limit: 4,
                    queued: 4,
                    ..
                })
            )
        })
        .count();
    let ok = order.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, overloaded), (8, 72), "{order:?}");
    // Refused at once: every refusal came before the first admitted call ended.
    let first_ok = order.iter().position(Result::is_ok).unwrap();
    assert_eq!(first_ok, 72, "{order:?}");
    let calls = plugin.status().calls;
    assert_eq!((calls.ok, calls.overloaded), (8, 72));
    registry.destroy().await;
}

#[tokio::test]
async fn from_config_validates_a_hand_built_config() {
    let yaml = companion_yaml("a", "rate-limit-server-v2", &[], "");
    let mut config = Config::from_yaml_str(&yaml, Path::new("")).unwrap();
    // Rules the YAML loader enforces, broken by hand: a duplicate name and a
    // call timeout past the cap (every call used to panic on it).
    config.plugins.push(config.plugins[0].clone());
    let err = Registry::from_config(config.clone()).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(err.to_string().contains("\"a\""), "{err}");
    config.plugins.pop();
    config.plugins[0].call_timeout = Duration::MAX;
    let err = Registry::from_config(config).unwrap_err();
    assert!(err.to_string().contains("call-timeout"), "{err}");
}

#[tokio::test]
async fn a_live_companion_whose_connection_ends_is_redialed_not_restarted() {
    // The plugin closes every connection after 200 ms (GOAWAY, as grpc-go's
    // MaxConnectionAge does). The host redials the same process: no call
    // fails, no restart, the connection generation moves on. Before, the
    // dead connection stayed until liveness killed a healthy process.
    let yaml = companion_yaml(
        "aging",
        "fixture-plugin",
        &["--max-connection-age", "200"],
        "",
    );
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("aging").unwrap();
    plugin.wait_ready(Duration::from_secs(10)).await.unwrap();
    let pid = plugin.status().pid;
    let first = plugin.status().generation;
    let mut calls = 0u32;
    tokio::time::timeout(Duration::from_secs(30), async {
        while plugin.status().generation < first + 3 {
            let reply = plugin
                .call_typed::<_, RateLimitPluginResponse>(&request("/"))
                .await;
            assert!(reply.is_ok(), "call {calls}: {reply:?}");
            calls += 1;
        }
    })
    .await
    .expect("three redials");
    let status = plugin.status();
    assert_eq!(status.pid, pid, "the same process: {status:?}");
    assert_eq!(status.restarts, 0, "{status:?}");
    registry.destroy().await;
}

/// A companion running `program args` that gives up after its first failed
/// start, with a `start-timeout` of 300 ms and a call timeout of 10 s.
async fn not_a_plugin(program: &str, args: &[&str]) -> (Registry, PluginHandle) {
    let extra = "      start-timeout: 300ms\n      restart:\n        max-restarts: 0\n        window: 60s\n";
    let yaml = support::companion_yaml("notaplugin", Path::new(program), args, extra);
    let registry = Registry::from_yaml_str(&yaml).await.unwrap();
    let plugin = registry.get("notaplugin").unwrap();
    (registry, plugin)
}

/// Issue 10: a binary that is not a plugin fails its start with what it
/// did, in the plugin's last error and in the error a waiting call gets.
#[tokio::test]
async fn a_binary_that_is_not_a_plugin_says_what_it_did() {
    let exited = "exited with code 0 before printing a handshake line; is this a plugin binary?";
    let cases: [(&str, &[&str], &str); 5] = [
        ("/bin/true", &[], exited),
        // The supervisor gives children /dev/null as stdin: cat ends at once.
        ("/bin/cat", &[], exited),
        (
            "/bin/sleep",
            &["100"],
            "printed nothing on stdout within the start timeout (300ms); is this a plugin binary?",
        ),
        (
            "/bin/sh",
            &["-c", "echo hello; exec sleep 100"],
            "printed \"hello\" on stdout, which is not a go-plugin handshake line \
             (expected CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK-TYPE|NETWORK-ADDR|PROTOCOL)",
        ),
        // Exits right after its line: the readiness hook still sees it.
        (
            "/bin/sh",
            &["-c", "echo hello"],
            "printed \"hello\" on stdout, which is not a go-plugin handshake line",
        ),
    ];
    for (program, args, says) in cases {
        let (registry, plugin) = not_a_plugin(program, args).await;
        // Sent while the first start is under way: it waits, and fails with
        // the reason once the start has failed.
        let err = plugin
            .call_typed::<_, RateLimitPluginResponse>(&request("/"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{program}: {err}");
        assert!(err.to_string().contains(says), "{program}: {err}");
        let status = plugin.status();
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(says)),
            "{program}: {status:?}"
        );
        registry.destroy().await;
    }
}
