//! The call path against in-process plugins over `tokio::io::duplex`, with a
//! test standing in for the owner task (it publishes snapshots by hand).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::FutureExt as _;
use tokio::{
    io::DuplexStream,
    sync::{mpsc, oneshot},
};
use tokio_util::{
    sync::{CancellationToken, DropGuard},
    task::AbortOnDropHandle,
};

use super::*;
use crate::{
    command::{self, Inbox},
    config::{CallPolicy, Delivery, Fallback},
    conn::{self, Conn, closable::Closable},
    plugin::Shared,
    proto::polaris::{
        self, RateLimitPluginRequest, RateLimitPluginResponse, plugin_server::PluginServer,
    },
    snapshot::{Linked, Publisher},
    status::{Health, Mode},
};

/// How the test plugin behaves, and what it saw.
#[derive(Default)]
pub(crate) struct Behaviour {
    /// Calls received.
    pub(crate) calls: AtomicU64,
    /// `grpc-timeout` headers received.
    pub(crate) timeouts: parking_lot::Mutex<Vec<String>>,
    /// Each call waits for this many milliseconds (0: answers at once).
    delay_ms: AtomicU64,
    /// Told when a handler is dropped before it answered (cancelled).
    cancelled: parking_lot::Mutex<Option<oneshot::Sender<()>>>,
    /// Told when a call arrives.
    arrived: parking_lot::Mutex<Option<mpsc::UnboundedSender<()>>>,
}

#[derive(Clone)]
pub(crate) struct TestPlugin(pub(crate) Arc<Behaviour>);

impl TestPlugin {
    /// A plugin that holds every call (an hour), and tells when one arrives.
    pub(crate) fn holding() -> (Self, mpsc::UnboundedReceiver<()>) {
        let plugin = TestPlugin(Arc::default());
        plugin.0.delay_ms.store(3_600_000, Ordering::SeqCst);
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        *plugin.0.arrived.lock() = Some(arrived_tx);
        (plugin, arrived)
    }
}

/// Fires `cancelled` unless disarmed.
struct CancelGuard(Arc<Behaviour>, bool);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.1
            && let Some(tx) = self.0.cancelled.lock().take()
        {
            let _ = tx.send(());
        }
    }
}

#[tonic::async_trait]
impl polaris::plugin_server::Plugin for TestPlugin {
    async fn call(
        &self,
        request: tonic::Request<polaris::Request>,
    ) -> Result<tonic::Response<polaris::Response>, tonic::Status> {
        let b = &self.0;
        b.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = request.metadata().get("grpc-timeout") {
            b.timeouts.lock().push(t.to_str().unwrap_or("?").to_owned());
        }
        if let Some(tx) = &*b.arrived.lock() {
            let _ = tx.send(());
        }
        let mut guard = CancelGuard(b.clone(), true);
        let delay = b.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        guard.1 = false;
        Ok(tonic::Response::new(crate::codec::marshal_response(
            &RateLimitPluginResponse { allow: true },
        )))
    }
}

/// An in-process plugin's server; dropping it kills its connection.
pub(crate) struct Server {
    _task: AbortOnDropHandle<()>,
    _kill: DropGuard,
}

/// Serves `plugin` over one in-process connection.
pub(crate) async fn serve(plugin: TestPlugin) -> (Conn, Server) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let server = accept(plugin, server);
    let conn = conn::over(client, None).await.unwrap();
    (conn, server)
}

/// Serves `plugin` on the server half of an in-process connection.
pub(crate) fn accept(plugin: TestPlugin, server: DuplexStream) -> Server {
    let kill = CancellationToken::new();
    // Killing it makes the server's side read end-of-file and fail writes,
    // as a socket does when its process dies.
    let io = Closable::new(server, kill.clone());
    let task = tokio::spawn(async move {
        // grpc.health.v1 too: a second service, with a streaming method (`Watch`).
        let (_reporter, health) = tonic_health::server::health_reporter();
        let _ = tonic::transport::Server::builder()
            .add_service(PluginServer::new(plugin))
            .add_service(health)
            .serve_with_incoming(futures_util::stream::iter([Ok::<_, std::io::Error>(io)]))
            .await;
    });
    Server {
        _task: AbortOnDropHandle::new(task),
        _kill: kill.drop_guard(),
    }
}

/// A handle's shared part with a hand-driven owner.
pub(crate) struct Harness {
    pub(crate) shared: Arc<Shared>,
    publisher: Publisher,
}

