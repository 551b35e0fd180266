//! [`PluginHandle`]: calls by handle, status, enable/disable/restart, destroy.
//! The handle reads the snapshot its plugin's owner task publishes and sends
//! it commands; it holds no plugin state of its own.

use std::{sync::Arc, time::Duration};

use prost::Name;
use tokio::{sync::watch, time::Instant};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use supervisor::deadline;

use crate::{
    Error,
    call::{Counters, Latency, LatencyHistogram, Reply, admission::Admission},
    channel::PluginChannel,
    codec,
    command::{Command, Mailbox, Refused},
    config::PluginConfig,
    proto::polaris::{Request, Response},
    reflection::{self, Description},
    snapshot::Snapshot,
    status::{Mode, PluginState, PluginStatus},
};

/// A handle on one configured plugin. Cheap to clone; every clone is the same
/// plugin. Dropping the last handle (and the registry) ends the plugin's
/// owner task and stops a companion's process.
///
/// The second field is what a pluggable plugin's reflection listed when its socket was
/// found (fixed for the handle's life: a replaced socket is a new plugin).
#[derive(Debug, Clone)]
pub struct PluginHandle(Arc<Shared>, Option<Arc<[String]>>);

/// What every clone of a handle shares: settings, the snapshot receiver, the
/// owner's mailbox, the call bound and counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) snapshot: watch::Receiver<Snapshot>,
    pub(crate) mailbox: Mailbox,
    pub(crate) admission: Arc<Admission>,
    pub(crate) counters: Counters,
    pub(crate) latency: Latency,
    /// The owner task; aborted when the last handle goes.
    pub(crate) _owner: AbortOnDropHandle<()>,
}

/// What a transport's `start` hands the handle.
pub(crate) struct Started {
    pub(crate) snapshot: watch::Receiver<Snapshot>,
    pub(crate) mailbox: Mailbox,
    pub(crate) owner: AbortOnDropHandle<()>,
}

impl PluginHandle {
    pub(crate) fn new(config: &PluginConfig, admission: Arc<Admission>, started: Started) -> Self {
        let mode = match config.kind {
            crate::config::PluginKind::Companion(_) => Mode::Companion,
            crate::config::PluginKind::Remote(_) => Mode::Remote,
        };
        Self::with_mode(config, mode, admission, started, None)
    }

    /// A pluggable plugin (a remote one at the socket found in the folder), with the
    /// services its reflection listed (`None`: it serves no reflection).
    pub(crate) fn pluggable(
        config: &PluginConfig,
        admission: Arc<Admission>,
        started: Started,
        services: Option<Vec<String>>,
    ) -> Self {
        Self::with_mode(
            config,
            Mode::Pluggable,
            admission,
            started,
            services.map(Into::into),
        )
    }

    fn with_mode(
        config: &PluginConfig,
        mode: Mode,
        admission: Arc<Admission>,
        started: Started,
        services: Option<Arc<[String]>>,
    ) -> Self {
        PluginHandle(
            Arc::new(Shared {
                name: config.name.clone(),
                mode,
                snapshot: started.snapshot,
                mailbox: started.mailbox,
                admission,
                counters: Counters::default(),
                latency: Latency::default(),
                _owner: started.owner,
            }),
            services,
        )
    }

