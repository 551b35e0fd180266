//! The plugin side: what a plugin's `main` calls, like `server.Serve` in the
//! Go SDK. A Rust plugin is a type implementing [`Call`] and one line of `main`:
//!
//! ```no_run
//! use polaris_plugin::{codec, proto::polaris::*, sdk};
//!
//! struct AllowAll;
//!
//! impl sdk::Call for AllowAll {
//!     async fn call(&self, request: Request) -> Result<Response, tonic::Status> {
//!         let _req: RateLimitPluginRequest = codec::unmarshal_request(&request)?;
//!         Ok(codec::marshal_response(&RateLimitPluginResponse { allow: true }))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     sdk::serve(AllowAll)
//! }
//! ```
//!
//! [`serve`] does what go-plugin's `plugin.Serve` does for a gRPC plugin, plus
//! what the Go SDK lacks (see `docs/protocol.md`):
//! - checks the magic cookie; run by hand, it explains itself on stderr and exits 1;
//! - negotiates the app protocol version from `PLUGIN_PROTOCOL_VERSIONS`;
//! - takes its name from `PLUGIN_NAME` (else argv\[0\]'s basename);
//! - runs `PLUGIN_PROCS` runtime worker threads (Rust's GOMAXPROCS);
//! - listens on a unix socket in a fresh 0700 directory (or TCP loopback with
//!   `POLARIS_PLUGIN_TRANSPORT=tcp`), prints the handshake line on stdout;
//! - logs to stderr as hclog JSON, so go-plugin hosts keep the levels;
//! - serves `proto.Plugin`, grpc.health.v1 (`"plugin"` SERVING),
//!   `plugin.GRPCController/Shutdown`, `plugin.GRPCStdio` and `plugin.GRPCBroker`;
//! - stops gracefully on `Shutdown` or SIGTERM (exit 0), ignores SIGINT, and
//!   exits when the host process dies.
//!
//! Remote plugins (plain gRPC servers at an address) use [`serve_remote`].

mod lifecycle;
mod listener;
mod log;
mod remote;
mod services;
mod tls;
mod typed;

use std::{future::Future, io::Write as _, process::ExitCode, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic::Status;

pub use listener::Transport;
pub use remote::{
    RemoteTlsFiles, pluggable_socket, serve_pluggable, serve_remote, serve_remote_tls,
};
pub use typed::NoCall;

use crate::{
    handshake::Handshake,
    proto::polaris::{Request, Response},
    protocol::{APP_PROTOCOL_VERSION, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, env},
};

/// A plugin: answers `proto.Plugin/Call`. Use [`crate::codec`] to unpack the
/// request's payload and pack the reply. An `Err` goes to the host as a gRPC
/// status with its code and message.
pub trait Call: Send + Sync + 'static {
    /// Handles one call.
    fn call(&self, request: Request) -> impl Future<Output = Result<Response, Status>> + Send;
}

/// How long a graceful stop may take before the plugin exits anyway, unless
/// [`Server::stop_grace`] says otherwise.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The message for someone who runs a plugin binary by hand.
const NOT_A_PROGRAM: &str = "This binary is a plugin. These are not meant to be executed directly.\n\
Please execute the program that consumes these plugins, which will\n\
load any plugins automatically.\n\
(It is a Polaris plugin: the host starts it with the POLARIS_PLUGIN magic cookie in its environment.)";

/// Serves `plugin` as a companion plugin until the host stops it; returns the
/// process exit code. See the [module docs](self).
pub fn serve<P: Call>(plugin: P) -> ExitCode {
    Server::new(plugin).serve()
}

/// A configurable [`serve`].
pub struct Server<P> {
    plugin: P,
    extras: typed::Extras,
    transport: Option<Transport>,
    stop_grace: Duration,
    max_connection_age: Option<Duration>,
    on_stop: Option<OnStop>,
}

/// What [`Server::on_stop`] runs.
type OnStop = Box<dyn FnOnce() + Send + 'static>;

/// A stop callback is not printable.
struct OnStopDebug;

impl std::fmt::Debug for OnStopDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("on_stop(..)")
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for Server<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("plugin", &self.plugin)
            .field("extras", &self.extras)
            .field("transport", &self.transport)
            .field("stop_grace", &self.stop_grace)
            .field("max_connection_age", &self.max_connection_age)
            .field("on_stop", &self.on_stop.as_ref().map(|_| OnStopDebug))
            .finish()
    }
}

impl Server<NoCall> {
    /// A server for a plugin of typed services only (no `proto.Plugin`): add them with
    /// [`service`](Self::service), their descriptors with
    /// [`descriptors`](Self::descriptors). Handshake, health, controller, stdio and
    /// reflection are served as for any plugin.
    pub fn typed() -> Self {
        let mut server = Server::new(NoCall);
        server.extras.without_call = true;
        server
    }
}

impl<P: Call> Server<P> {
    /// A server for `plugin` with the defaults of [`serve`].
    pub fn new(plugin: P) -> Self {
        Server {
            plugin,
            extras: typed::Extras::default(),
            transport: None,
            stop_grace: STOP_GRACE,
            max_connection_age: None,
            on_stop: None,
        }
    }

