//! The channel against in-process plugins (the call path's test harness): any generated
//! client over it, with the call contract's waiting, bounds, deadlines and fallback.

use std::{sync::atomic::Ordering, time::Duration};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::*;
use crate::{
    call::tests::{TestPlugin, fallback, harness, policy, serve},
    proto::{
        go_plugin::{Empty, grpc_controller_client::GrpcControllerClient},
        polaris::{RateLimitPluginRequest, plugin_client::PluginClient},
    },
    status::PluginState,
};

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn a_generated_client_calls_another_service_through_the_channel() {
    let plugin = TestPlugin(Default::default());
    let (conn, _server) = serve(plugin).await;
    let (h, _inbox) = harness(Duration::from_secs(30), policy());
    h.ready(&conn, 1);
    let mut client = HealthClient::new(PluginChannel::new(h.shared.clone()));
    let reply = client.check(check()).await.unwrap().into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);
    let counts = h.shared.counters.get();
    assert_eq!((counts.ok, counts.error), (1, 0));
    assert_eq!(h.shared.admission.in_flight(), 0, "the slot came back");
    // A method the plugin does not serve: the plugin's own answer, counted as an error.
    let status = GrpcControllerClient::new(PluginChannel::new(h.shared.clone()))
        .shutdown(Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(std::error::Error::source(&status).is_none(), "{status:?}");
    assert_eq!(h.shared.counters.get().error, 1);
}

#[tokio::test]
async fn a_channel_call_waits_for_the_plugin_to_become_ready() {
    let plugin = TestPlugin(Default::default());
    let (conn, _server) = serve(plugin).await;
    let (h, _inbox) = harness(Duration::from_secs(30), policy());
    let mut client = HealthClient::new(PluginChannel::new(h.shared.clone()));
    let call = client.check(check());
    tokio::pin!(call);
    tokio::select! {
        r = &mut call => panic!("answered while starting: {r:?}"),
        () = tokio::task::yield_now() => {}
    }
    h.ready(&conn, 1);
    assert_eq!(
        call.await.unwrap().into_inner().status(),
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn host_failures_reach_the_client_as_statuses_carrying_the_error() {
    let (h, _inbox) = harness(Duration::from_secs(30), policy());
    h.set(PluginState::Disabled);
    let status = HealthClient::new(PluginChannel::new(h.shared.clone()))
        .check(check())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let source = std::error::Error::source(&status).and_then(|s| s.downcast_ref::<Error>());
    assert!(matches!(source, Some(Error::Disabled { .. })), "{status:?}");
    assert_eq!(h.shared.counters.get().error, 1);
}

#[tokio::test]
async fn over_the_bound_a_channel_call_is_resource_exhausted_at_once() {
    let (plugin, mut arrived) = TestPlugin::holding();
    let (conn, _server) = serve(plugin).await;
    let mut p = policy();
    p.max_concurrent = 1.try_into().unwrap();
    p.max_queued = 0;
    let (h, _inbox) = harness(Duration::from_secs(30), p);
    h.ready(&conn, 1);
    let holding = tokio::spawn({
        let channel = PluginChannel::new(h.shared.clone());
        async move {
            PluginClient::new(channel)
                .call(crate::codec::marshal_request(
                    &RateLimitPluginRequest::default(),
                ))
                .await
        }
    });
    arrived.recv().await.unwrap();
    let status = HealthClient::new(PluginChannel::new(h.shared.clone()))
        .check(check())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(h.shared.counters.get().overloaded, 1);
    holding.abort();
}

#[tokio::test]
async fn the_fallback_answers_plugin_call_through_the_channel_and_says_so() {
    let mut p = policy();
    p.fallback = Some(fallback());
    p.on_unavailable = crate::config::OnUnavailable::FailFast;
    let (h, _inbox) = harness(Duration::from_secs(30), p);
    let reply = PluginClient::new(PluginChannel::new(h.shared.clone()))
        .call(crate::codec::marshal_request(
            &RateLimitPluginRequest::default(),
        ))
        .await
        .unwrap();
    assert_eq!(reply.get_ref(), &fallback().response);
    let why = reply.metadata().get(FALLBACK_TRAILER).unwrap();
    assert!(why.to_str().unwrap().contains("unavailable"), "{why:?}");
    assert_eq!(h.shared.counters.get().fallback, 1);
    // Any other method gets the error itself.
    let status = HealthClient::new(PluginChannel::new(h.shared.clone()))
        .check(check())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn the_callers_shorter_deadline_travels() {
    let plugin = TestPlugin(Default::default());
    let (conn, _server) = serve(plugin.clone()).await;
    let (h, _inbox) = harness(Duration::from_secs(30), policy());
    h.ready(&conn, 1);
    let mut request = tonic::Request::new(crate::codec::marshal_request(
        &RateLimitPluginRequest::default(),
    ));
    request.set_timeout(Duration::from_millis(50));
    PluginClient::new(PluginChannel::new(h.shared.clone()))
        .call(request)
        .await
        .unwrap();
    let seen = plugin.0.timeouts.lock().clone();
    let sent = grpc::parse_timeout(seen[0].as_bytes()).unwrap();
    assert!(sent <= Duration::from_millis(50), "{seen:?}");
    assert_eq!(plugin.0.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_holds_its_slot_until_it_ends_at_the_deadline() {
    let plugin = TestPlugin(Default::default());
    let (conn, _server) = serve(plugin).await;
    let (h, _inbox) = harness(Duration::from_secs(30), policy());
    h.ready(&conn, 1);
    let mut request = tonic::Request::new(check());
    request.set_timeout(Duration::from_secs(2));
    let mut stream = HealthClient::new(PluginChannel::new(h.shared.clone()))
        .watch(request)
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    assert_eq!(
        h.shared.admission.in_flight(),
        1,
        "the open stream holds its slot"
    );
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert_eq!(h.shared.admission.in_flight(), 0);
    assert_eq!(h.shared.counters.get().timeout, 1);
}
