//! [`PluginHandle`]: calls by handle, status, enable/disable/restart, destroy.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use prost::Name;
use tokio::{
    sync::{RwLock, watch},
    time::{Instant, timeout_at},
};
use tracing::Instrument as _;

use crate::{
    Error, codec,
    companion::Companion,
    link::{self, Link},
    proto::polaris::{Request, Response},
    remote::Remote,
    status::{Mode, PluginState, PluginStatus},
};

/// A handle on one configured plugin. Cheap to clone; every clone is the same
/// plugin. Dropping the last handle (and the registry) stops a companion's
/// process.
#[derive(Debug, Clone)]
pub struct PluginHandle(Arc<Shared>);

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) call_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    /// Published by the plugin's owner task; read by every call.
    pub(crate) link: watch::Receiver<Link>,
    /// Calls hold a read guard while in flight; destroy takes the write guard
    /// to wait for them (drain) and to refuse new ones.
    pub(crate) gate: RwLock<()>,
    /// Calls in flight, for status.
    pub(crate) in_flight: AtomicUsize,
    pub(crate) destroyed: AtomicBool,
    pub(crate) backend: Backend,
}

/// The transport behind a handle.
#[derive(Debug)]
pub(crate) enum Backend {
    Companion(Companion),
    Remote(Remote),
}