pub(crate) fn harness(call_timeout: Duration, policy: CallPolicy) -> (Harness, Inbox) {
    let (mailbox, inbox) = command::channel();
    let (publisher, snapshot) = Publisher::new(
        "t",
        PluginState::Starting { attempt: 0 },
        CallSettings {
            timeout: call_timeout,
            policy: policy.clone(),
        },
        &Default::default(),
    );
    let admission = Arc::new(Admission::new(
        policy.max_concurrent.get(),
        policy.max_queued,
    ));
    let shared = Arc::new(Shared {
        name: "t".into(),
        mode: Mode::Remote,
        snapshot,
        mailbox,
        admission,
        counters: Counters::default(),
        latency: Default::default(),
        _owner: AbortOnDropHandle::new(tokio::spawn(std::future::pending())),
    });
    (Harness { shared, publisher }, inbox)
}

impl Harness {
    pub(crate) fn ready(&self, conn: &Conn, generation: u64) {
        self.publisher.update(|s| {
            s.state = PluginState::Ready;
            s.link = Some(Linked::new(conn.clone(), generation));
            s.generation = generation;
            s.health = Health::Healthy;
        });
    }

    pub(crate) fn set(&self, state: PluginState) {
        self.publisher.update(|s| {
            s.state = state;
            s.link = None;
        });
    }

    async fn call(&self) -> Result<Reply, Error> {
        self.shared
            .call(
                crate::codec::marshal_request(&RateLimitPluginRequest::default()),
                None,
            )
            .await
    }
}

use crate::call::admission::Admission;

