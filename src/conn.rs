//! One HTTP/2 connection to a plugin, used directly as the gRPC service.
//!
//! tonic's `Channel` puts a `tower::Buffer` worker task between every caller
//! and the connection, and hyper's client a dispatch queue and a task of its own per
//! request; here the caller's task queues its request on h2's client itself (`send.rs`)
//! and waits for the response, and one task per connection does the frame I/O
//! (`driver.rs`). `Channel` also reconnects by itself, without
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

pub(crate) mod closable;
mod driver;
mod gate;
mod keepalive;
mod send;
#[cfg(test)]
mod tests;

pub(crate) use gate::InFlight;

use bytes::Bytes;
use h2::client::SendRequest;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;

use crate::{handshake::PluginAddr, tls::ClientTls};

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`; a host name is resolved at each connect.
    Tcp(String),
    /// Tests: an in-process connection made by a function.
    #[cfg(test)]
    Memory(testing::Connector),
}

#[cfg(test)]
pub(crate) mod testing {
    //! In-process connections for the owner tests.

    use std::sync::Arc;

    type Make = dyn Fn() -> std::io::Result<tokio::io::DuplexStream> + Send + Sync;

    /// Makes the client half of a new in-process connection (or fails, as a
    /// refused connect does).
    #[derive(Clone)]
    pub(crate) struct Connector(pub(crate) Arc<Make>);

    impl std::fmt::Debug for Connector {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Connector")
        }
    }

    impl PartialEq for Connector {
        fn eq(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
    }

    impl Eq for Connector {}
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
            #[cfg(test)]
            Dest::Memory(_) => f.write_str("memory"),
        }
    }
}

/// An HTTP/2 connection; clones share it. A `tonic` gRPC client works over it
/// (`XClient::with_origin(conn, origin())`).
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// Whether requests pass the gate (calls do; the host's own control requests —
    /// health checks, `Shutdown` — do not, so a retired connection can still stop its
    /// process gracefully).
    gated: bool,
    /// What [`Conn::close`] uses, shared by every clone: a clone of a `Conn`
    /// (one per call) costs an `Arc` count, no lock.
    closer: Arc<Closer>,
}

#[derive(Debug)]
struct Closer {
    /// Counts requests in flight; retired, lets none in.
    gate: Arc<gate::Gate>,
    /// Ends the connection's IO.
    io: CancellationToken,
    /// Wakes the calls waiting on the connection.
    wake: watch::Sender<()>,
    woken: watch::Receiver<()>,
    /// The HTTP/2 connections ("lanes") to the plugin, used in turn; one per worker of
    /// the runtime that dialled them (`lane_count()`).
    lanes: Vec<Lane>,
}

/// One HTTP/2 connection of a [`Conn`], with its own task.
#[derive(Debug)]
struct Lane {
    /// Requests on this connection now (until their response ends).
    load: Arc<AtomicUsize>,
    send: SendRequest<Bytes>,
    /// Runs futures on the connection's task (the pipes of streaming request bodies).
    spawn: driver::Local,
    /// How the connection's task ended (`Some` once it has): the error, if any.
    ended: watch::Receiver<Option<Option<String>>>,
}

/// A request's count in its lane's load, until its response ends (or it fails).
#[derive(Debug)]
struct LaneLoad(Arc<AtomicUsize>);

impl LaneLoad {
    fn enter(load: &Arc<AtomicUsize>) -> LaneLoad {
        load.fetch_add(1, Ordering::Relaxed);
        LaneLoad(load.clone())
    }
}

impl Drop for LaneLoad {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Closer {
    /// The lane for a request: the least loaded, and among equals the calling thread's
    /// own, so that sequential calls from one thread keep to one connection (and its task
    /// stays warm on that thread) while concurrent ones spread.
    fn pick(&self) -> usize {
        let lanes = &self.lanes;
        if lanes.len() == 1 {
            return 0;
        }
        thread_local! {
            static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        }
        static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
        let own = SLOT.with(|slot| *slot);
        least_loaded(lanes.len(), own, |i| lanes[i].load.load(Ordering::Relaxed))
    }
}

/// The index (of `n`) with the least `load`; among equals `own` (modulo `n`), else the
/// first after it.
fn least_loaded(n: usize, own: usize, load: impl Fn(usize) -> usize) -> usize {
    let own = own % n;
    let mut best = own;
    let mut least = load(own);
    for k in 1..n {
        let i = (own + k) % n;
        let l = load(i);
        if l < least {
            best = i;
            least = l;
        }
    }
    best
}

/// How a [`Conn`] is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// HTTP/2 keepalive ping interval while calls are in flight; `None`: no pings.
    pub(crate) keepalive: Option<Duration>,
    /// How many connections ("lanes"); `None`: [`lane_count`]'s one per worker.
    pub(crate) lanes: Option<std::num::NonZeroUsize>,
}

/// How many connections a `Conn` opens to its plugin by default: one per worker of the
/// runtime that dials it (at most 4), so that on a multi-thread runtime the connection tasks
/// — and the plugin's per-connection readers and writers — work in parallel instead of every
/// call going through one task on each side.
fn lane_count() -> usize {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            handle.metrics().num_workers().clamp(1, 4)
        }
        _ => 1,
    }
}

/// The `:authority` sent to plugins (go-plugin's hosts send a dummy too).
pub(crate) fn origin() -> http::Uri {
    http::Uri::from_static("http://plugin")
}

/// How long an HTTP/2 keepalive ping may go unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

#[cfg(test)]
/// Runs the HTTP/2 handshake over an established stream (an in-process
/// `duplex` in tests).
pub(crate) async fn over<S>(stream: S, keepalive: Option<Duration>) -> std::io::Result<Conn>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let close = CancellationToken::new();
    let gate = Arc::default();
    let lane = handshake(keepalive, stream, &close, &gate).await?;
    Ok(Conn::new(vec![lane], close, gate))
}

/// The HTTP/2 settings: hyper's client defaults (which the host used before it drove h2
/// itself), windows larger than the protocol's 64 KiB so a large reply is not held up by
/// window updates.
fn builder() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_max_send_streams(100)
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_frame_size(16 * 1024)
        .max_header_list_size(16 * 1024)
        .max_send_buffer_size(1024 * 1024)
        .enable_push(false);
    builder
}

/// Connects and runs the HTTP/2 handshake, over TLS when `tls` is given; the connection
/// task is spawned and ends when every clone of the `Conn` is gone or the peer closes. With
/// `keepalive`, pings go out at that interval while calls are active (never while idle:
/// grpc-go servers answer idle pings with GOAWAY).
pub(crate) async fn connect(
    dest: &Dest,
    tls: Option<&ClientTls>,
    options: Options,
) -> std::io::Result<Conn> {
    let Options { keepalive, lanes } = options;
    let count = lanes.map_or_else(lane_count, std::num::NonZeroUsize::get);
    let close = CancellationToken::new();
    let gate: Arc<gate::Gate> = Arc::default();
    let mut lanes = Vec::new();
    for _ in 0..count {
        let lane = match dest {
            Dest::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                secure(keepalive, stream, tls, &close, &gate).await
            }
            Dest::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
                stream.set_nodelay(true)?;
                secure(keepalive, stream, tls, &close, &gate).await
            }
            #[cfg(test)]
            Dest::Memory(connector) => {
                secure(keepalive, (connector.0)()?, tls, &close, &gate).await
            }
        };
        match lane {
            Ok(lane) => lanes.push(lane),
            Err(e) => {
                // The lanes already open end with the token.
                close.cancel();
                return Err(e);
            }
        }
    }
    Ok(Conn::new(lanes, close, gate))
}

/// The TLS handshake (when `tls` is given), then HTTP/2's.
async fn secure<S>(
    keepalive: Option<Duration>,
    stream: S,
    tls: Option<&ClientTls>,
    close: &CancellationToken,
    gate: &Arc<gate::Gate>,
) -> std::io::Result<Lane>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    match tls {
        None => handshake(keepalive, stream, close, gate).await,
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), stream)
                .await
                .map_err(|e| {
                    std::io::Error::new(e.kind(), TlsHandshake(crate::tls::explain(&e)))
                })?;
            handshake(keepalive, stream, close, gate).await
        }
    }
}

/// A failed TLS handshake (the source says why: the peer's certificate, a missing client
/// certificate, …).
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake failed: {0}")]
struct TlsHandshake(String);

/// The connection's task ends when the peer closes, when every clone of the
/// `Conn` is gone, or at [`Conn::close`] (`close` cancelled). It is the only task the
/// connection has: the frame I/O, the keepalive pings and the pipes of streaming request
/// bodies run inside it (`conn/driver.rs`).
async fn handshake<S>(
    keepalive: Option<Duration>,
    stream: S,
    close: &CancellationToken,
    gate: &Arc<gate::Gate>,
) -> std::io::Result<Lane>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let stream = closable::Closable::new(stream, close.clone());
    let (send, mut connection) = builder()
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(std::io::Error::other)?;
    let pings = keepalive.and_then(|interval| Some((connection.ping_pong()?, interval)));
    let (end, ended) = watch::channel(None);
    // A fresh executor for each connection: what is spawned on it is this connection's.
    let spawn = driver::Local::default();
    let driver = driver::Driver::new(connection, &spawn);
    let close = close.clone();
    let gate = gate.clone();
    tokio::spawn(async move {
        let result = match pings {
            None => driver.await.map_err(|e| crate::link::error_chain(&e)),
            Some((pings, interval)) => tokio::select! {
                result = driver => result.map_err(|e| crate::link::error_chain(&e)),
                silent = keepalive::watch(pings, interval, KEEPALIVE_TIMEOUT, move || gate.in_flight() > 0) => {
                    // The peer stopped answering: the connection (dropped with the driver)
                    // fails its calls, and the `Conn`'s other lanes close with it.
                    close.cancel();
                    Err(silent.to_string())
                }
            },
        };
        if let Err(e) = &result {
            tracing::debug!(error = %e, "plugin connection ended");
        }
        end.send_replace(Some(result.err()));
    });
    Ok(Lane {
        load: Arc::default(),
        send,
        spawn,
        ended,
    })
}

impl Conn {
    fn new(lanes: Vec<Lane>, io: CancellationToken, gate: Arc<gate::Gate>) -> Conn {
        let (wake, woken) = watch::channel(());
        Conn {
            gated: true,
            closer: Arc::new(Closer {
                gate,
                io,
                wake,
                woken,
                lanes,
            }),
        }
    }

    /// Whether the connection is closed (the peer went away, sent a GOAWAY, or it failed):
    /// it takes no new request.
    pub(crate) fn is_closed(&self) -> bool {
        if self.closer.io.is_cancelled() {
            return true;
        }
        // Any lane: they all go to the one plugin, and the owner replaces them together.
        self.closer.lanes.iter().any(|lane| {
            if lane.ended.borrow().is_some() {
                return true;
            }
            // h2 refuses new streams once the connection failed or the peer sent a
            // GOAWAY. A clone has no stream of its own waiting to open: this never waits.
            let mut send = lane.send.clone();
            let mut cx = Context::from_waker(std::task::Waker::noop());
            matches!(send.poll_ready(&mut cx), Poll::Ready(Err(_)))
        })
    }

    /// Ends the connection now, for every clone. Requests not yet sent come
    /// back unsent; requests in flight fail (they may have been processed).
    /// The owner closes a run's connections when the run ends: a peer that
    /// died does not always make the connection fail by itself.
    pub(crate) fn close(&self) {
        self.closer.io.cancel();
        self.closer.wake.send_replace(());
    }

    /// Blue/green: lets no new request through (they come back unsent, as
    /// [`ConnError::Retired`]) and waits until those in flight are answered, response
    /// bodies included, at most `within`. Whether they all were.
    pub(crate) async fn retire(&self, within: Duration) -> bool {
        self.closer.gate.retire(within).await
    }

    /// The same connection for the host's control requests (health, `Shutdown`): they
    /// neither count in its gate nor are refused when it is retired.
    pub(crate) fn control(&self) -> Conn {
        Conn {
            gated: false,
            ..self.clone()
        }
    }

    /// Whether `other` is a clone of this connection.
    pub(crate) fn same(&self, other: &Conn) -> bool {
        Arc::ptr_eq(&self.closer, &other.closer)
    }

    /// Why the connection failed: waits (at most `within`) for its task to end, then its
    /// error (`None` when it ended cleanly or is still running). A TLS 1.3 server that refuses
    /// the client certificate says so only after the handshake, as an alert that ends the
    /// connection: this is where that reason is found.
    pub(crate) async fn failure(&self, within: Duration) -> Option<String> {
        let ends = self.closer.lanes.iter().map(|lane| {
            let mut ended = lane.ended.clone();
            Box::pin(async move { ended.wait_for(Option::is_some).await.ok()?.clone()? })
        });
        tokio::time::timeout(within, futures_util::future::select_all(ends))
            .await
            .ok()
            .and_then(|(first, _, _)| first)
    }

    /// Requests in flight on the connection now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.closer.gate.in_flight()
    }
}

/// A response body that holds its request's place in the connection's gate until the
/// body is done (or dropped). Dropping it before the end resets the stream (`CANCEL`).
#[derive(Debug)]
pub(crate) struct GuardedBody {
    inner: h2::RecvStream,
    /// The DATA frames are all read; the trailers come next.
    data_done: bool,
    /// The trailers too (or the stream ended without them).
    done: bool,
    _in_flight: Option<InFlight>,
    _load: LaneLoad,
}

impl http_body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if !this.data_done {
            match std::task::ready!(this.inner.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Read, so the plugin may send as much again.
                    let _ = this.inner.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        if this.done {
            return Poll::Ready(None);
        }
        let trailers = std::task::ready!(this.inner.poll_trailers(cx));
        this.done = true;
        Poll::Ready(
            trailers
                .transpose()
                .map(|t| t.map(http_body::Frame::trailers)),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }
}

impl tower::Service<http::Request<Body>> for Conn {
    type Response = http::Response<GuardedBody>;
    type Error = ConnError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnError>> + Send>>;

    /// Always ready: an HTTP/2 connection takes any number of requests while
    /// it is open (the call path bounds how many), and a closed one fails in
    /// `call`, where tonic keeps the [`ConnError`] as the status's source (a
    /// `poll_ready` error becomes a bare UNKNOWN status). The call path uses
    /// that source to tell a transport failure from a plugin's own error, and
    /// an unsent request from one that may have been processed.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let in_flight = if self.gated {
            match self.closer.gate.enter() {
                Some(guard) => Some(guard),
                None => return Box::pin(std::future::ready(Err(ConnError::Retired))),
            }
        } else {
            None
        };
        let lane = self.closer.pick();
        let load = LaneLoad::enter(&self.closer.lanes[lane].load);
        // A clone of h2's handle per request: each may have a stream waiting to open.
        let mut sender = self.closer.lanes[lane].send.clone();
        let closer = self.closer.clone();
        let mut closed = self.closer.woken.clone();
        Box::pin(async move {
            if closer.io.is_cancelled() {
                return Err(ConnError::ClosedUnsent);
            }
            let exchange = async {
                let response = send::send(&mut sender, &closer.lanes[lane].spawn, request)
                    .await
                    .map_err(ConnError::unsent)?;
                let response = response.await.map_err(ConnError::classify)?;
                Ok(response.map(|inner| GuardedBody {
                    inner,
                    data_done: false,
                    done: false,
                    _in_flight: in_flight,
                    _load: load,
                }))
            };
            // Once the host closed the connection (the run ended), nothing
            // on it completes: do not wait for h2 to notice (it does not
            // always). A watch channel spreads the waiters over shards, so
            // many concurrent calls do not contend on one lock.
            tokio::select! {
                biased;
                result = exchange => result,
                _ = closed.changed() => Err(ConnError::Closed),
            }
        })
    }
}

/// Why a request got no response from the connection, and whether the
/// plugin can have seen it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// Provably never processed: the connection refused a new stream (it was closed,
    /// failing or going away), the peer refused the stream (`REFUSED_STREAM`), or a
    /// graceful GOAWAY named a lower stream id.
    #[error("request not processed by the plugin: {0}")]
    NotProcessed(#[source] h2::Error),
    /// The connection failed after the request was (perhaps partly) written:
    /// the plugin may have processed it.
    #[error("connection failed after sending: {0}")]
    MaybeProcessed(#[source] h2::Error),
    /// The host closed the connection under the request (the plugin's run
    /// ended): the plugin may have processed it.
    #[error("the plugin's run ended under the call; the host closed its connection")]
    Closed,
    /// The host had closed the connection before the request was sent: never processed.
    #[error("not sent: the host had closed the connection (the plugin's run ended)")]
    ClosedUnsent,
    /// The connection was retired (its process is being replaced) before the request
    /// was sent: never processed.
    #[error("not sent: the connection was retired (the plugin is being replaced)")]
    Retired,
    /// The request's own body failed (nothing of it, or not all of it, was sent).
    #[error("the request's body failed: {0}")]
    Request(#[source] tonic::Status),
    /// h2 refused the request itself (say, a URI without scheme and authority): nothing
    /// was sent, and sending it again would fail the same way.
    #[error("the request cannot be sent: {0}")]
    Malformed(#[source] h2::Error),
}

impl ConnError {
    fn unsent(error: send::SendError) -> Self {
        match error {
            // The connection's own state (failed, closing, gone away): another may take it.
            send::SendError::Connection(e)
                if e.is_io()
                    || e.is_go_away()
                    || e.is_reset()
                    || e.is_remote()
                    || e.is_library() =>
            {
                ConnError::NotProcessed(e)
            }
            send::SendError::Connection(e) => ConnError::Malformed(e),
            send::SendError::Body(e) => ConnError::Request(e),
        }
    }

    fn classify(error: h2::Error) -> Self {
        if refused(&error) {
            ConnError::NotProcessed(error)
        } else {
            ConnError::MaybeProcessed(error)
        }
    }

    /// Whether the plugin provably never processed the request.
    pub(crate) fn not_processed(&self) -> bool {
        matches!(
            self,
            ConnError::NotProcessed(_) | ConnError::Retired | ConnError::ClosedUnsent
        )
    }
}

/// RFC 9113 §8.7: a stream reset with `REFUSED_STREAM`, or above the last
/// stream id of a graceful GOAWAY (`NO_ERROR`; streams at or below it run on),
/// was not processed. A GOAWAY with an error code ends every stream with that
/// error, the processed ones included, so it proves nothing.
fn refused(h2: &h2::Error) -> bool {
    match h2.reason() {
        Some(h2::Reason::REFUSED_STREAM) => h2.is_reset() || h2.is_go_away(),
        Some(h2::Reason::NO_ERROR) => h2.is_go_away() && h2.is_remote(),
        _ => false,
    }
}
