//! The admin HTTP API (feature `admin`): what an operator uses on a running host.
//!
//! - `GET /maintain/v1/plugins`, `GET /maintain/v1/plugins/{name}`: every plugin's status
//!   (the snapshot its owner publishes, call counts, the last minute's latency, CPU and
//!   memory of a companion's process, its last exit and stderr tail).
//! - `PUT /maintain/v1/plugins/{name}/enable`, `.../disable`, `.../restart`: answer when
//!   done, with the plugin's status, or `409` saying why not.
//! - `POST /maintain/v1/plugins/{name}/call`: `{"message": "RateLimitPluginRequest",
//!   "json": {...}, "timeout": "2s"}` → the reply as JSON, every field present.
//! - `GET /maintain/v1/events`: the lifecycle event stream (server-sent events; `?after=N`
//!   or `Last-Event-ID` replays the kept ones after `N`); with `Accept: application/json`,
//!   the kept events as a list.
//! - `GET /metrics`: Prometheus text format. `GET /healthz`, `GET /readyz`.
//! - `GET /`: the status page.
//!
//! Errors are `{"error": "...", "plugin": "..."}` with 400, 401, 404, 409, 502, 503 or 504.
//! A non-loopback address needs a bearer token ([`AdminConfig::token_file`]), compared in
//! constant time and never logged. Reference: `docs/operations.md`.

mod auth;
mod metrics;
mod routes;
mod view;

#[cfg(test)]
mod tests;

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

use crate::{
    Registry,
    config::{AdminConfig, ConfigError},
};

pub use self::view::PluginView;

/// How long [`AdminServer::shutdown`] lets requests in progress finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the admin server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The settings break a rule (a non-loopback address without a token).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("admin API: cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
    /// The token file could not be read, or holds no token.
    #[error("admin API: token file {}: {message}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the token).
        message: String,
    },
}

/// A running admin server. Dropping it stops it at once; [`shutdown`](Self::shutdown) is
/// the graceful way.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: AbortOnDropHandle<()>,
}

impl AdminServer {
    /// Binds `config.listen` and serves `registry` there. Must be called inside a tokio
    /// runtime.
    pub async fn start(registry: Arc<Registry>, config: &AdminConfig) -> Result<Self, AdminError> {
        config.validate()?;
        let token = match &config.token_file {
            Some(path) => Some(auth::Token::read(path)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|error| AdminError::Bind {
                addr: config.listen,
                error,
            })?;
        let addr = listener.local_addr().map_err(|error| AdminError::Bind {
            addr: config.listen,
            error,
        })?;
        let stop = CancellationToken::new();
        let app = routes::router(routes::AppState::new(registry, stop.clone()), token);
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "admin API stopped");
            }
        });
        tracing::info!(%addr, token = token_required(config), "admin API listening");
        Ok(AdminServer {
            addr,
            stop,
            task: AbortOnDropHandle::new(task),
        })
    }

    /// The address it listens on (the port the OS chose when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends event streams, and lets other requests finish (at most 5 s).
    pub async fn shutdown(self) {
        self.stop.cancel();
        let AdminServer { task, .. } = self;
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("admin API: requests still running after {SHUTDOWN_GRACE:?}; cut off");
        }
    }
}

fn token_required(config: &AdminConfig) -> bool {
    config.token_file.is_some()
}
