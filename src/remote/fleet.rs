//! The owner of a remote plugin served by several endpoints: the only writer of the
//! plugin's snapshot. It keeps one task per endpoint (`endpoint.rs`: connection, probes,
//! backoff), follows the resolver (`resolve.rs`), ejects outliers (`eject.rs`) and publishes
//! the endpoints in rotation, among which calls pick (`balance.rs`).
//!
//! The plugin is `Ready` while at least one endpoint is in rotation; otherwise calls wait
//! (`Connecting`, or `Unreachable` when every endpoint's dial failed) and a waiting call
//! makes the endpoints that back off dial now.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    sync::mpsc,
    task::JoinSet,
    time::{Instant, sleep_until},
};

use super::{
    Acks, WhileDisabled,
    balance::{Member, Rotation},
    eject::Outlier,
    endpoint::{self, Poke, Report},
    refuse_later_orders,
    resolve::{self, Resolve, Resolved, Resolving},
    resolve_acks,
    view::{EndpointView, FleetView},
    while_disabled,
};
use crate::{
    call::{CallSettings, admission::Admission},
    command::{Command, Inbox, Nudge, Order},
    config::{EjectionConfig, PluginConfig, PluginKind},
    conn::Dest,
    events::EventKind,
    snapshot::{Linked, Publisher},
    status::{EndpointState, Health, PluginState},
};

/// After a failure, resolve again, but not more often than this.
const RESOLVE_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub(super) struct Fleet {
    pub(super) name: String,
    pub(super) settings: endpoint::Settings,
    pub(super) ejection: EjectionConfig,
    pub(super) resolve_interval: Duration,
    pub(super) resolver: Box<dyn Resolve>,
    pub(super) admission: Arc<Admission>,
    pub(super) inbox: Inbox,
    pub(super) publisher: Publisher,
}

/// One endpoint as the owner keeps it.
struct Endpoint {
    id: u64,
    dest: Dest,
    address: Arc<str>,
    handle: endpoint::Handle,
    link: Link,
    outlier: Outlier,
    /// The generation a call already suspected (one failure per connection counts).
    suspected: Option<u64>,
    calls: Arc<AtomicU64>,
    last_error: Option<String>,
}

enum Link {
    Connecting,
    Up(Linked),
    Unreachable { attempt: u32, until: Instant },
}

/// The running fleet: endpoint tasks and what the owner knows of them.
struct Running {
    tasks: JoinSet<()>,
    endpoints: Vec<Endpoint>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    generations: Arc<AtomicU64>,
    next_id: u64,
    resolving: Option<Resolving>,
    last_resolve: Option<Instant>,
    next_resolve: Instant,
}

impl Running {
    /// No endpoints yet; `resolving` finds them.
    fn new(
        generations: Arc<AtomicU64>,
        resolving: Option<Resolving>,
        resolve_interval: Duration,
    ) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Running {
            tasks: JoinSet::new(),
            endpoints: Vec::new(),
            reports_tx,
            reports,
            generations,
            next_id: 0,
            last_resolve: resolving.is_some().then(Instant::now),
            resolving,
            next_resolve: deadline(resolve_interval),
        }
    }
}

enum Next {
    Run,
    Disabled,
    End,
}

impl Fleet {
    pub(super) async fn run(mut self) {
        // Generations stay unique across restarts and enables.
        let generations = Arc::new(AtomicU64::new(0));
        let mut acks: Acks = Vec::new();
        let mut next = Next::Run;
        loop {
            next = match next {
                Next::Run => self.serve(generations.clone(), &mut acks).await,
                Next::Disabled => {
                    self.publisher.update(|s| {
                        s.state = PluginState::Disabled;
                        s.fleet = None;
                        s.health = Health::Unknown;
                    });
                    resolve_acks(&mut acks);
                    self.disabled(&mut acks).await
                }
                Next::End => break,
            };
        }
    }