impl PluginHandle {
    pub(crate) fn new(shared: Shared) -> Self {
        PluginHandle(Arc::new(shared))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Companion or remote.
    pub fn mode(&self) -> Mode {
        match self.0.backend {
            Backend::Companion(_) => Mode::Companion,
            Backend::Remote(_) => Mode::Remote,
        }
    }

    /// Calls the plugin. While it is starting, restarting or reconnecting,
    /// waits for it up to the call timeout. A call whose connection broke
    /// (the plugin crashed, or a remote server went away) is retried on the
    /// next connection within the same timeout.
    pub async fn call(&self, request: Request) -> Result<Response, Error> {
        let shared = &*self.0;
        let Ok(_in_flight) = shared.gate.try_read() else {
            return Err(self.destroyed());
        };
        if shared.destroyed.load(Ordering::Acquire) {
            return Err(self.destroyed());
        }
        let _counted = InFlight::enter(&shared.in_flight);
        let span = tracing::debug_span!(
            "plugin_call",
            plugin = %shared.name,
            outcome = tracing::field::Empty,
            micros = tracing::field::Empty
        );
        let started = (!span.is_disabled()).then(std::time::Instant::now);
        let result = self.call_inner(request).instrument(span.clone()).await;
        if let Some(started) = started {
            span.record("micros", started.elapsed().as_micros() as u64);
            match &result {
                Ok(_) => span.record("outcome", "ok"),
                Err(e) => span.record("outcome", tracing::field::display(e)),
            };
        }
        result
    }

    async fn call_inner(&self, request: Request) -> Result<Response, Error> {
        let shared = &*self.0;
        let started = Instant::now();
        let deadline = started + shared.call_timeout;
        let mut last_generation = None;
        // Attempt 1 on the current connection; after a connection error,
        // attempt 2 on the same one (enough when only the stream was reset; a
        // dead connection fails it at once), then attempt 3 once a new
        // connection is up.
        for attempt in 0..3 {
            let (mut client, generation) = match attempt {
                2 => self.ready_client(deadline, last_generation).await?,
                _ => self.ready_client(deadline, None).await?,
            };
            let reply = timeout_at(deadline, client.call(request.clone())).await;
            match reply {
                Err(_) => {
                    return Err(Error::Timeout {
                        plugin: shared.name.clone(),
                        timeout: shared.call_timeout,
                    });
                }
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if connection_broke(&status) && attempt < 2 => {
                    tracing::debug!(attempt, error = %status, "connection to the plugin broke; retrying");
                    self.suspect(generation);
                    last_generation = Some(generation);
                }
                Ok(Err(status)) => {
                    if connection_broke(&status) {
                        self.suspect(generation);
                    }
                    return Err(Error::Status {
                        plugin: shared.name.clone(),
                        status,
                    });
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// The current client, waiting (until `deadline`) while the plugin is not
    /// ready, or until a connection other than `not_generation` is up.
    async fn ready_client(
        &self,
        deadline: Instant,
        not_generation: Option<u64>,
    ) -> Result<(link::Client, u64), Error> {
        let shared = &*self.0;
        // Fast path: no clone of the receiver, no waiting.
        if let Link::Up { client, generation } = &*shared.link.borrow()
            && not_generation != Some(*generation)
        {
            return Ok((client.clone(), *generation));
        }
        let started = Instant::now();
        let mut link = shared.link.clone();
        loop {
            {
                let current = link.borrow_and_update();
                match &*current {
                    Link::Up { client, generation } if not_generation != Some(*generation) => {
                        return Ok((client.clone(), *generation));
                    }
                    Link::Up { .. } => {}
                    Link::Down { state, last_error } => match state {
                        PluginState::Disabled => {
                            return Err(Error::Disabled {
                                plugin: shared.name.clone(),
                            });
                        }
                        PluginState::Destroyed => return Err(self.destroyed()),
                        // Terminal: nothing will change without the host acting.
                        PluginState::Failed { .. } | PluginState::Stopped => {
                            return Err(Error::Unavailable {
                                plugin: shared.name.clone(),
                                state: state.clone(),
                                last_error: last_error.clone(),
                                waited: started.elapsed(),
                            });
                        }
                        _ => {}
                    },
                }
            }
            match timeout_at(deadline, link.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.destroyed()),
                Err(_) => {
                    let (state, last_error) = link.borrow().snapshot();
                    return Err(Error::Unavailable {
                        plugin: shared.name.clone(),
                        state,
                        last_error,
                        waited: started.elapsed(),
                    });
                }
            }
        }
    }

    /// Tells the owner task a call saw this connection break.
    fn suspect(&self, generation: u64) {
        if let Backend::Remote(remote) = &self.0.backend {
            remote.suspect(generation);
        }
    }

    fn destroyed(&self) -> Error {
        Error::Destroyed {
            plugin: self.0.name.clone(),
        }
    }

    /// Packs `request`, calls, and unpacks the reply as `Resp`.
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

    /// A snapshot of the plugin's state, pid, restarts, last exit, health and address.
    pub fn status(&self) -> PluginStatus {
        let shared = &*self.0;
        let (state, last_error) = shared.link.borrow().snapshot();
        let state = if shared.destroyed.load(Ordering::Acquire) {
            PluginState::Destroyed
        } else {
            state
        };
        let mut status = PluginStatus {
            name: shared.name.clone(),
            mode: self.mode(),
            state,
            pid: None,
            restarts: 0,
            last_exit: None,
            last_error,
            health: crate::status::Health::Unknown,
            address: None,
            cpus: None,
            in_flight: shared.in_flight.load(Ordering::Relaxed),
        };
        match &shared.backend {
            Backend::Companion(c) => c.fill_status(&mut status),
            Backend::Remote(r) => r.fill_status(&mut status),
        }
        status
    }

    /// CPU and memory figures of a companion's running process (`None` for a
    /// remote plugin, or while no process runs).
    pub fn resources(&self) -> Option<supervisor::Resources> {
        match &self.0.backend {
            Backend::Companion(c) => c.resources(),
            Backend::Remote(_) => None,
        }
    }

    /// Follows the plugin's state changes.
    pub fn watch(&self) -> StateWatch {
        StateWatch(self.0.link.clone())
    }

    /// Waits until the plugin is ready, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        self.ready_client(Instant::now() + timeout, None)
            .await
            .map(|_| ())
    }

    /// Stops the plugin and keeps it stopped; calls fail with
    /// [`Error::Disabled`] until [`enable`](Self::enable).
    pub async fn disable(&self) -> Result<(), Error> {
        self.check_not_destroyed()?;
        match &self.0.backend {
            Backend::Companion(c) => c.disable().await,
            Backend::Remote(r) => r.disable().await,
        }
        Ok(())
    }

    /// Starts a disabled plugin again.
    pub async fn enable(&self) -> Result<(), Error> {
        self.check_not_destroyed()?;
        match &self.0.backend {
            Backend::Companion(c) => c.enable().await,
            Backend::Remote(r) => r.enable().await,
        }
        Ok(())
    }

    /// Restarts a companion's process (gracefully), or reconnects a remote
    /// plugin. Resets the backoff.
    pub async fn restart(&self) -> Result<(), Error> {
        self.check_not_destroyed()?;
        match &self.0.backend {
            Backend::Companion(c) => c.restart().await,
            Backend::Remote(r) => r.restart().await,
        }
        Ok(())
    }

    /// The host's Destroy for this plugin: refuses new calls, lets in-flight
    /// calls finish up to the drain timeout, then stops a companion
    /// (Controller `Shutdown`, then SIGTERM and SIGKILL if it does not
    /// exit) or closes a remote plugin's connection. Idempotent.
    pub async fn destroy(&self) {
        let shared = &*self.0;
        shared.destroyed.store(true, Ordering::Release);
        let drained = tokio::time::timeout(shared.drain_timeout, shared.gate.write()).await;
        if drained.is_err() {
            tracing::warn!(plugin = %shared.name, timeout = ?shared.drain_timeout, "calls still in flight after the drain timeout; stopping anyway");
        }
        match &shared.backend {
            Backend::Companion(c) => c.destroy().await,
            Backend::Remote(r) => r.destroy().await,
        }
        // Keep refusing: hold no guard, the flag does it.
        drop(drained);
    }

    fn check_not_destroyed(&self) -> Result<(), Error> {
        if self.0.destroyed.load(Ordering::Acquire) {
            Err(self.destroyed())
        } else {
            Ok(())
        }
    }
}

/// Follows one plugin's [`PluginState`] ([`PluginHandle::watch`]).
#[derive(Debug, Clone)]
pub struct StateWatch(watch::Receiver<Link>);

impl StateWatch {
    /// The state now.
    pub fn current(&self) -> PluginState {
        self.0.borrow().state()
    }

    /// Waits for the next change and returns the new state; `None` once the
    /// plugin's owner task has ended (the registry was dropped).
    pub async fn changed(&mut self) -> Option<PluginState> {
        self.0.changed().await.ok()?;
        Some(self.0.borrow_and_update().state())
    }

    /// Waits until `pred` holds for the state (checked now, then on every
    /// change); returns that state, or `None` if the owner task ended first.
    pub async fn wait_for(
        &mut self,
        mut pred: impl FnMut(&PluginState) -> bool,
    ) -> Option<PluginState> {
        loop {
            let state = self.0.borrow_and_update().state();
            if pred(&state) {
                return Some(state);
            }
            self.0.changed().await.ok()?;
        }
    }
}

/// Whether a call failed because the connection failed (a status tonic made
/// from the connection's error: closed, reset, broken pipe), as opposed to a
/// status the plugin sent, which never carries a source.
fn connection_broke(status: &tonic::Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|e| e.is::<hyper::Error>() || e.is::<tonic::transport::Error>())
}

/// Counts a call in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
