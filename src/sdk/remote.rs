//! The gRPC router every plugin serves, and [`serve_remote`] for remote
//! plugins: plain gRPC servers at an address, with no go-plugin handshake.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::Router};
use tonic_health::ServingStatus;

use super::{Call, services};
use crate::proto::{go_plugin, polaris};
use crate::protocol::HEALTH_SERVICE;

/// Messages up to go-plugin's limit (2^31-1 bytes) in both directions.
const MAX_MESSAGE: usize = i32::MAX as usize;

/// `proto.Plugin` and grpc.health.v1 (`""` and `"plugin"` SERVING); with
/// `go_plugin`, also go-plugin's controller, stdio and broker services.
pub(crate) async fn router<P: Call>(
    plugin: P,
    shutdown: CancellationToken,
    go_plugin: bool,
    max_connection_age: Option<std::time::Duration>,
) -> Router {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(HEALTH_SERVICE, ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let plugin = polaris::plugin_server::PluginServer::new(services::PluginAdapter(plugin))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let mut server = Server::builder().tcp_nodelay(true);
    if let Some(age) = max_connection_age {
        server = server.max_connection_age(age);
    }
    let router = server.add_service(health).add_service(plugin);
    if !go_plugin {
        return router;
    }
    router
        .add_service(
            go_plugin::grpc_controller_server::GrpcControllerServer::new(services::Controller {
                shutdown: shutdown.clone(),
            }),
        )
        .add_service(go_plugin::grpc_stdio_server::GrpcStdioServer::new(
            services::Stdio {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(go_plugin::grpc_broker_server::GrpcBrokerServer::new(
            services::Broker { shutdown },
        ))
}

/// Serves `plugin` as a remote plugin on `addr` (TCP, no-delay) with health,
/// until SIGINT or SIGTERM, then stops gracefully. Logs go wherever the
/// caller's `tracing` subscriber sends them.
pub async fn serve_remote<P: Call>(addr: SocketAddr, plugin: P) -> std::io::Result<()> {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let router = router(plugin, shutdown.clone(), false, None).await;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(addr = %local, "remote plugin serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        stop.cancel();
    });
    router
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(std::io::Error::other)
}