pub(crate) fn policy() -> CallPolicy {
    CallPolicy::default()
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn the_remaining_deadline_travels_as_grpc_timeout() {
    let plugin = TestPlugin(Arc::default());
    let (conn, _server) = serve(plugin.clone()).await;
    let (h, _inbox) = harness(Duration::from_secs(3), policy());
    h.ready(&conn, 1);
    assert!(matches!(h.call().await.unwrap(), Reply::Plugin(_)));
    let seen = plugin.0.timeouts.lock().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // grpc-timeout is digits and a unit; at most the call timeout.
    let header = &seen[0];
    let (digits, unit) = header.split_at(header.len() - 1);
    let value: u64 = digits.parse().unwrap();
    let micros = match unit {
        "u" => value,
        "m" => value * 1000,
        "S" => value * 1_000_000,
        "n" => value / 1000,
        other => panic!("unit {other}"),
    };
    assert!(micros > 0 && micros <= 3_000_000, "{header}");
}

#[tokio::test]
async fn dropping_the_call_cancels_its_stream_at_the_plugin() {
    let (plugin, mut arrived) = TestPlugin::holding();
    let (cancelled_tx, cancelled) = oneshot::channel();
    *plugin.0.cancelled.lock() = Some(cancelled_tx);
    let (conn, _server) = serve(plugin.clone()).await;
    let (h, _inbox) = harness(Duration::from_secs(3600), policy());
    h.ready(&conn, 1);
    let mut call = Box::pin(h.call());
    tokio::select! {
        _ = &mut call => panic!("the call answered"),
        _ = arrived.recv() => {}
    }
    drop(call);
    tokio::time::timeout(Duration::from_secs(10), cancelled)
        .await
        .expect("the plugin's handler was cancelled")
        .unwrap();
}

#[tokio::test]
async fn past_the_bound_calls_are_overloaded_at_once_or_get_the_fallback() {
    let (plugin, mut arrived) = TestPlugin::holding();
    let (conn, _server) = serve(plugin.clone()).await;
    let mut p = policy();
    p.max_concurrent = std::num::NonZeroUsize::MIN;
    p.max_queued = 0;
    let (h, _inbox) = harness(Duration::from_secs(3600), p);
    h.ready(&conn, 1);
    let slow = h.call();
    tokio::pin!(slow);
    tokio::select! {
        _ = &mut slow => panic!("the slow call answered"),
        _ = arrived.recv() => {}
    }
    let err = h.call().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Overloaded {
                limit: 1,
                queued: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        plugin.0.calls.load(Ordering::SeqCst),
        1,
        "never reached the plugin"
    );
    assert_eq!(h.shared.counters.get().overloaded, 1);
}

pub(crate) fn fallback() -> Fallback {
    Fallback {
        type_name: "proto.RateLimitPluginResponse".into(),
        response: crate::codec::marshal_response(&RateLimitPluginResponse { allow: true }),
    }
}

#[tokio::test(start_paused = true)]
async fn fail_fast_fails_at_once_and_the_fallback_answers_and_is_counted() {
    let mut p = policy();
    p.on_unavailable = OnUnavailable::FailFast;
    let (h, mut inbox) = harness(Duration::from_secs(3600), p.clone());
    let started = Instant::now();
    let err = h.call().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(started.elapsed(), Duration::ZERO, "no waiting");
    // The owner was told a call is waiting (a remote dials now).
    assert_eq!(inbox.nudges.try_recv().ok(), Some(Nudge::Waiting));

    p.fallback = Some(fallback());
    let (h, _inbox) = harness(Duration::from_secs(3600), p);
    let reply = h.call().await.unwrap();
    let Reply::Fallback { response, cause } = reply else {
        panic!("not the fallback")
    };
    assert!(matches!(cause, Error::Unavailable { .. }));
    assert_eq!(response, fallback().response);
    let counts = h.shared.counters.get();
    assert_eq!((counts.fallback, counts.error, counts.ok), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn waiting_calls_are_served_when_the_plugin_becomes_ready() {
    let plugin = TestPlugin(Arc::default());
    let (conn, _server) = serve(plugin.clone()).await;
    let (h, _inbox) = harness(Duration::from_secs(30), policy());
    let call = h.call();
    tokio::pin!(call);
    assert!((&mut call).now_or_never().is_none());
    h.ready(&conn, 1);
    assert!(matches!(call.await.unwrap(), Reply::Plugin(_)));
}

#[tokio::test(start_paused = true)]
async fn a_next_start_after_the_deadline_fails_the_call_at_once() {
    let (h, _inbox) = harness(Duration::from_secs(5), policy());
    let until = (Instant::now() + Duration::from_secs(60)).into_std();
    h.set(PluginState::BackingOff {
        attempt: 3,
        until,
        last_exit: supervisor::Exit::Exited { code: 1 },
    });
    let started = Instant::now();
    let err = h.call().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(started.elapsed(), Duration::ZERO);
    // Due before the deadline: the call waits for it.
    let until = (Instant::now() + Duration::from_secs(1)).into_std();
    h.set(PluginState::BackingOff {
        attempt: 3,
        until,
        last_exit: supervisor::Exit::Exited { code: 1 },
    });
    let err = h.call().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5), "{err}");
}

#[tokio::test(start_paused = true)]
async fn destroy_wakes_waiting_calls_which_fail_destroyed() {
    let (h, _inbox) = harness(Duration::from_secs(3600), policy());
    let call = h.call();
    tokio::pin!(call);
    assert!((&mut call).now_or_never().is_none());
    h.set(PluginState::Destroying);
    assert!(matches!(call.await.unwrap_err(), Error::Destroyed { .. }));
}

#[tokio::test(start_paused = true)]
async fn deadlines_saturate_instead_of_panicking() {
    let plugin = TestPlugin(Arc::default());
    let (conn, _server) = serve(plugin.clone()).await;
    let (h, _inbox) = harness(Duration::MAX, policy());
    h.ready(&conn, 1);
    assert!(h.call().await.is_ok());
    let now = Instant::now();
    assert!(deadline(now, Duration::MAX) > now);
}

#[test]
fn calls_that_fail_at_once_let_other_tasks_run() {
    // A caller retrying a disabled plugin in a loop on a current-thread
    // runtime must not starve the other tasks.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (h, _inbox) = harness(SECOND, policy());
        h.set(PluginState::Disabled);
        let other = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = other.clone();
        tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        for _ in 0..100_000 {
            assert!(matches!(h.call().await, Err(Error::Disabled { .. })));
            if other.load(Ordering::SeqCst) {
                return;
            }
        }
        panic!("100000 failed calls never yielded to the other task");
    });
}

#[tokio::test]
async fn an_unsent_call_goes_to_the_next_connection_once() {
    let first = TestPlugin(Arc::default());
    let (dead, server) = serve(first.clone()).await;
    drop(server); // the connection closes; nothing was sent on it
    while !dead.is_closed() {
        tokio::task::yield_now().await;
    }
    let (h, mut inbox) = harness(Duration::from_secs(30), policy());
    h.ready(&dead, 1);
    let call = h.call();
    tokio::pin!(call);
    // The call finds the connection closed and waits for the next one.
    let second = TestPlugin(Arc::default());
    let (conn, _server) = serve(second.clone()).await;
    wait_suspect(&mut call, &mut inbox, 1).await;
    h.ready(&conn, 2);
    assert!(matches!(call.await.unwrap(), Reply::Plugin(_)));
    assert_eq!(first.0.calls.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.calls.load(Ordering::SeqCst), 1);
}

