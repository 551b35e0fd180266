//! The companion's owner task: the only writer of its snapshot. It joins the
//! supervisor's state with the connection each ready run hands over (by
//! run id), redials the connection of a live process when a call saw it fail,
//! records health, and carries out commands, resolving each once the
//! snapshot shows its effect. Destroy is terminal.
//!
//! An upgrade is blue/green: a candidate line (a second supervisor job, with the new
//! configuration when one is given) starts beside the serving one; once its handshake and
//! first health check pass, new calls go to it, and the old line retires: its connection
//! lets its calls in flight finish (up to the drain timeout) and takes no new one, then
//! the old process is stopped gracefully. A candidate that fails to become ready is
//! stopped; the old line goes on serving and the upgrade reports why.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt as _, stream::FuturesUnordered};
use supervisor::BoxFuture;
use tokio::{
    sync::oneshot,
    time::{Instant, sleep_until},
};

use super::{
    hooks::{Incarnation, RunEnd},
    limits,
    line::Line,
    watch::{Verdict, Watcher},
};
use supervisor::{RunIds, deadline};

use crate::{
    call::{CallSettings, admission::Admission},
    command::{Command, GONE, Inbox, Nudge, Order, Refused},
    config::{BackoffConfig, CompanionConfig, PluginConfig, PluginKind},
    conn::{Conn, Dest},
    events::EventKind,
    link,
    snapshot::{Linked, Publisher, Snapshot},
    status::{Health, OtherRun, PluginState, RunRole},
};

pub(super) struct Owner {
    pub(super) name: String,
    /// The configuration the serving line runs.
    pub(super) plugin: PluginConfig,
    /// Run ids, one sequence for every line.
    pub(super) runs: RunIds,
    /// The serving line.
    pub(super) line: Line,
    pub(super) admission: Arc<Admission>,
    pub(super) inbox: Inbox,
    pub(super) publisher: Publisher,
    /// The binary watch (`companion.watch`); follows the configuration.
    pub(super) watcher: Watcher,
}

/// A candidate line starting beside the serving one.
struct Upgrade {
    line: Line,
    config: PluginConfig,
    /// Whom to tell how it ended.
    done: Vec<Ack>,
    /// Why its last run never became ready.
    why: Option<String>,
    /// The backstop: the supervisor bounds each start by itself.
    deadline: Instant,
    /// Started by the binary watch (not by a command).
    by_watch: bool,
}

/// An old line finishing its calls, then stopping; how its last run ended.
type Retiring = BoxFuture<'static, Option<RunEnd>>;

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
    fn new(incarnation: Incarnation, generation: u64) -> Self {
        Current {
            conn: Some(incarnation.conn.clone()),
            incarnation,
            generation,
            seen_running: false,
            redials: 0,
        }
    }

    /// The run is over (or its connection replaced): end its connections, so
    /// calls still waiting on them fail now instead of at their deadline.
    fn close(&self) {
        self.incarnation.conn.close();
        if let Some(conn) = &self.conn {
            conn.close();
        }
    }
}

type Ack = oneshot::Sender<Result<(), Refused>>;

/// The companion settings of a companion plugin's configuration.
fn companion_of(plugin: &PluginConfig) -> Option<&CompanionConfig> {
    match &plugin.kind {
        PluginKind::Companion(c) => Some(c),
        PluginKind::Remote(_) => None,
    }
}

/// A redial of the current run's address: its run id and the result.
type Redial = BoxFuture<'static, (u64, Result<Conn, String>)>;

