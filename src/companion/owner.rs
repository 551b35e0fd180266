//! The companion's owner task: the only writer of its snapshot. It joins the
//! supervisor's state with the connection each ready run hands over (by
//! run id), redials the connection of a live process when a call saw it fail,
//! records health, and carries out commands, resolving each once the
//! snapshot shows its effect. Destroy is terminal.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt as _, stream::FuturesUnordered};
use supervisor::BoxFuture;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until},
};

use super::hooks::Incarnation;
use supervisor::deadline;

use crate::{
    call::admission::Admission,
    command::{Command, Gone, Inbox, Nudge, Order},
    config::{BackoffConfig, HealthConfig},
    conn::{Conn, Dest},
    link,
    snapshot::{Linked, Publisher, Snapshot},
    status::{Health, PluginState},
};

pub(super) struct Owner {
    pub(super) name: String,
    pub(super) job: supervisor::Job,
    pub(super) stop_grace: Duration,
    pub(super) drain_timeout: Duration,
    pub(super) health: HealthConfig,
    pub(super) admission: Arc<Admission>,
    pub(super) inbox: Inbox,
    pub(super) ready_rx: mpsc::UnboundedReceiver<Incarnation>,
    pub(super) health_rx: mpsc::Receiver<Result<(), String>>,
    /// Why each ended run never became ready (`None`: it did), sent before
    /// the supervisor publishes the state that follows the run.
    pub(super) start_rx: mpsc::UnboundedReceiver<Option<String>>,
    pub(super) publisher: Publisher,
}

/// The run whose connection the owner holds.
struct Current {
    incarnation: Incarnation,
    /// The connection in use (the handshake's, or a redial's).
    conn: Option<Conn>,
    generation: u64,
    /// The supervisor has been seen running this run.
    seen_running: bool,
    /// Failed redials in a row, while redialing.
    redials: u32,
}

impl Current {
    /// The run is over (or its connection replaced): end its connections, so
    /// calls still waiting on them fail now instead of at their deadline.
    fn close(&self) {
        self.incarnation.conn.close();
        if let Some(conn) = &self.conn {
            conn.close();
        }
    }
}

type Ack = oneshot::Sender<Result<(), Gone>>;

/// A redial of the current run's address: its run id and the result.
type Redial = BoxFuture<'static, (u64, Result<Conn, String>)>;

