//! The gRPC services a plugin serves besides its own: go-plugin's controller,
//! stdio and broker, and the adapter from [`Call`] to `proto.Plugin`.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::Call;
use crate::proto::{go_plugin, polaris};

/// `proto.Plugin` served by a [`Call`] implementation.
pub(crate) struct PluginAdapter<P>(pub(crate) P);

#[tonic::async_trait]
impl<P: Call> polaris::plugin_server::Plugin for PluginAdapter<P> {
    async fn call(
        &self,
        request: Request<polaris::Request>,
    ) -> Result<Response<polaris::Response>, Status> {
        self.0.call(request.into_inner()).await.map(Response::new)
    }
}

/// `plugin.GRPCController`: `Shutdown` starts a graceful stop of the plugin.
pub(crate) struct Controller {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl go_plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<go_plugin::Empty>,
    ) -> Result<Response<go_plugin::Empty>, Status> {
        tracing::info!("shutdown requested by the host");
        // The reply still goes out: the graceful stop waits for in-flight calls.
        self.shutdown.cancel();
        Ok(Response::new(go_plugin::Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream that yields nothing and ends when `token` is cancelled, so that
/// long-lived host streams never hold up a graceful stop.
fn idle_until<T: Send + 'static>(token: CancellationToken) -> BoxStream<T> {
    Box::pin(
        tokio_stream::once(())
            .then(move |()| {
                let token = token.clone();
                async move { token.cancelled_owned().await }
            })
            .filter_map(|()| None),
    )
}

/// `plugin.GRPCStdio`: Rust plugins log to stderr (which the host reads
/// directly) and never capture stdout, so the stream carries no data; it is
/// held open until the plugin stops, which is what go-plugin hosts expect.
pub(crate) struct Stdio {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl go_plugin::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<go_plugin::StdioData>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(idle_until(self.shutdown.clone())))
    }
}

/// `plugin.GRPCBroker`: the Polaris API passes no callbacks, so the plugin
/// never brokers connections. It accepts the host's stream, reads and
/// ignores what the host announces, and ends the stream when it stops.
pub(crate) struct Broker {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl go_plugin::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<go_plugin::ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<Streaming<go_plugin::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    msg = inbound.next() => match msg {
                        Some(Ok(info)) => tracing::debug!(service_id = info.service_id, "broker: ignoring connection info from host"),
                        Some(Err(_)) | None => break,
                    },
                }
            }
        });
        Ok(Response::new(idle_until(self.shutdown.clone())))
    }
}