    /// Whether `other` is a handle on the same plugin (not just one of the same name).
    pub(crate) fn same(&self, other: &PluginHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Companion, remote or pluggable.
    pub fn mode(&self) -> Mode {
        self.0.mode
    }

    /// The configured `call-timeout`: how long a call may take, waiting included.
    pub fn call_timeout(&self) -> Duration {
        self.0.call_timeout()
    }

    /// Calls the plugin and returns its reply, or the configured fallback
    /// when the plugin cannot answer (see [`call_reply`](Self::call_reply) to
    /// tell them apart).
    ///
    /// The contract (`docs/architecture.md`): at most `max-concurrent-calls`
    /// in flight and `max-queued-calls` waiting, else [`Error::Overloaded`]
    /// at once; while the plugin is starting or reconnecting the call waits
    /// (`on-unavailable: wait`) up to the call timeout, unless waiting cannot
    /// help; the remaining time travels as `grpc-timeout`; a request that
    /// provably never reached the plugin is sent again on the next
    /// connection, one that may have been processed only under
    /// `retry: at-least-once` (else [`Error::Transport`]). Dropping the
    /// future cancels the call's stream.
    pub async fn call(&self, request: Request) -> Result<Response, Error> {
        self.call_reply(request).await.map(Reply::into_response)
    }

    /// Like [`call`](Self::call), saying whether the plugin or its fallback answered.
    pub async fn call_reply(&self, request: Request) -> Result<Reply, Error> {
        self.call_inner(request, None).await
    }

    /// Like [`call_reply`](Self::call_reply) with a deadline of its own: `timeout` instead
    /// of the plugin's `call-timeout` (for a caller with less time, or an operator's call).
    pub async fn call_within(&self, request: Request, timeout: Duration) -> Result<Reply, Error> {
        self.call_inner(request, Some(timeout)).await
    }

    async fn call_inner(
        &self,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<Reply, Error> {
        let shared = &*self.0;
        let span = tracing::debug_span!(
            "plugin_call",
            plugin = %shared.name,
            outcome = tracing::field::Empty,
            micros = tracing::field::Empty
        );
        if span.is_disabled() {
            return shared.call(request, timeout).await;
        }
        let started = std::time::Instant::now();
        let result = shared.call(request, timeout).instrument(span.clone()).await;
        span.record("micros", started.elapsed().as_micros() as u64);
        match &result {
            Ok(Reply::Plugin(_)) => span.record("outcome", "ok"),
            Ok(Reply::Fallback { cause, .. }) => span.record(
                "outcome",
                tracing::field::display(format_args!("fallback: {cause}")),
            ),
            Err(e) => span.record("outcome", tracing::field::display(e)),
        };
        result
    }

    /// A gRPC channel to this plugin for any of its services, under the same contract as
    /// [`call`](Self::call): `RateLimiterClient::new(plugin.channel())` works with any
    /// tonic-generated client. Cheap; each clone keeps the plugin's handle alive. See
    /// [`PluginChannel`].
    pub fn channel(&self) -> PluginChannel {
        PluginChannel::new(self.0.clone())
    }

    /// What the plugin serves: its services and their descriptors, from its gRPC server
    /// reflection (v1, else v1alpha), or, when it serves none (go-plugin before 1.2, a
    /// plugin built on an older SDK), the descriptors bundled with this crate — the
    /// [`Source`](crate::reflection::Source) says which. Within the call timeout, under
    /// the call contract (through [`channel`](Self::channel)).
    pub async fn describe(&self) -> Result<Description, Error> {
        reflection::describe(self.channel(), self.call_timeout())
            .await
            .map_err(|status| Error::from_status(&self.0.name, status))
    }

    /// Calls the unary method `method` (`package.Service/Method`) with the JSON text
    /// `json` as its request, within `timeout`, through [`channel`](Self::channel); the
    /// reply as JSON with every field. `description` (from [`describe`](Self::describe),
    /// perhaps with descriptors added) gives the method's messages. A method it does not
    /// know or a request that does not read as its input is [`Error::Request`], never
    /// sent.
    pub async fn call_json(
        &self,
        description: &Description,
        method: &str,
        json: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, Error> {
        let request = |message: String| Error::Request {
            plugin: self.0.name.clone(),
            message,
        };
        let method = description.method(method).map_err(request)?;
        reflection::dynamic::request_from_json(&method.input(), json)
            .map_err(|status| request(status.message().to_owned()))?;
        reflection::call_json(self.channel(), &method, json, timeout)
            .await
            .map_err(|status| Error::from_status(&self.0.name, status))
    }

    /// Packs `request`, calls, and unpacks the reply (or the fallback) as `Resp`.
    pub async fn call_typed<Req, Resp>(&self, request: &Req) -> Result<Resp, Error>
    where
        Req: Name,
        Resp: Name + Default,
    {
        let reply = self.call(codec::marshal_request(request)).await?;
        codec::unmarshal_response(&reply).map_err(|source| Error::Codec {
            plugin: self.0.name.clone(),
            source,
        })
    }

    /// The plugin now: one read of the snapshot its owner publishes (state,
    /// run, pid, address, health, restarts, last exit, connection
    /// generation), plus calls in flight and calls by outcome.
    pub fn status(&self) -> PluginStatus {
        let shared = &*self.0;
        let s = shared.snapshot.borrow();
        PluginStatus {
            name: shared.name.clone(),
            mode: shared.mode,
            state: s.state.clone(),
            run: s.run,
            pid: s.pid,
            restarts: s.restarts,
            generation: s.generation,
            last_exit: s.last_exit.clone(),
            last_error: s.last_error.clone(),
            health: s.health.clone(),
            address: s.address.as_deref().map(str::to_owned),
            cpus: s.cpus.clone(),
            in_flight: shared.admission.in_flight(),
            calls: shared.counters.get(),
            latency: shared.latency.recent(),
            others: s.others.clone(),
            upgrades: s.upgrades.clone(),
            endpoints: s.endpoints(),
            services: self.1.as_deref().map(<[String]>::to_vec),
        }
    }

    /// Every call's latency since the plugin was configured, as histogram buckets (for
    /// exporting; [`status`](Self::status) has the last minute's p50 and p99).
    pub fn call_latency(&self) -> LatencyHistogram {
        self.0.latency.histogram()
    }

    /// The companion's last stderr lines (the supervisor keeps a bounded tail); empty for
    /// a remote plugin.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.job()
            .map(|job| job.stats().stderr_tail)
            .unwrap_or_default()
    }

    /// CPU and memory figures of a companion's running process (`None` for a
    /// remote plugin, or while no process runs).
    pub fn resources(&self) -> Option<supervisor::Resources> {
        self.job().as_ref().and_then(supervisor::Job::resources)
    }

    /// The companion's serving supervisor job (it changes with a blue/green upgrade).
    fn job(&self) -> Option<supervisor::Job> {
        self.0.snapshot.borrow().job.clone()
    }

    /// Follows the plugin's state changes.
    pub fn watch(&self) -> StateWatch {
        StateWatch(self.0.snapshot.clone())
    }

    /// Waits until the plugin is ready, at most `timeout`; fails at once when
    /// it cannot become ready by itself (disabled, failed, stopped, destroyed).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let now = Instant::now();
        self.0
            .ready_conn(now, deadline(now, timeout), None)
            .await
            .map(|_| ())
    }

    /// Stops the plugin and keeps it stopped (a remote plugin's connection is
    /// closed); calls fail with [`Error::Disabled`] until
    /// [`enable`](Self::enable). Returns once the state says `Disabled`.
    pub async fn disable(&self) -> Result<(), Error> {
        self.order(Command::Disable).await
    }

    /// Starts a disabled plugin again. Returns once the state has left
    /// `Disabled` (calls then wait for readiness).
    pub async fn enable(&self) -> Result<(), Error> {
        self.order(Command::Enable).await
    }

    /// Restarts a companion's process (gracefully), or reconnects a remote
    /// plugin. Resets the backoff. Returns once the old process is gone (or
    /// the old connection closed) and the new start has begun.
    pub async fn restart(&self) -> Result<(), Error> {
        self.order(Command::Restart).await
    }

    /// The host's Destroy for this plugin, terminal: refuses new calls (and
    /// wakes calls waiting for readiness, which fail `Destroyed`), lets calls
    /// in flight finish up to the drain timeout, then stops a companion
    /// (Controller `Shutdown`, then SIGTERM and SIGKILL if it does not exit)
    /// or closes a remote plugin's connection. Later commands fail with
    /// [`Error::Destroyed`]. Idempotent; returns once the state is `Destroyed`.
    pub async fn destroy(&self) {
        let _ = self.0.mailbox.order(Command::Destroy).await;
    }

    /// Replaces the plugin's process without dropping a call (blue/green): a new process
    /// of the same binary path starts beside the serving one; once its handshake and
    /// first health check pass, new calls go to it, the old process finishes the calls it
    /// has (up to the drain timeout) and is stopped gracefully. If the new process does
    /// not become ready, it is stopped, the old one goes on serving, and the error says
    /// why (with its last stderr lines). A remote plugin dials a new connection first and
    /// switches to it the same way. Returns once the switch is done (or failed).
    pub async fn upgrade(&self) -> Result<(), Error> {
        self.order(Command::Upgrade(None)).await
    }

    /// [`upgrade`](Self::upgrade) to a new configuration of the same plugin (same name,
    /// same mode); the new call settings apply to calls that start after the switch.
    pub(crate) async fn upgrade_to(&self, config: PluginConfig) -> Result<(), Error> {
        self.order(Command::Upgrade(Some(Box::new(config)))).await
    }

    async fn order(&self, command: Command) -> Result<(), Error> {
        self.0
            .mailbox
            .order(command)
            .await
            .map_err(|refused| match refused {
                Refused::Gone => self.0.destroyed(),
                Refused::Failed(reason) => Error::Upgrade {
                    plugin: self.0.name.clone(),
                    reason,
                },
            })
    }
}

/// Follows one plugin's [`PluginState`] ([`PluginHandle::watch`]).
#[derive(Debug, Clone)]
pub struct StateWatch(watch::Receiver<Snapshot>);

impl StateWatch {
    /// The state now.
    pub fn current(&self) -> PluginState {
        self.0.borrow().state.clone()
    }

    /// Waits for the next change of state (or of connection) and returns the
    /// state; `None` once the plugin's owner task has ended.
    pub async fn changed(&mut self) -> Option<PluginState> {
        self.0.changed().await.ok()?;
        Some(self.0.borrow_and_update().state.clone())
    }

    /// Waits until `pred` holds for the state (checked now, then on every
    /// change); returns that state, or `None` if the owner task ended first.
    /// `pred` runs on a copy of the state, outside the channel's lock, so it
    /// may call [`PluginHandle::status`] (a predicate run under the lock would
    /// deadlock against the owner's next publish).
    pub async fn wait_for(
        &mut self,
        mut pred: impl FnMut(&PluginState) -> bool,
    ) -> Option<PluginState> {
        loop {
            let state = self.0.borrow_and_update().state.clone();
            if pred(&state) {
                return Some(state);
            }
            self.0.changed().await.ok()?;
        }
    }
}