/// Drives `call` until the owner is told connection `generation` failed.
async fn wait_suspect<F>(call: &mut std::pin::Pin<&mut F>, inbox: &mut Inbox, generation: u64)
where
    F: std::future::Future<Output = Result<Reply, Error>>,
{
    loop {
        tokio::select! {
            r = call.as_mut() => panic!("answered before a new connection: {r:?}"),
            Some(nudge) = inbox.nudges.recv() => if nudge == Nudge::Suspect(generation) { return },
        }
    }
}

/// A call whose connection dies after the plugin received it.
async fn cut_off_after_sending(delivery: Delivery) -> (Result<Reply, Error>, u64, u64) {
    let (first, mut arrived) = TestPlugin::holding();
    let (conn, server) = serve(first.clone()).await;
    let mut p = policy();
    p.delivery = delivery;
    let (h, mut inbox) = harness(Duration::from_secs(30), p);
    h.ready(&conn, 1);
    let call = h.call();
    tokio::pin!(call);
    tokio::select! {
        r = &mut call => panic!("answered: {r:?}"),
        _ = arrived.recv() => {}
    }
    drop(server); // the plugin "dies" holding the call
    let second = TestPlugin(Arc::default());
    let (conn2, _server2) = serve(second.clone()).await;
    // The call ends, or the owner is told the connection failed: then a
    // new connection comes up.
    let result = loop {
        tokio::select! {
            r = &mut call => break r,
            Some(nudge) = inbox.nudges.recv() => if nudge == Nudge::Suspect(1) {
                h.ready(&conn2, 2);
            },
        }
    };
    (
        result,
        first.0.calls.load(Ordering::SeqCst),
        second.0.calls.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn a_call_that_may_have_been_processed_is_not_sent_again_at_most_once() {
    let (result, first, second) = cut_off_after_sending(Delivery::AtMostOnce).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Transport { attempts: 1, .. }), "{err}");
    assert!(err.grpc_code().is_none(), "not a status the plugin sent");
    assert_eq!((first, second), (1, 0));
}

#[tokio::test]
async fn a_call_that_may_have_been_processed_is_sent_again_at_least_once() {
    let (result, first, second) = cut_off_after_sending(Delivery::AtLeastOnce).await;
    assert!(matches!(result.unwrap(), Reply::Plugin(_)));
    assert_eq!((first, second), (1, 1));
}

#[tokio::test]
async fn closing_a_connection_fails_the_calls_on_it_at_once() {
    // The owner closes a run's connection when the run ends; a call waiting
    // on it must not wait for its deadline (the peer may never say anything).
    let (plugin, mut arrived) = TestPlugin::holding();
    let (conn, _server) = serve(plugin.clone()).await;
    let (h, _inbox) = harness(Duration::from_secs(3600), policy());
    h.ready(&conn, 1);
    let call = h.call();
    tokio::pin!(call);
    tokio::select! {
        r = &mut call => panic!("answered: {r:?}"),
        _ = arrived.recv() => {}
    }
    conn.close();
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call fails when its connection is closed")
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_retired_connection_answers_its_calls_and_takes_no_new_one() {
    let blue = TestPlugin(Arc::default());
    blue.0.delay_ms.store(1000, Ordering::SeqCst);
    let (blue_conn, _blue_server) = serve(blue.clone()).await;
    let (h, _inbox) = harness(Duration::from_secs(60), policy());
    h.ready(&blue_conn, 1);
    // A call in flight on blue when it is retired.
    let mut first = Box::pin(h.call());
    while blue.0.calls.load(Ordering::SeqCst) == 0 {
        assert!((&mut first).now_or_never().is_none());
        tokio::task::yield_now().await;
    }
    let mut retire = Box::pin(blue_conn.retire(Duration::from_secs(30)));
    assert!(
        (&mut retire).now_or_never().is_none(),
        "a call is in flight"
    );
    // A call that still finds blue in the snapshot is refused unsent, then goes to green.
    let mut second = Box::pin(h.call());
    assert!((&mut second).now_or_never().is_none());
    let green = TestPlugin(Arc::default());
    let (green_conn, _green_server) = serve(green.clone()).await;
    h.ready(&green_conn, 2);
    let (first, second, drained) = tokio::join!(first, second, retire);
    assert!(matches!(first.unwrap(), Reply::Plugin(_)));
    assert!(matches!(second.unwrap(), Reply::Plugin(_)));
    assert!(drained, "retire waited for the call in flight");
    assert_eq!(blue.0.calls.load(Ordering::SeqCst), 1);
    assert_eq!(green.0.calls.load(Ordering::SeqCst), 1);
    assert_eq!(blue_conn.in_flight(), 0);
}