    /// Runs the endpoints until disabled, restarted or destroyed.
    async fn serve(&mut self, generations: Arc<AtomicU64>, acks: &mut Acks) -> Next {
        let mut run = Running::new(
            generations,
            Some(self.resolver.resolve()),
            self.resolve_interval,
        );
        self.publish(&run);
        resolve_acks(acks);
        loop {
            let timer = run
                .endpoints
                .iter()
                .filter_map(|e| e.outlier.ejected_until(Instant::now()))
                .fold(run.next_resolve, Instant::min);
            let changed = tokio::select! {
                Some(report) = run.reports.recv() => self.report(&mut run, report),
                Some(nudge) = self.inbox.nudges.recv() => self.nudge(&mut run, nudge),
                resolved = poll(&mut run.resolving), if run.resolving.is_some() => {
                    run.resolving = None;
                    self.resolved(&mut run, resolved)
                }
                () = sleep_until(timer) => self.tick(&mut run),
                Some(_) = run.tasks.join_next() => false,
                order = self.inbox.orders.recv() => {
                    let next = match order {
                        Some(Order { command: Command::Upgrade(config), done }) => {
                            self.upgrade(&mut run, config.as_deref());
                            acks.push(done);
                            None
                        }
                        Some(Order { command: Command::Enable, done }) => {
                            let _ = done.send(Ok(()));
                            None
                        }
                        Some(Order { command: Command::Disable, done }) => {
                            acks.push(done);
                            Some(Next::Disabled)
                        }
                        Some(Order { command: Command::Restart, done }) => {
                            acks.push(done);
                            Some(Next::Run)
                        }
                        Some(Order { command: Command::Destroy, done }) => {
                            acks.push(done);
                            self.destroy(&mut run, acks).await;
                            Some(Next::End)
                        }
                        None => Some(Next::End),
                    };
                    if let Some(next) = next {
                        close(run);
                        return next;
                    }
                    true
                }
            };
            if changed {
                self.publish(&run);
            }
            resolve_acks(acks);
        }
    }

    fn report(&self, run: &mut Running, report: Report) -> bool {
        let now = Instant::now();
        let fleet = run.endpoints.len();
        let ejected = ejected(&run.endpoints, now);
        let (id, failure) = match report {
            Report::Up {
                id,
                conn,
                generation,
            } => {
                let Some(e) = run.endpoints.iter_mut().find(|e| e.id == id) else {
                    conn.close();
                    return false;
                };
                tracing::info!(plugin = %self.name, endpoint = %e.address, generation, "endpoint connected");
                e.link = Link::Up(Linked::new(conn, generation));
                e.outlier.success();
                return true;
            }
            Report::Probed { id, result: Ok(()) } => {
                if let Some(e) = run.endpoints.iter_mut().find(|e| e.id == id) {
                    e.outlier.success();
                }
                return false;
            }
            Report::Probed {
                id,
                result: Err(error),
            } => (id, Some(error)),
            Report::Down {
                id,
                error,
                attempt,
                until,
            } => {
                let Some(e) = run.endpoints.iter_mut().find(|e| e.id == id) else {
                    return false;
                };
                e.link = if attempt == 0 {
                    Link::Connecting
                } else {
                    Link::Unreachable { attempt, until }
                };
                e.last_error = Some(error.clone());
                // A lost connection was counted by the probe that found it; a failed dial
                // (connect or its health check) counts as a failure of its own.
                (id, (attempt > 0).then_some(error))
            }
        };
        if let Some(error) = failure
            && let Some(e) = run.endpoints.iter_mut().find(|e| e.id == id)
        {
            e.last_error = Some(error);
            if let Some(until) = e.outlier.failure(now, &self.ejection, fleet, ejected) {
                tracing::warn!(plugin = %self.name, endpoint = %e.address, ejections = e.outlier.total, seconds = Outlier::length(now, until).as_secs_f64(), "endpoint ejected");
                let why = e.last_error.clone().unwrap_or_default();
                self.ejected_event(&e.address, e.outlier.total, &why, now, until);
            }
            resolve_soon(run, now);
        }
        true
    }

    fn nudge(&self, run: &mut Running, nudge: Nudge) -> bool {
        match nudge {
            Nudge::Waiting => {
                for e in &run.endpoints {
                    if !matches!(e.link, Link::Up(_)) {
                        e.handle.poke(Poke::Dial);
                    }
                }
                false
            }
            Nudge::Suspect(g) => {
                let now = Instant::now();
                let fleet = run.endpoints.len();
                let ejected = ejected(&run.endpoints, now);
                let Some(e) = run
                    .endpoints
                    .iter_mut()
                    .find(|e| matches!(&e.link, Link::Up(l) if l.generation == g))
                else {
                    return false;
                };
                e.handle.poke(Poke::Suspect(g));
                if e.suspected == Some(g) {
                    return false;
                }
                e.suspected = Some(g);
                if let Some(until) = e.outlier.failure(now, &self.ejection, fleet, ejected) {
                    tracing::warn!(plugin = %self.name, endpoint = %e.address, ejections = e.outlier.total, seconds = Outlier::length(now, until).as_secs_f64(), "endpoint ejected after a failed call");
                    let total = e.outlier.total;
                    self.ejected_event(
                        &e.address,
                        total,
                        "a call failed on its connection",
                        now,
                        until,
                    );
                    return true;
                }
                false
            }
        }
    }

    /// The `endpoint_ejected` event: which endpoint, its ejection count, why, and until when.
    fn ejected_event(&self, address: &str, total: u64, why: &str, now: Instant, until: Instant) {
        let wall = std::time::SystemTime::now() + until.saturating_duration_since(now);
        self.publisher.event(EventKind::EndpointEjected, |ev| {
            ev.reason = Some(format!(
                "endpoint {address} ejected (ejection {total}): {why}"
            ));
            ev.until = Some(wall);
        });
    }