impl Owner {
    pub(super) async fn run(mut self) {
        let mut sup = self.job.state();
        let mut current: Option<Current> = None;
        let mut generation = 0u64;
        // Commands whose supervisor ticket is pending, then those done and
        // to acknowledge once the snapshot shows their effect.
        let mut pending: FuturesUnordered<BoxFuture<'static, Ack>> = FuturesUnordered::new();
        let mut done_acks: Vec<Ack> = Vec::new();
        let mut redial: Option<Redial> = None;
        let mut checking: Option<BoxFuture<'static, (u64, bool)>> = None;
        let mut redial_at: Option<Instant> = None;
        let redial_backoff = BackoffConfig::REMOTE_DEFAULT
            .to_backoff()
            .unwrap_or_default();
        let mut rng = fastrand::Rng::new();
        // Why the last run that ended never became ready.
        let mut start_failure: Option<String> = None;
        loop {
            let state = sup.borrow_and_update().clone();
            // Sent before `state` was published: the failure it follows is known.
            while let Ok(why) = self.start_rx.try_recv() {
                start_failure = why;
            }
            self.forget_ended_run(&state, &mut current, &mut redial);
            self.publish(&state, current.as_ref(), start_failure.as_deref());
            for ack in done_acks.drain(..) {
                let _ = ack.send(Ok(()));
            }
            tokio::select! {
                changed = sup.changed() => if changed.is_err() { break },
                Some(incarnation) = self.ready_rx.recv() => {
                    // It passed a health check on its way here.
                    self.publisher.update(|s| s.health = Health::Healthy);
                    generation += 1;
                    redial = None;
                    redial_at = None;
                    checking = None;
                    if let Some(old) = &current {
                        old.close();
                    }
                    current = Some(Current {
                        conn: Some(incarnation.conn.clone()),
                        incarnation,
                        generation,
                        seen_running: false,
                        redials: 0,
                    });
                }
                // Acknowledged at the top of the loop, after publishing.
                Some(ack) = pending.next() => done_acks.push(ack),
                order = self.inbox.orders.recv() => {
                    let Some(Order { command, done }) = order else { break };
                    let ticket = match command {
                        Command::Enable => self.job.enable(),
                        Command::Disable => self.job.disable(self.stop_grace),
                        Command::Restart => self.job.restart(),
                        Command::Destroy => {
                            self.destroy(done, current.take()).await;
                            return;
                        }
                    };
                    pending.push(Box::pin(async move {
                        ticket.await;
                        done
                    }));
                }
                Some(nudge) = self.inbox.nudges.recv() => {
                    if let (Nudge::Suspect(g), Some(c)) = (nudge, current.as_ref())
                        && g == c.generation
                        && checking.is_none()
                        && redial.is_none()
                        && let Some(conn) = c.conn.clone()
                    {
                        // A call saw this connection fail: one probe (not
                        // blocking the owner) decides; a closed one fails it.
                        let within = self.health.timeout;
                        checking = Some(Box::pin(async move {
                            let healthy = !conn.is_closed() && link::probe(conn, within).await.is_ok();
                            (g, healthy)
                        }));
                    }
                }
                (g, healthy) = poll_opt(&mut checking) => {
                    checking = None;
                    if let Some(c) = current.as_mut().filter(|c| c.generation == g && !healthy)
                        && let Some(conn) = c.conn.take()
                    {
                        tracing::warn!(plugin = %self.name, pid = c.incarnation.pid, "connection to the plugin failed; redialing");
                        conn.close();
                        redial = Some(self.redial(c));
                    }
                }
                (run, result) = poll_opt(&mut redial) => {
                    redial = None;
                    if let Some(c) = current.as_mut().filter(|c| c.incarnation.run == run) {
                        match result {
                            Ok(conn) => {
                                generation += 1;
                                c.generation = generation;
                                c.conn = Some(conn);
                                c.redials = 0;
                            }
                            Err(error) => {
                                c.redials = c.redials.saturating_add(1);
                                tracing::debug!(plugin = %self.name, attempt = c.redials, %error, "redial failed");
                                self.publisher.update(|s| s.last_error = Some(error));
                                redial_at = Some(deadline(Instant::now(), redial_backoff.delay(c.redials, &mut rng)));
                            }
                        }
                    }
                }
                () = sleep_opt(redial_at) => {
                    redial_at = None;
                    if let Some(c) = current.as_mut() {
                        redial = Some(self.redial(c));
                    }
                }
                Some(result) = self.health_rx.recv() => {
                    self.publisher.update(|s| {
                        s.health = match (result, &s.health) {
                            (Ok(()), _) => Health::Healthy,
                            (Err(error), Health::Unhealthy { failures, .. }) => Health::Unhealthy { failures: failures + 1, error },
                            (Err(error), _) => Health::Unhealthy { failures: 1, error },
                        };
                    });
                }
            }
        }
    }

    fn redial(&self, c: &Current) -> Redial {
        let run = c.incarnation.run;
        let dest = Dest::from(&c.incarnation.addr);
        let within = self.health.timeout;
        Box::pin(async move { (run, link::dial(&dest, within, None, within).await) })
    }

    /// Drops the connection of a run that has ended (or is not the one the
    /// supervisor runs), so nothing stale is published.
    fn forget_ended_run(
        &self,
        state: &supervisor::State,
        current: &mut Option<Current>,
        redial: &mut Option<Redial>,
    ) {
        use supervisor::State as S;
        let Some(c) = current.as_mut() else { return };
        let keep = match state {
            S::Running { run, .. } if *run == c.incarnation.run => {
                c.seen_running = true;
                true
            }
            S::Stopping { run: Some(run), .. } => *run == c.incarnation.run,
            // The next run's connection may arrive before its Running.
            S::Starting { .. } => !c.seen_running,
            _ => false,
        };
        if !keep {
            c.close();
            *current = None;
            *redial = None;
        }
    }