    /// Serves `service` too: any tonic-generated server (`RateLimiterServer::new(..)`),
    /// beside `proto.Plugin` and the services every plugin serves. The host calls it
    /// through `PluginHandle::channel`. Give its descriptors to
    /// [`descriptors`](Self::descriptors) so that reflection describes it.
    pub fn service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.extras.add(service);
        self
    }

    /// An encoded `FileDescriptorSet` (tonic-prost-build's `file_descriptor_set_path`,
    /// or `protoc -o`) for the plugin's own services: gRPC reflection (v1 and v1alpha,
    /// always served) describes them, so `polaris-plugin describe` lists them and
    /// `polaris-plugin call` calls them with JSON. A set that does not decode stops the
    /// plugin at start, saying so.
    pub fn descriptors(mut self, set: impl Into<Vec<u8>>) -> Self {
        self.extras.descriptors.push(set.into());
        self
    }

    /// Runs `f` once when the graceful stop begins (`Shutdown` from the host, SIGTERM,
    /// SIGINT, the host's death), while calls in flight still finish: to flush state,
    /// or to note that no new work should start.
    pub fn on_stop(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_stop = Some(Box::new(f));
        self
    }

    /// Listen on `transport` (default: unix socket; `POLARIS_PLUGIN_TRANSPORT`
    /// overrides this).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long a graceful stop (`Shutdown`, SIGTERM, the host's death) lets
    /// calls in flight finish before the plugin exits anyway with code 0
    /// (default 2 s). Calls still running then are cut off: the host sees
    /// them fail. (Our host drains its calls before `Shutdown`, so this
    /// matters for calls it gave up waiting for, and for SIGTERM and host
    /// death.) `Duration::ZERO` exits as soon as the stop begins.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Closes each connection gracefully (GOAWAY, calls in flight finish)
    /// once it is this old, like grpc-go's keepalive `MaxConnectionAge`; the
    /// host dials again. Default: never.
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// Runs the plugin; returns the process exit code.
    pub fn serve(self) -> ExitCode {
        if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
            eprintln!("{NOT_A_PROGRAM}");
            return ExitCode::from(1);
        }
        let name = plugin_name();
        log::init(&name);
        let transport = match Transport::from_env() {
            Ok(t) => t.or(self.transport).unwrap_or_default(),
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        let workers = worker_threads();
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("plugin-worker")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the async runtime");
                return ExitCode::from(1);
            }
        };
        tracing::debug!(plugin = %name, worker_threads = workers, "runtime started");
        let code = runtime.block_on(run(
            self.plugin,
            self.extras,
            transport,
            self.stop_grace,
            self.max_connection_age,
            self.on_stop,
        ));
        runtime.shutdown_timeout(Duration::from_millis(200));
        code
    }
}

/// `PLUGIN_NAME`, else the basename of argv\[0\].
fn plugin_name() -> String {
    std::env::var(env::NAME)
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::env::args_os().next().and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
        })
        .unwrap_or_else(|| "plugin".to_owned())
}