    /// Ejections that ran out, and the periodic resolution.
    fn tick(&self, run: &mut Running) -> bool {
        let now = Instant::now();
        let mut changed = false;
        for e in &mut run.endpoints {
            if e.outlier.expire(now) {
                tracing::info!(plugin = %self.name, endpoint = %e.address, "endpoint back in rotation after its ejection");
                self.publisher.event(EventKind::EndpointReturned, |ev| {
                    ev.reason = Some(format!(
                        "endpoint {} back in rotation once healthy",
                        e.address
                    ));
                });
                changed = true;
            }
        }
        if run.next_resolve <= now {
            if run.resolving.is_none() {
                run.resolving = Some(self.resolver.resolve());
                run.last_resolve = Some(now);
            }
            run.next_resolve = deadline(self.resolve_interval);
        }
        changed
    }

    /// Applies a resolution: endpoints that appeared start, those gone retire (their calls
    /// in flight finish). An error or an empty answer keeps the endpoints there are.
    fn resolved(&self, run: &mut Running, resolved: Resolved) -> bool {
        let next = match resolved {
            Ok(next) if !next.is_empty() => next,
            failed => {
                let error = failed
                    .err()
                    .unwrap_or_else(|| "the resolver found no endpoints".to_owned());
                tracing::warn!(plugin = %self.name, %error, "keeping the current endpoints");
                if run.endpoints.is_empty() {
                    // Nothing to call: try again soon rather than at the next interval.
                    resolve_soon(run, Instant::now());
                }
                self.publisher.update(|s| s.last_error = Some(error));
                return false;
            }
        };
        let current: Vec<Dest> = run.endpoints.iter().map(|e| e.dest.clone()).collect();
        let (added, removed) = resolve::diff(&current, &next);
        if added.is_empty() && removed.is_empty() {
            return false;
        }
        for i in removed.into_iter().rev() {
            let e = run.endpoints.remove(i);
            tracing::info!(plugin = %self.name, endpoint = %e.address, "endpoint removed");
            // Dropping the handle retires its connection.
            drop(e.handle);
        }
        for dest in added {
            tracing::info!(plugin = %self.name, endpoint = %dest, "endpoint added");
            let id = run.next_id;
            run.next_id += 1;
            let handle = endpoint::spawn(
                &mut run.tasks,
                id,
                dest.clone(),
                self.settings.clone(),
                run.generations.clone(),
                run.reports_tx.clone(),
            );
            run.endpoints.push(Endpoint {
                id,
                address: dest.to_string().into(),
                dest,
                handle,
                link: Link::Connecting,
                outlier: Outlier::default(),
                suspected: None,
                calls: Arc::default(),
                last_error: None,
            });
        }
        true
    }

    /// A reload: the new settings apply to the calls from now on and to each endpoint's
    /// next dial; the endpoints are resolved again at once (added ones start, removed ones
    /// retire). Connections that stay are kept.
    fn upgrade(&mut self, run: &mut Running, config: Option<&PluginConfig>) {
        self.publisher.event(EventKind::Upgrading, |_| {});
        if let Some(config) = config {
            self.apply(config);
        }
        run.resolving = Some(self.resolver.resolve());
        run.last_resolve = Some(Instant::now());
        self.publisher.update(|s| {
            s.upgrades.done += 1;
            s.upgrades.last = Some((std::time::SystemTime::now(), None));
        });
        self.publisher.event(EventKind::Upgraded, |_| {});
    }

    /// Takes `config`'s settings.
    fn apply(&mut self, config: &PluginConfig) {
        let PluginKind::Remote(remote) = &config.kind else {
            return;
        };
        let endpoints = match &remote.fleet {
            Some(fleet) => {
                self.ejection = fleet.ejection;
                self.resolve_interval = fleet.resolve_interval;
                fleet.endpoints.clone()
            }
            None => crate::config::Endpoints::List(vec![remote.address.clone()]),
        };
        self.resolver = resolve::of(&endpoints);
        self.settings = super::endpoint_settings(config, remote);
        self.admission
            .set_limits(config.call.max_concurrent.get(), config.call.max_queued);
        let address: Arc<str> = super::uri(remote).into();
        let settings = Arc::new(CallSettings::of(config));
        self.publisher.update(|s| {
            s.address = Some(address);
            s.settings = settings;
        });
    }

