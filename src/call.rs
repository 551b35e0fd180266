//! One call's journey (the call contract, `docs/architecture.md`):
//!
//! 1. **Admission** ([`admission`]): a slot among `max-concurrent-calls`, or a
//!    place in the bounded queue; past it `Overloaded` at once.
//! 2. **Readiness**: the owner's snapshot. `Ready` → its client. Destroyed,
//!    disabled, failed, stopped, `fail-fast`, or a next start due after the
//!    deadline → fail at once. Otherwise wait for the snapshot to change,
//!    up to the deadline.
//! 3. **Send** with the remaining time as `grpc-timeout`. Dropping the call's
//!    future resets the stream.
//! 4. **Outcome** ([`outcome`]): a plugin's status is returned; a request that
//!    provably never reached the plugin is sent again on the next connection
//!    as often as the deadline allows; one that may have been processed only
//!    under `retry: at-least-once`.
//! 5. **Fallback**: when configured, it answers instead of an error that
//!    [`Error::allows_fallback`], and is counted.

pub(crate) mod admission;
mod counters;
pub(crate) mod grpc;
mod latency;
pub(crate) mod outcome;
pub(crate) mod request;

use std::time::Duration;

use supervisor::deadline;
use tokio::time::{Instant, timeout_at};

pub(crate) use self::counters::Counters;
pub(crate) use self::latency::Latency;
pub use self::latency::{LatencyHistogram, LatencySummary};
use self::{
    admission::{Refused, Slot},
    outcome::Attempt,
    request::Outgoing,
};
use crate::{
    Error,
    command::Nudge,
    config::{CallPolicy, Delivery, OnUnavailable},
    conn::{Conn, ConnError, GuardedBody},
    error::TransportError,
    plugin::Shared,
    proto::polaris::{Request, Response},
    snapshot::Snapshot,
    status::{Mode, PluginState},
};

/// Sends of a refused request on the same, still open connection before
/// waiting for the next one.
const SAME_CONNECTION_RETRIES: u32 = 3;

/// A call's answer: the plugin's reply, or the configured fallback standing
/// in for an error ([`PluginHandle::call_reply`](crate::PluginHandle::call_reply)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// The plugin answered.
    Plugin(Response),
    /// The plugin could not answer (`cause`); this is the plugin's configured
    /// `fallback`.
    Fallback {
        /// The fallback reply.
        response: Response,
        /// Why the plugin did not answer.
        cause: Error,
    },
}

impl Reply {
    /// The reply, whoever gave it.
    pub fn into_response(self) -> Response {
        match self {
            Reply::Plugin(r) | Reply::Fallback { response: r, .. } => r,
        }
    }

    /// Whether this is the fallback.
    pub fn is_fallback(&self) -> bool {
        matches!(self, Reply::Fallback { .. })
    }
}

/// What a call obeys, as configured: the owner publishes it in the snapshot, so a reload
/// changes it for the calls that start afterwards.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallSettings {
    /// `call-timeout`.
    pub(crate) timeout: Duration,
    /// Delivery, bounds, on-unavailable, fallback.
    pub(crate) policy: CallPolicy,
}

impl CallSettings {
    pub(crate) fn of(plugin: &crate::config::PluginConfig) -> Self {
        CallSettings {
            timeout: plugin.call_timeout,
            policy: plugin.call.clone(),
        }
    }
}

/// A unary answer read whole: its head, its trailers, its body.
pub(crate) type Whole = (http::response::Parts, Option<http::HeaderMap>, bytes::Bytes);

/// Reads an answer whole (for [`Shared::exchange`]): a connection that fails meanwhile
/// fails the attempt.
async fn read_whole(response: http::Response<GuardedBody>) -> Result<Whole, h2::Error> {
    use http_body_util::BodyExt as _;
    let (head, body) = response.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok((head, trailers, collected.to_bytes()))
}

