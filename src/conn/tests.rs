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
fn serve(runtime: &Runtime, plugin: Held) -> DuplexStream {
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
        let stream = serve(&plugins, held);
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
            let mut ended = conn.closer.ended.clone();
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
        let stream = serve(&plugins, held);
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
