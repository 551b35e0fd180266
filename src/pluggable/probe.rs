//! Is a socket a gRPC plugin? One connection: the health check every plugin answers
//! (`link::dial`, as the remote owner's dial), then the services its reflection lists.

use std::{
    path::Path,
    task::{Context, Poll},
    time::Duration,
};

use crate::{
    config::{PluginConfig, PluginKind},
    conn::{Conn, Dest, origin},
    link,
    reflection::{self, Source},
};

/// How long a socket that refuses connections is tried again before it is reported: a
/// server creates its socket file with `bind` and accepts after `listen`, so a look right
/// between the two is refused.
const PATIENCE: Duration = Duration::from_millis(500);
const PAUSE: Duration = Duration::from_millis(50);

/// What a gRPC socket serves: its services by reflection (`None`: it serves no reflection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probed {
    pub(crate) services: Option<Vec<String>>,
}

/// Dials `socket` with the settings of `plugin` (connect timeout, health timeout): a socket
/// that refuses (for [`PATIENCE`]), accepts but does not speak HTTP/2 and gRPC within the
/// health timeout, or answers unhealthy is not a plugin, and the error says why.
pub(crate) async fn probe(socket: &Path, plugin: &PluginConfig) -> Result<Probed, String> {
    let (connect_timeout, options) = match &plugin.kind {
        PluginKind::Remote(r) => (r.connect_timeout, crate::remote::conn_options(r)),
        PluginKind::Companion(_) => (Duration::from_secs(1), crate::conn::Options::default()),
    };
    let health_timeout = plugin.health.timeout;
    let dest = Dest::Unix(socket.to_owned());
    let patience = tokio::time::Instant::now() + PATIENCE;
    let conn = loop {
        match link::dial(&dest, None, connect_timeout, options, health_timeout).await {
            Ok(conn) => break conn,
            Err(e) if e.starts_with("cannot connect") && tokio::time::Instant::now() < patience => {
                tracing::debug!(socket = %socket.display(), error = %e, "pluggable socket refused; trying again");
                tokio::time::sleep(PAUSE).await;
            }
            Err(e) => return Err(not_grpc(&e)),
        }
    };
    let described = reflection::describe(WithOrigin(conn.clone()), health_timeout).await;
    conn.close();
    let services = match described {
        Ok(d) if matches!(d.source(), Source::Reflection { .. }) => {
            Some(d.service_names().to_vec())
        }
        Ok(d) => {
            tracing::info!(socket = %socket.display(), source = %d.source(), "pluggable plugin serves no gRPC reflection; its services are not listed");
            None
        }
        Err(status) => {
            tracing::warn!(socket = %socket.display(), code = ?status.code(), message = status.message(), "pluggable plugin's gRPC reflection failed; its services are not listed");
            None
        }
    };
    Ok(Probed { services })
}

fn not_grpc(error: &str) -> String {
    format!("it does not answer as a gRPC plugin: {error}")
}

/// The connection with the `:scheme` and `:authority` every request to a plugin carries
/// (a bare `Conn` sends the path alone, which servers refuse); what
/// `XClient::with_origin(conn, origin())` does for generated clients.
#[derive(Debug, Clone)]
struct WithOrigin(Conn);

impl tower::Service<http::Request<tonic::body::Body>> for WithOrigin {
    type Response = <Conn as tower::Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Conn as tower::Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Conn as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let mut parts = origin().into_parts();
        parts.path_and_query = request.uri().path_and_query().cloned();
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        self.0.call(request)
    }
}
