//! One HTTP/2 connection to a plugin, used directly as the gRPC service.
//!
//! tonic's `Channel` puts a `tower::Buffer` worker task between every caller
//! and the connection; hyper's `SendRequest` is already cloneable and
//! hands each request straight to the connection task. Dropping that hop
//! measured +17 % throughput at 8 and 64 concurrent callers, with less CPU per
//! call (`docs/benchmarks.md`). `Channel` also reconnects by itself, without
//! backoff; here a dead connection stays dead and the plugin's owner task
//! replaces it: a companion gets a new connection with each run, a remote
//! plugin's owner reconnects with backoff.

use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tonic::body::Body;

use crate::handshake::PluginAddr;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`; a host name is resolved at each connect.
    Tcp(String),
}

impl From<&PluginAddr> for Dest {
    fn from(addr: &PluginAddr) -> Self {
        match addr {
            PluginAddr::Unix(path) => Dest::Unix(path.clone()),
            PluginAddr::Tcp(sock) => Dest::Tcp(sock.to_string()),
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Unix(path) => write!(f, "unix:{}", path.display()),
            Dest::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// An HTTP/2 connection; clones share it. A `tonic` gRPC client works over it
/// (`XClient::with_origin(conn, origin())`).
#[derive(Debug, Clone)]
pub(crate) struct Conn(SendRequest<Body>);

/// The `:authority` sent to plugins (go-plugin's hosts send a dummy too).
pub(crate) fn origin() -> http::Uri {
    http::Uri::from_static("http://plugin")
}

/// How long an HTTP/2 keepalive ping may go unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects and runs the HTTP/2 handshake; the connection task is spawned and
/// ends when every clone of the `Conn` is gone or the peer closes. With
/// `keepalive`, pings go out at that interval while calls are active (never
/// while idle: grpc-go servers answer idle pings with GOAWAY).
pub(crate) async fn connect(dest: &Dest, keepalive: Option<Duration>) -> std::io::Result<Conn> {
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    if let Some(interval) = keepalive {
        builder
            .keep_alive_interval(interval)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false);
    }
    let send = match dest {
        Dest::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            handshake(&builder, stream).await?
        }
        Dest::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
            stream.set_nodelay(true)?;
            handshake(&builder, stream).await?
        }
    };
    Ok(Conn(send))
}

async fn handshake<S>(
    builder: &hyper::client::conn::http2::Builder<TokioExecutor>,
    stream: S,
) -> std::io::Result<SendRequest<Body>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (send, connection) = builder
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "plugin connection ended");
        }
    });
    Ok(send)
}

impl tower::Service<http::Request<Body>> for Conn {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    /// Always ready: an HTTP/2 connection takes any number of requests while
    /// it is open, and a closed one fails in `call`, where tonic keeps the
    /// `hyper::Error` as the status's source (a `poll_ready` error becomes a
    /// bare UNKNOWN status). The call path uses that source to tell a broken
    /// connection from a plugin's own error.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}