/// `PLUGIN_PROCS`, else `GOMAXPROCS`, else the CPUs this process may use.
fn worker_threads() -> usize {
    for key in [env::PROCS, env::GOMAXPROCS] {
        if let Ok(v) = std::env::var(key) {
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => return n,
                _ => tracing::warn!("{key}={v:?} is not a positive integer; ignored"),
            }
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The highest version in `supported` that the host offered (`offered` is
/// `PLUGIN_PROTOCOL_VERSIONS`, e.g. `"2,1"`); `None` if they share none.
fn negotiate_version(offered: &str, supported: &[u32]) -> Option<u32> {
    let offered: Vec<u32> = offered
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| match s.trim().parse() {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!("{}: ignoring bad version {s:?}", env::PROTOCOL_VERSIONS);
                None
            }
        })
        .collect();
    supported
        .iter()
        .copied()
        .filter(|v| offered.contains(v))
        .max()
}

/// The version for the handshake: the negotiated one, else the lowest
/// supported (go-plugin's rule: the host then refuses the handshake, and its
/// error names both sides). When the host offered versions and none fits,
/// the plugin says so on stderr, which the host forwards to its log.
fn handshake_version(offered: &str, supported: &[u32]) -> u32 {
    if let Some(v) = negotiate_version(offered, supported) {
        return v;
    }
    let lowest = supported
        .iter()
        .copied()
        .min()
        .unwrap_or(APP_PROTOCOL_VERSION);
    if !offered.trim().is_empty() {
        tracing::warn!(
            "no app protocol version in common: the host offers {}={offered:?}, this plugin speaks {supported:?}; \
             answering {lowest}, which the host will refuse. Build the plugin against an SDK that speaks one of the host's versions, or upgrade the host",
            env::PROTOCOL_VERSIONS
        );
    }
    lowest
}

/// go-plugin's AutoMTLS, when the host set `PLUGIN_CLIENT_CERT`: the server config (a fresh
/// certificate of ours, the host's required as the client certificate) and our certificate
/// for the handshake's sixth field.
fn auto_mtls() -> Result<
    Option<(
        std::sync::Arc<rustls::ServerConfig>,
        rustls::pki_types::CertificateDer<'static>,
    )>,
    String,
> {
    let Some(pem) = std::env::var_os(env::CLIENT_CERT).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let pem = pem
        .into_string()
        .map_err(|_| format!("{} is not UTF-8", env::CLIENT_CERT))?;
    let host = crate::tls::parse_client_cert_pem(&pem)
        .map_err(|e| format!("{}: {e}", env::CLIENT_CERT))?;
    let own = crate::tls::Identity::generate()
        .map_err(|e| format!("cannot make the plugin's certificate: {e}"))?;
    let config = crate::tls::auto_server(&own, host).map_err(|e| e.to_string())?;
    Ok(Some((config, own.cert)))
}

/// Serves `router` on `incoming`, through TLS with `tls`, until `stop`.
fn serve_on<I, IO, E>(
    router: tonic::transport::server::Router,
    incoming: I,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>>
where
    I: futures_util::Stream<Item = Result<IO, E>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display + Send + 'static,
{
    tokio::spawn(async move {
        match tls {
            None => {
                router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
            }
            Some(config) => {
                router
                    .serve_with_incoming_shutdown(
                        tls::incoming(incoming, config),
                        stop.cancelled_owned(),
                    )
                    .await
            }
        }
    })
}

async fn run<P: Call>(
    plugin: P,
    extras: typed::Extras,
    transport: Transport,
    stop_grace: Duration,
    max_connection_age: Option<Duration>,
    on_stop: Option<OnStop>,
) -> ExitCode {
    let shutdown = CancellationToken::new();
    if let Err(e) = lifecycle::watch(shutdown.clone()) {
        tracing::error!(error = %e, "cannot install signal handlers");
        return ExitCode::from(1);
    }
    if let Some(f) = on_stop {
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            f();
        });
    }
    let auto_mtls = match auto_mtls() {
        Ok(auto_mtls) => auto_mtls,
        Err(e) => {
            tracing::error!("AutoMTLS: {e}");
            return ExitCode::from(1);
        }
    };
    let bound = match listener::bind(transport) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    let offered = std::env::var(env::PROTOCOL_VERSIONS).unwrap_or_default();
    let version = handshake_version(&offered, &[APP_PROTOCOL_VERSION]);
    let mut handshake = Handshake::grpc(version, bound.addr().clone());
    let tls = auto_mtls.map(|(config, cert)| {
        handshake.server_cert = Some(cert.to_vec());
        config
    });
    let router =
        match remote::router(plugin, extras, shutdown.clone(), true, max_connection_age).await {
            Ok(router) => router,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };

    // The handshake goes out after the listener is bound and the services are
    // registered; connections queue on the socket until serving starts.
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{handshake}")
            .and_then(|()| out.flush())
            .is_err()
        {
            tracing::error!("cannot write the handshake to stdout");
            return ExitCode::from(1);
        }
    }
    tracing::info!(addr = %bound.addr(), version, tls = tls.is_some(), "plugin serving");

    let stop = shutdown.clone();
    // The socket's private directory stays here, not in the server task, so
    // every return below removes it, also when the grace runs out while the
    // server task still runs.
    let (mut server, _socket_dir) = match bound {
        listener::Bound::Unix { listener, _dir, .. } => (
            serve_on(
                router,
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                tls,
                stop,
            ),
            Some(_dir),
        ),
        listener::Bound::Tcp { listener, .. } => (
            serve_on(
                router,
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                tls,
                stop,
            ),
            None,
        ),
    };
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        r = &mut server => {
            // The server only ends by itself on an I/O error of the listener.
            if !shutdown.is_cancelled() {
                tracing::error!(result = ?r, "gRPC server ended unexpectedly");
                return ExitCode::from(1);
            }
        }
    }
    match tokio::time::timeout(stop_grace, &mut server).await {
        Ok(_) => tracing::info!("plugin stopped"),
        Err(_) => {
            tracing::warn!(grace = %supervisor::HumanDuration(stop_grace), "calls still running after the grace period; exiting")
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_prefers_highest_offered() {
        assert_eq!(negotiate_version("2,1", &[1]), Some(1));
        assert_eq!(negotiate_version("1,2", &[1, 2]), Some(2));
        assert_eq!(negotiate_version(" 1 , x ,2", &[1, 2]), Some(2));
        // Nothing in common, or nothing offered.
        assert_eq!(negotiate_version("3", &[2, 1]), None);
        assert_eq!(negotiate_version("", &[1]), None);
        // Then the handshake carries the lowest, for the host to reject.
        assert_eq!(handshake_version("3", &[2, 1]), 1);
        assert_eq!(handshake_version("", &[1]), 1);
        assert_eq!(handshake_version("3,2", &[2, 1]), 2);
    }
}