/// Why one attempt got no answer.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// No response head: the connection says whether the plugin can have seen it.
    #[error(transparent)]
    Conn(ConnError),
    /// The connection failed while the answer was read: the plugin had answered.
    #[error("the connection failed while the reply was read: {0}")]
    Body(h2::Error),
}

impl Failure {
    fn attempt(&self) -> Attempt {
        match self {
            Failure::Conn(e) => Attempt::of(e),
            Failure::Body(_) => Attempt::MaybeProcessed,
        }
    }
}

impl From<Failure> for TransportError {
    fn from(failure: Failure) -> Self {
        TransportError::of(failure)
    }
}

/// One attempt: `request` on `conn`, its answer read by `read`.
async fn send<T, Fut>(
    mut conn: Conn,
    request: http::Request<tonic::body::Body>,
    read: impl FnOnce(http::Response<GuardedBody>) -> Fut,
) -> Result<T, Failure>
where
    Fut: std::future::Future<Output = Result<T, h2::Error>>,
{
    let response = tower::Service::call(&mut conn, request)
        .await
        .map_err(Failure::Conn)?;
    read(response).await.map_err(Failure::Body)
}

/// `proto.Plugin/Call` at the plugin's origin.
fn call_uri() -> http::Uri {
    http::Uri::from_static("http://plugin/proto.Plugin/Call")
}

/// How long to wait for the owner to publish a crash before reporting a
/// transport failure without the run's exit.
const EXIT_GRACE: Duration = Duration::from_millis(200);

impl Shared {
    /// The call timeout the owner published (a reload may change it).
    pub(crate) fn call_timeout(&self) -> Duration {
        self.snapshot.borrow().settings.timeout
    }

    /// The configured fallback reply, if any.
    pub(crate) fn fallback(&self) -> Option<Response> {
        let s = self.snapshot.borrow();
        s.settings
            .policy
            .fallback
            .as_ref()
            .map(|f| f.response.clone())
    }

