//! The connection's one task (`driver.rs`), on both runtime flavours, against an
//! in-process plugin served on a runtime of its own.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::DuplexStream,
    runtime::Runtime,
    sync::{Semaphore, mpsc},
};

use super::*;
use crate::proto::polaris::{self, RateLimitPluginRequest, RateLimitPluginResponse};

/// Answers a call once a permit is released (all at once when `hold` is false); tells
/// when a call arrives.
#[derive(Clone)]
struct Held {
    gate: Arc<Semaphore>,
    arrived: mpsc::UnboundedSender<()>,
}

#[tonic::async_trait]
impl polaris::plugin_server::Plugin for Held {
    async fn call(
        &self,
        _request: tonic::Request<polaris::Request>,
    ) -> Result<tonic::Response<polaris::Response>, tonic::Status> {
        let _ = self.arrived.send(());
        self.gate
            .acquire()
            .await
            .map_err(|_| tonic::Status::unavailable("closed"))?
            .forget();
        Ok(tonic::Response::new(crate::codec::marshal_response(
            &RateLimitPluginResponse { allow: true },
        )))
    }
}

/// The plugin's runtime: its tasks are not counted with the host's.
fn plugin_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `plugin` on `runtime` over an in-process connection; the host's half.
fn serve(runtime: &tokio::runtime::Handle, plugin: Held) -> DuplexStream {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let io = closable::Closable::new(server, CancellationToken::new());
    runtime.spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(polaris::plugin_server::PluginServer::new(plugin))
            .serve_with_incoming(futures_util::stream::iter([Ok::<_, std::io::Error>(io)]))
            .await;
    });
    client
}

fn plugin(permits: usize) -> (Held, Arc<Semaphore>, mpsc::UnboundedReceiver<()>) {
    let gate = Arc::new(Semaphore::new(permits));
    let (arrived, arrivals) = mpsc::unbounded_channel();
    (
        Held {
            gate: gate.clone(),
            arrived,
        },
        gate,
        arrivals,
    )
}

async fn call(conn: Conn) -> bool {
    let request = crate::codec::marshal_request(&RateLimitPluginRequest {
        r#type: 1,
        key: "/k".into(),
    });
    let client =
        crate::proto::polaris::plugin_client::PluginClient::with_origin(conn, super::origin());
    match client.clone().call(request).await {
        Ok(response) => {
            crate::codec::unmarshal_response::<RateLimitPluginResponse>(&response.into_inner())
                .unwrap()
                .allow
        }
        Err(status) => panic!("call failed: {status:?}"),
    }
}