impl Owner {
    pub(super) async fn run(mut self) {
        let mut current: Option<Current> = None;
        let mut generation = 0u64;
        // Commands whose supervisor ticket is pending, then those done and
        // to acknowledge once the snapshot shows their effect.
        let mut pending: FuturesUnordered<BoxFuture<'static, Ack>> = FuturesUnordered::new();
        let mut done_acks: Vec<(Ack, Result<(), Refused>)> = Vec::new();
        let mut redial: Option<Redial> = None;
        let mut checking: Option<BoxFuture<'static, (u64, bool)>> = None;
        let mut redial_at: Option<Instant> = None;
        let redial_backoff = BackoffConfig::REMOTE_DEFAULT
            .to_backoff()
            .unwrap_or_default();
        let mut rng = fastrand::Rng::new();
        // Why the last run that ended never became ready, and the line that shows it hit a
        // resource limit.
        let mut start_failure: Option<String> = None;
        let mut limit_line: Option<String> = None;
        let mut upgrade: Option<Upgrade> = None;
        let mut retiring: FuturesUnordered<Retiring> = FuturesUnordered::new();
        // Runs of retired lines (restarts counted before the serving line's own).
        let mut restarts_before = 0u64;
        loop {
            if upgrade.is_none() {
                self.watcher.upgrade_ended();
            }
            let state = self.line.sup.borrow_and_update().clone();
            // Sent before `state` was published: the failure it follows is known.
            while let Ok(end) = self.line.ended_rx.try_recv() {
                start_failure = end.why.clone();
                limit_line = end.limit_line.clone();
                self.exited(&end);
            }
            self.forget_ended_run(&state, &mut current, &mut redial);
            self.publish(
                &state,
                current.as_ref(),
                (start_failure.as_deref(), limit_line.as_deref()),
                restarts_before,
            );
            for (ack, result) in done_acks.drain(..) {
                let _ = ack.send(result);
            }
            tokio::select! {
                changed = self.line.sup.changed() => if changed.is_err() { break },
                Some(incarnation) = self.line.ready_rx.recv() => {
                    // It passed a health check on its way here.
                    self.publisher.update(|s| s.health = Health::Healthy);
                    generation += 1;
                    redial = None;
                    redial_at = None;
                    checking = None;
                    if let Some(old) = &current {
                        old.close();
                    }
                    current = Some(Current::new(incarnation, generation));
                }
                // Acknowledged at the top of the loop, after publishing.
                Some(ack) = pending.next() => done_acks.push((ack, Ok(()))),
                order = self.inbox.orders.recv() => {
                    let Some(Order { command, done }) = order else { break };
                    let ticket = match command {
                        Command::Enable => self.line.job.enable(),
                        Command::Disable => self.line.job.disable(self.companion().stop_grace),
                        Command::Restart => self.line.job.restart(),
                        Command::Upgrade(config) => {
                            match self.begin_upgrade(&state, config, &mut upgrade) {
                                Ok(()) => {
                                    if let Some(u) = upgrade.as_mut() {
                                        u.done.push(done);
                                    }
                                }
                                Err(why) => {
                                    let _ = done.send(Err(Refused::Failed(why)));
                                }
                            }
                            continue;
                        }
                        Command::Destroy => {
                            if let Some(u) = upgrade.take() {
                                retiring.push(self.fail_upgrade(u, "the plugin was destroyed".into()));
                            }
                            self.destroy(done, current.take(), retiring).await;
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
                        let within = self.plugin.health.timeout;
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
                Some(result) = self.line.health_rx.recv() => {
                    self.publisher.update(|s| {
                        s.health = match (result, &s.health) {
                            (Ok(()), _) => Health::Healthy,
                            (Err(error), Health::Unhealthy { failures, .. }) => Health::Unhealthy { failures: failures + 1, error },
                            (Err(error), _) => Health::Unhealthy { failures: 1, error },
                        };
                    });
                }
                // The candidate: ready (take over), or not (give up).
                event = candidate(&mut upgrade) => match event {
                Candidate::Ready(incarnation) => {
                    let Some(u) = upgrade.take() else { continue };
                    if matches!(state, supervisor::State::Disabled) {
                        // Disabled while the candidate started: it does not enable the plugin.
                        retiring.push(self.fail_upgrade(u, "the plugin was disabled meanwhile".into()));
                        continue;
                    }
                    generation += 1;
                    redial = None;
                    redial_at = None;
                    checking = None;
                    restarts_before += self.line.job.stats().restarts;
                    let old_state = state.clone();
                    let old_line = std::mem::replace(&mut self.line, u.line);
                    self.plugin = u.config;
                    self.admission.set_limits(self.plugin.call.max_concurrent.get(), self.plugin.call.max_queued);
                    let old = current.replace(Current::new(incarnation, generation));
                    start_failure = None;
                    limit_line = None;
                    tracing::info!(plugin = %self.name, from = ?old_state.run(), to = ?current.as_ref().map(|c| c.incarnation.run), by_watch = u.by_watch, "upgrade: the new process takes the calls; the old one finishes its calls and stops");
                    if let Some(companion) = companion_of(&self.plugin) {
                        self.watcher.follow(companion);
                    }
                    let settings = Arc::new(CallSettings::of(&self.plugin));
                    self.publisher.update(|s| {
                        s.settings = settings;
                        s.health = Health::Healthy;
                        s.upgrades.done += 1;
                        s.upgrades.last = Some((std::time::SystemTime::now(), None));
                        s.others = vec![OtherRun { role: RunRole::Retiring, run: old_state.run(), pid: old_state.pid() }];
                    });
                    self.publisher.event(EventKind::Upgraded, |e| {
                        e.run = current.as_ref().map(|c| c.incarnation.run);
                        e.pid = current.as_ref().map(|c| c.incarnation.pid);
                    });
                    retiring.push(self.retire(old_line, old, &old_state));
                    done_acks.extend(u.done.into_iter().map(|ack| (ack, Ok(()))));
                }
                Candidate::Changed(changed) => {
                    let Some(u) = upgrade.as_mut() else { continue };
                    while let Ok(end) = u.line.ended_rx.try_recv() {
                        self.exited(&end);
                        u.why = end.why.or(u.why.take());
                    }
                    let candidate = u.line.sup.borrow_and_update().clone();
                    let gave_up = match (&candidate, changed) {
                        (_, false) => Some("its supervisor ended".to_owned()),
                        (supervisor::State::BackingOff { last_exit, .. }, _) => Some(last_exit.to_string()),
                        (supervisor::State::Failed { reason }, _) => Some(reason.to_string()),
                        (supervisor::State::Stopped | supervisor::State::Destroyed, _) => Some("it stopped".to_owned()),
                        _ => None,
                    };
                    match gave_up {
                        Some(exit) => {
                            let Some(u) = upgrade.take() else { continue };
                            let why = u.why.clone().unwrap_or(exit);
                            retiring.push(self.fail_upgrade(u, why));
                        }
                        None => self.publisher.update(|s| {
                            s.others = vec![OtherRun { role: RunRole::Candidate, run: candidate.run(), pid: candidate.pid() }];
                        }),
                    }
                }
                Candidate::TimedOut => {
                    if let Some(u) = upgrade.take() {
                        let why = u.why.clone().unwrap_or_else(|| "not ready in time".to_owned());
                        retiring.push(self.fail_upgrade(u, why));
                    }
                }
                },
                verdict = self.watcher.next() => match verdict {
                    Verdict::Start if upgrade.is_some() => self.watcher.defer(),
                    Verdict::Start => {
                        let binary = self.watcher.path().map(|p| p.display().to_string());
                        tracing::info!(plugin = %self.name, binary, "binary watch: the binary was replaced and has settled; upgrading");
                        match self.begin_upgrade(&state, None, &mut upgrade) {
                            Ok(()) => {
                                if let Some(u) = upgrade.as_mut() {
                                    u.by_watch = true;
                                }
                            }
                            Err(why) => tracing::warn!(plugin = %self.name, "binary watch: not upgrading: {why}"),
                        }
                    }
                    Verdict::Skip(why) => {
                        tracing::warn!(plugin = %self.name, "binary watch: {why}; not started, waiting for the next change");
                        self.publisher.event(EventKind::BinaryIgnored, |e| e.reason = Some(why));
                    }
                    Verdict::Wait(_) | Verdict::Unchanged => {}
                },
                Some(end) = retiring.next() => {
                    if let Some(end) = end {
                        self.exited(&end);
                    }
                    if retiring.is_empty() && upgrade.is_none() {
                        self.publisher.update(|s| s.others.clear());
                    }
                }
            }
        }
    }

    /// Announces a run's end.
    fn exited(&self, end: &RunEnd) {
        let lines: Vec<String> = end.limit_line.iter().cloned().collect();
        let limit = limits::explain(&self.companion().limits, &lines);
        if let Some(limit) = &limit {
            tracing::warn!(plugin = %self.name, run = end.run, pid = end.pid, exit = %end.exit, "{limit}");
        }
        self.publisher.event(EventKind::Exited, |e| {
            e.run = Some(end.run);
            e.pid = Some(end.pid);
            e.exit = Some(end.exit.to_string());
            e.reason = limit;
        });
    }

    fn companion(&self) -> &CompanionConfig {
        companion_of(&self.plugin).expect("a companion owner runs a companion configuration")
    }

    /// Starts a candidate line with `config` (or the current configuration).
    fn begin_upgrade(
        &self,
        state: &supervisor::State,
        config: Option<Box<PluginConfig>>,
        upgrade: &mut Option<Upgrade>,
    ) -> Result<(), String> {
        if upgrade.is_some() {
            return Err("an upgrade is already in progress".into());
        }
        if matches!(state, supervisor::State::Disabled) {
            return Err("the plugin is disabled; enable it first".into());
        }
        let config = config.map_or_else(|| self.plugin.clone(), |c| *c);
        let Some(companion) = companion_of(&config) else {
            return Err("the new configuration is not a companion plugin".into());
        };
        let line = Line::launch(&config, companion, &self.runs);
        // The supervisor bounds the start (start-timeout, then connect and a health check
        // within the health timeout each); this is a backstop over it.
        let within = companion
            .start_timeout
            .saturating_add(config.health.timeout.saturating_mul(2))
            .saturating_add(Duration::from_secs(5));
        tracing::info!(plugin = %self.name, "upgrade: starting a new process beside the serving one");
        self.publisher.event(EventKind::Upgrading, |_| {});
        *upgrade = Some(Upgrade {
            line,
            config,
            done: Vec::new(),
            why: None,
            deadline: deadline(Instant::now(), within),
            by_watch: false,
        });
        Ok(())
    }

    /// The candidate did not become ready: stop it (the returned future), count the
    /// failure, tell whoever asked why, with the candidate's last stderr lines.
    fn fail_upgrade(&self, upgrade: Upgrade, why: String) -> Retiring {
        let tail = upgrade.line.job.stats().stderr_tail;
        let message = if tail.is_empty() {
            format!("the new process did not become ready: {why}; the old one goes on serving")
        } else {
            format!(
                "the new process did not become ready: {why}; the old one goes on serving. Its last stderr lines: {}",
                tail.join(" | ")
            )
        };
        tracing::warn!(plugin = %self.name, by_watch = upgrade.by_watch, "upgrade failed: {message}");
        self.publisher.update(|s| {
            s.upgrades.failed += 1;
            s.upgrades.last = Some((std::time::SystemTime::now(), Some(message.clone())));
            s.others.clear();
        });
        self.publisher.event(EventKind::UpgradeFailed, |e| {
            e.reason = Some(message.clone())
        });
        for ack in upgrade.done {
            let _ = ack.send(Err(Refused::Failed(message.clone())));
        }
        let grace = companion_of(&upgrade.config).map_or(Duration::ZERO, |c| c.stop_grace);
        let job = upgrade.line.job.clone();
        let mut line = upgrade.line;
        Box::pin(async move {
            job.destroy(grace).await;
            line.ended_rx.recv().await
        })
    }

    /// The old line after a switch: its connection takes no new call and lets those in
    /// flight finish (up to the drain timeout); then its process is stopped gracefully
    /// (`Shutdown`, SIGTERM, SIGKILL).
    fn retire(&self, line: Line, current: Option<Current>, state: &supervisor::State) -> Retiring {
        let drain = self.plugin.drain_timeout;
        let grace = self.companion().stop_grace;
        let name = self.name.clone();
        let pid = state.pid();
        let mut line = line;
        Box::pin(async move {
            if let Some(conn) = current.as_ref().and_then(|c| c.conn.as_ref())
                && !conn.retire(drain).await
            {
                tracing::warn!(plugin = %name, ?pid, in_flight = conn.in_flight(), "upgrade: calls still in flight on the old process after the drain timeout; stopping it anyway");
            }
            line.job.destroy(grace).await;
            if let Some(current) = current {
                current.close();
            }
            // The hooks said how the run ended before the supervisor published Destroyed.
            let mut last = None;
            while let Ok(end) = line.ended_rx.try_recv() {
                last = Some(end);
            }
            last
        })
    }

    fn redial(&self, c: &Current) -> Redial {
        let run = c.incarnation.run;
        let dest = Dest::from(&c.incarnation.addr);
        let tls = c.incarnation.tls.clone();
        let within = self.plugin.health.timeout;
        Box::pin(async move {
            (
                run,
                link::dial(
                    &dest,
                    tls.as_ref(),
                    within,
                    crate::conn::Options::default(),
                    within,
                )
                .await,
            )
        })
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
        (start_failure, limit_line): (Option<&str>, Option<&str>),
        restarts_before: u64,
    ) {
        use supervisor::State as S;
        let stats = self.line.job.stats();
        let live = current.filter(|c| state.run() == Some(c.incarnation.run));
        self.line.set_conn(live.and_then(|c| c.conn.as_ref()));
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
            s.restarts = restarts_before + stats.restarts;
            s.cpus = stats.cpus.clone();
            s.job = Some(self.line.job.clone());
            let last_exit = match state {
                S::BackingOff { last_exit, .. } => Some(last_exit),
                S::Failed { reason } => reason.last_exit.as_ref(),
                _ => None,
            };
            if let Some(last_exit) = last_exit {
                let lines: Vec<String> = limit_line.iter().map(|l| (*l).to_owned()).collect();
                let limit = limits::explain(&self.companion().limits, &lines);
                s.last_error = Some(match (start_failure, limit) {
                    (Some(why), _) => why.to_owned(),
                    (None, Some(limit)) => format!("{last_exit}: {limit}"),
                    (None, None) => last_exit.to_string(),
                });
            }
            if stats.last_exit.is_some() {
                s.last_exit = stats.last_exit.clone();
            }
            s.state = plugin_state;
        });
    }

    /// Terminal: refuse new calls (waiting ones wake and fail), drain, stop
    /// the process gracefully (and any other line still running), publish
    /// `Destroyed`. Commands after this find the owner gone and get `Destroyed`.
    async fn destroy(
        &mut self,
        done: Ack,
        current: Option<Current>,
        mut retiring: FuturesUnordered<Retiring>,
    ) {
        self.publisher.set_state(PluginState::Destroying);
        let drain = self.plugin.drain_timeout;
        if !self.admission.drain(drain).await {
            tracing::warn!(plugin = %self.name, timeout = %supervisor::HumanDuration(drain), "calls still in flight after the drain timeout; stopping anyway");
        }
        let stop = self.line.job.destroy(self.companion().stop_grace);
        let others = async { while retiring.next().await.is_some() {} };
        tokio::join!(stop, others);
        if let Some(current) = current {
            current.close();
        }
        let stats = self.line.job.stats();
        self.publisher.update(|s| {
            s.state = PluginState::Destroyed;
            s.link = None;
            s.pid = None;
            s.run = None;
            s.address = None;
            s.health = Health::Unknown;
            s.others.clear();
            if stats.last_exit.is_some() {
                s.last_exit = stats.last_exit.clone();
            }
        });
        let _ = done.send(Ok(()));
        self.inbox.orders.close();
        while let Ok(Order { done, .. }) = self.inbox.orders.try_recv() {
            let _ = done.send(Err(GONE));
        }
    }
}

/// What happened to the candidate line.
enum Candidate {
    /// Its run is ready: its connection.
    Ready(Incarnation),
    /// Its supervisor state changed (`false`: its supervisor is gone).
    Changed(bool),
    /// The backstop deadline passed.
    TimedOut,
}

/// The next thing that happens to the candidate; never without one.
async fn candidate(upgrade: &mut Option<Upgrade>) -> Candidate {
    let Some(u) = upgrade else {
        return std::future::pending().await;
    };
    tokio::select! {
        Some(incarnation) = u.line.ready_rx.recv() => Candidate::Ready(incarnation),
        changed = u.line.sup.changed() => Candidate::Changed(changed.is_ok()),
        () = sleep_until(u.deadline) => Candidate::TimedOut,
    }
}

/// Polls the future in `slot`, or waits forever when there is none.
pub(super) async fn poll_opt<F: std::future::Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    match slot {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever.
pub(super) async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