    /// One `proto.Plugin/Call` within `timeout` (the plugin's call timeout when `None`).
    pub(crate) async fn call(
        &self,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<Reply, Error> {
        let started = std::time::Instant::now();
        // Copied out under one read of the snapshot: no shared reference count touched per
        // call. The fallback is looked up only when a call fails.
        let (timeout, delivery) = {
            let s = self.snapshot.borrow();
            (
                timeout.unwrap_or(s.settings.timeout),
                s.settings.policy.delivery,
            )
        };
        let result = self.unary(&request, timeout, delivery).await;
        self.latency.record(started.elapsed());
        self.counters.record(&result);
        match result {
            Err(cause) if cause.allows_fallback() => match self.fallback() {
                Some(response) => {
                    tracing::debug!(plugin = %self.name, %cause, "answering with the fallback");
                    self.counters.fallback();
                    Ok(Reply::Fallback { response, cause })
                }
                None => Err(cause),
            },
            Err(e) => Err(e),
            Ok(response) => Ok(Reply::Plugin(response)),
        }
    }

    /// `proto.Plugin/Call` through [`exchange`](Self::exchange), reading the whole reply
    /// inside the attempt (so a connection that fails while the reply is read counts as
    /// that attempt's failure, and `at-least-once` sends the call again).
    async fn unary(
        &self,
        request: &Request,
        timeout: Duration,
        delivery: Delivery,
    ) -> Result<Response, Error> {
        let outgoing = Outgoing::unary(call_uri(), grpc::frame(request));
        let deadline = deadline(Instant::now(), timeout);
        let ((head, trailers, data), _slot) = self
            .exchange(&outgoing, timeout, deadline, delivery, read_whole)
            .await?;
        let status = |status| Error::Status {
            plugin: self.name.clone(),
            status,
        };
        let outcome = grpc::status_of(&head, trailers.as_ref());
        if outcome.code() != tonic::Code::Ok {
            return Err(status(outcome));
        }
        let message = grpc::unframe(data).map_err(status)?;
        <Response as prost::Message>::decode(message).map_err(|e| {
            status(tonic::Status::internal(format!(
                "the reply does not decode: {e}"
            )))
        })
    }

    /// Sends `outgoing` under the call contract: admission, readiness, the remaining time
    /// as `grpc-timeout`, sent again while it provably never reached the plugin (or, under
    /// `at-least-once`, when it may have), all before `deadline`. Each attempt's answer is
    /// read by `read` (its head only, or the whole of it: a failure while reading is that
    /// attempt's), and comes back with the call's admission slot, which the caller holds
    /// until it is done with the answer.
    pub(crate) async fn exchange<T, Fut>(
        &self,
        outgoing: &Outgoing,
        timeout: Duration,
        deadline: Instant,
        delivery: Delivery,
        read: impl Fn(http::Response<GuardedBody>) -> Fut,
    ) -> Result<(T, Slot<'_>), Error>
    where
        Fut: std::future::Future<Output = Result<T, h2::Error>>,
    {
        let started = Instant::now();
        let slot = match self.admission.enter(deadline).await {
            Ok(slot) => slot,
            Err(Refused::Overloaded) => {
                tokio::task::consume_budget().await;
                return Err(Error::Overloaded {
                    plugin: self.name.clone(),
                    limit: self.admission.max_concurrent(),
                    queued: self.admission.max_queued(),
                });
            }
            Err(Refused::TimedOut) => return Err(self.timeout(timeout)),
            Err(Refused::Closed) => {
                tokio::task::consume_budget().await;
                return Err(self.destroyed());
            }
        };
        let mut attempts = 0u32;
        let mut failed_generation = None;
        let mut same_connection = 0u32;
        loop {
            let (conn, generation) =
                match self.ready_conn(started, deadline, failed_generation).await {
                    Ok(ready) => ready,
                    Err(e) => {
                        // Fails at once without awaiting anything: let other tasks
                        // run when a caller retries in a loop.
                        tokio::task::consume_budget().await;
                        return Err(e);
                    }
                };
            let Some(request) =
                outgoing.attempt(deadline.saturating_duration_since(Instant::now()))
            else {
                return Err(Error::Transport {
                    plugin: self.name.clone(),
                    attempts,
                    delivery,
                    last_exit: None,
                    source: TransportError::new(
                        "the request's stream was already read by an attempt that failed, so it cannot be sent again",
                    ),
                });
            };
            attempts += 1;
            let failure = match timeout_at(deadline, send(conn, request, &read)).await {
                Err(_) => return Err(self.timeout(timeout)),
                Ok(Ok(answer)) => return Ok((answer, slot)),
                Ok(Err(failure)) => failure,
            };
            let attempt = failure.attempt();
            if !matches!(attempt, Attempt::Retired | Attempt::Refused) {
                // The owner retired that connection itself; for others it checks (a
                // refused request says nothing about its connection).
                self.mailbox.nudge(Nudge::Suspect(generation));
            }
            if attempt.retry(delivery) {
                tracing::debug!(plugin = %self.name, attempts, ?attempt, error = %failure, "sending the call again");
                // A refused stream on a live connection (the plugin's stream
                // limit) may go again on it, a few times; otherwise wait for
                // the next connection.
                if matches!(attempt, Attempt::MaybeProcessed | Attempt::Retired)
                    || self.connection_closed(generation)
                    || same_connection >= SAME_CONNECTION_RETRIES
                {
                    failed_generation = Some(generation);
                } else {
                    same_connection += 1;
                    tokio::task::yield_now().await;
                }
                continue;
            }
            return Err(self
                .transport(failure.into(), attempts, generation, deadline, delivery)
                .await);
        }
    }

    /// The connection of a ready plugin that is not `failed`, waiting for one (until
    /// `deadline`) when waiting can help.
    pub(crate) async fn ready_conn(
        &self,
        started: Instant,
        deadline: Instant,
        failed: Option<u64>,
    ) -> Result<(Conn, u64), Error> {
        // Fast path: no clone of the receiver, no waiting; one clone of the
        // connection handle, nothing else.
        if let Some(linked) = self.snapshot.borrow().ready_link(failed)
            && failed != Some(linked.generation)
        {
            return Ok((linked.conn.clone(), linked.generation));
        }
        let mut snapshot = self.snapshot.clone();
        let mut nudged = false;
        loop {
            {
                let now = snapshot.borrow_and_update();
                if let Some(linked) = now.ready_link(failed)
                    && failed != Some(linked.generation)
                {
                    return Ok((linked.conn.clone(), linked.generation));
                }
                match &now.state {
                    PluginState::Disabled => return Err(self.disabled()),
                    PluginState::Destroying | PluginState::Destroyed => {
                        return Err(self.destroyed());
                    }
                    PluginState::Failed { .. } | PluginState::Stopped => {
                        return Err(self.unavailable(&now.state, &now.last_error, started));
                    }
                    // The next start comes after the deadline: waiting cannot help.
                    PluginState::BackingOff { until, .. }
                        if Instant::from_std(*until) >= deadline =>
                    {
                        return Err(self.unavailable(&now.state, &now.last_error, started));
                    }
                    state => {
                        if !nudged {
                            self.mailbox.nudge(Nudge::Waiting);
                            nudged = true;
                        }
                        if now.settings.policy.on_unavailable == OnUnavailable::FailFast {
                            return Err(self.unavailable(state, &now.last_error, started));
                        }
                    }
                }
            }
            match timeout_at(deadline, snapshot.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.destroyed()),
                Err(_) => {
                    let now = snapshot.borrow();
                    return Err(self.unavailable(&now.state, &now.last_error, started));
                }
            }
        }
    }

    /// Whether connection `generation` is closed (or no longer published).
    fn connection_closed(&self, generation: u64) -> bool {
        match &self.snapshot.borrow().link {
            Some(l) if l.generation == generation => l.conn.is_closed(),
            _ => true,
        }
    }

    /// A transport failure, with the plugin's last exit when its run ended
    /// under the call (waits briefly for the owner to see the crash).
    async fn transport(
        &self,
        source: TransportError,
        attempts: u32,
        generation: u64,
        deadline: Instant,
        delivery: Delivery,
    ) -> Error {
        let last_exit = match self.mode {
            Mode::Remote | Mode::Pluggable => None,
            Mode::Companion => {
                // The run is over once the state leaves Ready and Connecting.
                let mut snapshot = self.snapshot.clone();
                let until = deadline.min(Instant::now() + EXIT_GRACE);
                let ended = |s: &Snapshot| {
                    !matches!(s.state, PluginState::Ready | PluginState::Connecting { .. })
                        && s.link.as_ref().is_none_or(|l| l.generation != generation)
                };
                match timeout_at(until, snapshot.wait_for(ended)).await {
                    Ok(Ok(s)) => s.last_exit.clone(),
                    _ => None,
                }
            }
        };
        Error::Transport {
            plugin: self.name.clone(),
            attempts,
            delivery,
            last_exit,
            source,
        }
    }

    fn unavailable(
        &self,
        state: &PluginState,
        last_error: &Option<String>,
        started: Instant,
    ) -> Error {
        Error::Unavailable {
            plugin: self.name.clone(),
            state: Box::new(state.clone()),
            last_error: last_error.clone(),
            waited: started.elapsed(),
        }
    }

    fn timeout(&self, timeout: Duration) -> Error {
        Error::Timeout {
            plugin: self.name.clone(),
            timeout,
        }
    }

    pub(crate) fn disabled(&self) -> Error {
        Error::Disabled {
            plugin: self.name.clone(),
        }
    }

    pub(crate) fn destroyed(&self) -> Error {
        Error::Destroyed {
            plugin: self.name.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