fn runtimes() -> [(&'static str, Runtime); 2] {
    [
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
    ]
}

/// Sequential and concurrent calls work on either flavour, and the connection's task ends
/// (its end is published) once every clone of the `Conn` is gone.
#[test]
fn calls_work_on_either_runtime_and_the_connection_task_ends_with_the_last_clone() {
    let plugins = plugin_runtime();
    for (flavour, host) in runtimes() {
        let (held, _gate, _arrivals) = plugin(usize::MAX >> 4);
        let stream = serve(plugins.handle(), held);
        host.block_on(async {
            let conn = over(stream, None).await.unwrap();
            for _ in 0..50 {
                assert!(call(conn.clone()).await, "{flavour}");
            }
            let callers: Vec<_> = (0..16)
                .map(|_| {
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            assert!(call(conn.clone()).await);
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.await.unwrap();
            }
            let mut ended = conn.closer.lanes[0].ended.clone();
            drop(conn);
            tokio::time::timeout(Duration::from_secs(5), ended.wait_for(Option::is_some))
                .await
                .unwrap_or_else(|_| panic!("{flavour}: the connection's task did not end"))
                .unwrap();
        });
    }
}

/// The connection is one task whatever runs on it: with calls in flight, the host's
/// runtime has one task per caller plus one for the connection (hyper's client added its
/// frame I/O task and a task per request).
#[test]
fn a_connection_is_one_task_whatever_the_calls_in_flight() {
    let plugins = plugin_runtime();
    for (flavour, host) in runtimes() {
        let (held, gate, mut arrivals) = plugin(0);
        let stream = serve(plugins.handle(), held);
        host.block_on(async {
            let conn = over(stream, None).await.unwrap();
            let before = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            assert_eq!(before, 1, "{flavour}: the connection's task alone");
            let callers: Vec<_> = (0..8).map(|_| tokio::spawn(call(conn.clone()))).collect();
            for _ in 0..8 {
                arrivals.recv().await.unwrap();
            }
            let during = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            assert_eq!(during, 8 + 1, "{flavour}: 8 callers and the connection");
            gate.add_permits(8);
            for caller in callers {
                assert!(caller.await.unwrap());
            }
        });
    }
}

mod wire;

#[test]
fn the_least_loaded_lane_and_among_equals_the_threads_own() {
    let loads = [2, 0, 0, 1];
    let load = |i: usize| loads[i];
    assert_eq!(least_loaded(4, 2, load), 2, "its own among the least");
    assert_eq!(least_loaded(4, 0, load), 1, "the first least after its own");
    assert_eq!(least_loaded(4, 7, load), 1, "own taken modulo the lanes");
    assert_eq!(least_loaded(1, 5, |_| 9), 0);
}

/// A plugin served per connection on `runtime`: each connection made counts, and each
/// call arrives tagged with its connection's number.
fn counted_plugin(
    runtime: &Runtime,
) -> (
    Dest,
    Arc<std::sync::atomic::AtomicUsize>,
    mpsc::UnboundedReceiver<usize>,
) {
    let dials = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let handle = runtime.handle().clone();
    let counted = dials.clone();
    let connector = testing::Connector(Arc::new(move || {
        let number = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (held, _gate, mut calls) = plugin(usize::MAX >> 4);
        let arrived = arrived.clone();
        handle.spawn(async move {
            while calls.recv().await.is_some() {
                let _ = arrived.send(number);
            }
        });
        Ok(serve(&handle, held))
    }));
    (Dest::Memory(connector), dials, arrivals)
}

/// On a multi-thread runtime a connection is one lane per worker: concurrent calls spread
/// over them (least loaded first) and sequential calls from one thread keep to one.
#[test]
fn lanes_one_per_worker_spread_concurrent_calls_and_keep_sequential_ones_together() {
    let plugins = plugin_runtime();
    for (flavour, host) in runtimes() {
        let (dest, dials, mut arrivals) = counted_plugin(&plugins);
        host.block_on(async {
            let conn = connect(&dest, None, Options::default()).await.unwrap();
            let lanes = if flavour == "multi-thread" { 2 } else { 1 };
            assert_eq!(
                dials.load(std::sync::atomic::Ordering::SeqCst),
                lanes,
                "{flavour}"
            );
            // Sequential calls from this thread: one lane.
            for _ in 0..10 {
                assert!(call(conn.clone()).await);
            }
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..10 {
                seen.insert(arrivals.recv().await.unwrap());
            }
            assert_eq!(seen.len(), 1, "{flavour}: sequential calls on {seen:?}");
            // Eight calls made at once (each counts in its lane's load when made): spread
            // evenly.
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    let request = crate::codec::marshal_request(&RateLimitPluginRequest {
                        r#type: 1,
                        key: "/k".into(),
                    });
                    let mut client =
                        crate::proto::polaris::plugin_client::PluginClient::with_origin(
                            conn.clone(),
                            super::origin(),
                        );
                    async move { client.call(request).await.is_ok() }
                })
                .collect();
            let mut per_lane = std::collections::BTreeMap::<usize, usize>::new();
            for ok in futures_util::future::join_all(calls).await {
                assert!(ok, "{flavour}");
                *per_lane.entry(arrivals.recv().await.unwrap()).or_default() += 1;
            }
            assert_eq!(per_lane.len(), lanes, "{flavour}: {per_lane:?}");
            assert!(
                per_lane.values().all(|&n| n == 8 / lanes),
                "{flavour}: {per_lane:?}"
            );
        });
    }
}

/// A connection whose lane ends is closed (the owner replaces them together), and says why.
#[test]
fn a_connection_is_closed_when_any_of_its_lanes_ends() {
    let host = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let peers = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let kept = peers.clone();
    let dest = Dest::Memory(testing::Connector(Arc::new(move || {
        let (client, server) = tokio::io::duplex(64 * 1024);
        kept.lock().push(server);
        Ok(client)
    })));
    host.block_on(async {
        let conn = connect(&dest, None, Options::default()).await.unwrap();
        assert_eq!(peers.lock().len(), 2);
        assert!(!conn.is_closed());
        // The second lane's peer goes away; the first is still there.
        drop(peers.lock().pop());
        // Waits for the first lane to end.
        let _ = conn.failure(Duration::from_secs(5)).await;
        assert!(conn.is_closed());
    });
}