    async fn disabled(&mut self, acks: &mut Acks) -> Next {
        loop {
            match while_disabled(&mut self.inbox).await {
                WhileDisabled::Enable(done) => {
                    acks.push(done);
                    return Next::Run;
                }
                WhileDisabled::Upgrade(config, done) => {
                    if let Some(config) = config {
                        self.apply(&config);
                    }
                    let _ = done.send(Ok(()));
                }
                WhileDisabled::Destroy(done) => {
                    acks.push(done);
                    let mut run = Running::new(Arc::default(), None, self.resolve_interval);
                    self.destroy(&mut run, acks).await;
                    return Next::End;
                }
                WhileDisabled::End => return Next::End,
            }
        }
    }

    /// Terminal: refuse new calls, drain, close every endpoint, publish `Destroyed`.
    async fn destroy(&mut self, run: &mut Running, acks: &mut Acks) {
        self.publisher.update(|s| s.state = PluginState::Destroying);
        if !self.admission.drain(self.settings.drain_timeout).await {
            tracing::warn!(plugin = %self.name, timeout = %supervisor::HumanDuration(self.settings.drain_timeout), "calls still in flight after the drain timeout; closing anyway");
        }
        for e in run.endpoints.drain(..) {
            if let Link::Up(l) = &e.link {
                l.conn.close();
            }
        }
        run.tasks.abort_all();
        self.publisher.update(|s| {
            s.state = PluginState::Destroyed;
            s.fleet = None;
            s.health = Health::Unknown;
        });
        resolve_acks(acks);
        refuse_later_orders(&mut self.inbox);
    }

    /// Publishes the endpoints, those in rotation, and the plugin's state.
    fn publish(&self, run: &Running) {
        let now = Instant::now();
        let mut members = Vec::new();
        let mut endpoints = Vec::with_capacity(run.endpoints.len());
        for e in &run.endpoints {
            let ejected = e.outlier.ejected_until(now);
            let state = match (&e.link, ejected) {
                (_, Some(until)) => EndpointState::Ejected {
                    until: until.into_std(),
                },
                (Link::Up(_), None) => EndpointState::Ready,
                (Link::Connecting, None) => EndpointState::Connecting,
                (Link::Unreachable { attempt, until }, None) => EndpointState::Unreachable {
                    attempt: *attempt,
                    until: until.into_std(),
                },
            };
            let conn = match &e.link {
                Link::Up(l) => {
                    if ejected.is_none() {
                        members.push(Member {
                            linked: l.clone(),
                            calls: e.calls.clone(),
                        });
                    }
                    Some((l.conn.clone(), l.generation))
                }
                _ => None,
            };
            endpoints.push(EndpointView {
                address: e.address.clone(),
                state,
                conn,
                calls: e.calls.clone(),
                ejections: e.outlier.total,
                last_error: e.last_error.clone(),
            });
        }
        let state = if !members.is_empty() {
            PluginState::Ready
        } else {
            let unreachable = run
                .endpoints
                .iter()
                .try_fold(None, |soonest, e| match e.link {
                    Link::Unreachable { attempt, until } => Some(Some(match soonest {
                        Some((a, u)) => (attempt.min(a), until.min(u)),
                        None => (attempt, until),
                    })),
                    _ => None,
                });
            match unreachable.flatten() {
                Some((attempt, until)) => PluginState::Unreachable {
                    attempt,
                    until: until.into_std(),
                },
                None => PluginState::Connecting { attempt: 0 },
            }
        };
        let generation = run.generations.load(Relaxed);
        let last_error = run
            .endpoints
            .iter()
            .rev()
            .find_map(|e| e.last_error.clone());
        let fleet = Arc::new(FleetView {
            rotation: Rotation::new(members),
            endpoints,
        });
        self.publisher.update(|s| {
            s.health = match state {
                PluginState::Ready => Health::Healthy,
                _ => Health::Unknown,
            };
            s.state = state;
            s.link = None;
            s.fleet = Some(fleet);
            s.generation = generation;
            if last_error.is_some() {
                s.last_error = last_error;
            }
        });
    }
}

/// Endpoints ejected at `now`.
fn ejected(endpoints: &[Endpoint], now: Instant) -> usize {
    endpoints
        .iter()
        .filter(|e| e.outlier.ejected_until(now).is_some())
        .count()
}

/// Resolve again soon after a failure (a replaced pod has a new address).
fn resolve_soon(run: &mut Running, now: Instant) {
    let soonest = run
        .last_resolve
        .map_or(now, |t| supervisor::deadline(t, RESOLVE_AFTER_FAILURE));
    run.next_resolve = run.next_resolve.min(soonest.max(now));
}

fn deadline(after: Duration) -> Instant {
    supervisor::deadline(Instant::now(), after)
}

async fn poll(resolving: &mut Option<Resolving>) -> Resolved {
    match resolving {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Ends a run: live connections close (calls on them fail: the plugin may have processed
/// them), the endpoint tasks are aborted.
fn close(mut run: Running) {
    for e in run.endpoints.drain(..) {
        if let Link::Up(l) = &e.link {
            l.conn.close();
        }
    }
    run.tasks.abort_all();
}