    /// The snapshot for the supervisor's `state` and the current run;
    /// `start_failure` says why the last run never became ready.
    fn publish(
        &self,
        state: &supervisor::State,
        current: Option<&Current>,
        start_failure: Option<&str>,
    ) {
        use supervisor::State as S;
        let stats = self.job.stats();
        let live = current.filter(|c| state.run() == Some(c.incarnation.run));
        let plugin_state = match state {
            S::Starting { attempt } => PluginState::Starting { attempt: *attempt },
            S::Running { .. } => match live {
                Some(c) if c.conn.is_some() => PluginState::Ready,
                Some(c) => PluginState::Connecting { attempt: c.redials },
                _ => PluginState::Starting { attempt: 0 },
            },
            S::BackingOff {
                attempt,
                until,
                last_exit,
                ..
            } => PluginState::BackingOff {
                attempt: *attempt,
                until: *until,
                last_exit: last_exit.clone(),
            },
            S::Stopping { .. } => PluginState::Stopping,
            S::Stopped => PluginState::Stopped,
            S::Disabled => PluginState::Disabled,
            S::Failed { reason } => PluginState::Failed {
                reason: reason.clone(),
            },
            S::Destroyed => PluginState::Destroyed,
            _ => PluginState::Stopped,
        };
        self.publisher.update(|s: &mut Snapshot| {
            s.link = match (live, s.link.take()) {
                (Some(c), Some(l)) if c.conn.is_some() && l.generation == c.generation => Some(l),
                (Some(c), _) => c.conn.clone().map(|conn| Linked::new(conn, c.generation)),
                (None, _) => None,
            };
            if let Some(c) = live {
                s.generation = c.generation;
                s.pid = Some(c.incarnation.pid);
                s.address = Some(c.incarnation.addr.to_string().into());
            } else {
                s.pid = stats.pid;
                s.address = None;
                s.health = Health::Unknown;
            }
            s.run = live.map(|c| c.incarnation.run).or_else(|| state.run());
            s.restarts = stats.restarts;
            s.cpus = stats.cpus.clone();
            let last_exit = match state {
                S::BackingOff { last_exit, .. } => Some(last_exit),
                S::Failed { reason } => reason.last_exit.as_ref(),
                _ => None,
            };
            if let Some(last_exit) = last_exit {
                s.last_error =
                    Some(start_failure.map_or_else(|| last_exit.to_string(), str::to_owned));
            }
            s.last_exit = stats.last_exit.clone();
            s.state = plugin_state;
        });
    }

    /// Terminal: refuse new calls (waiting ones wake and fail), drain, stop
    /// the process gracefully, publish `Destroyed`. Commands after this find
    /// the owner gone and get `Destroyed`.
    async fn destroy(&mut self, done: Ack, current: Option<Current>) {
        self.publisher.set_state(PluginState::Destroying);
        if !self.admission.drain(self.drain_timeout).await {
            tracing::warn!(plugin = %self.name, timeout = %supervisor::HumanDuration(self.drain_timeout), "calls still in flight after the drain timeout; stopping anyway");
        }
        self.job.destroy(self.stop_grace).await;
        if let Some(current) = current {
            current.close();
        }
        let stats = self.job.stats();
        self.publisher.update(|s| {
            s.state = PluginState::Destroyed;
            s.link = None;
            s.pid = None;
            s.run = None;
            s.address = None;
            s.health = Health::Unknown;
            s.last_exit = stats.last_exit.clone();
        });
        let _ = done.send(Ok(()));
        self.inbox.orders.close();
        while let Ok(Order { done, .. }) = self.inbox.orders.try_recv() {
            let _ = done.send(Err(Gone));
        }
    }
}

/// Polls the future in `slot`, or waits forever when there is none.
async fn poll_opt<F: std::future::Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    match slot {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
