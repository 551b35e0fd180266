//! The remote plugin's owner task: connect, health-check, reconnect with
//! backoff; the only writer of the plugin's snapshot. A call that is waiting
//! makes it dial now (at most once per initial backoff delay) instead of when
//! the backoff runs out; a call that saw the connection fail makes it check
//! at once.

use std::{sync::Arc, time::Duration};

use tokio::time::{Instant, sleep_until};

use supervisor::deadline;

use super::{Acks, WhileDisabled, refuse_later_orders, resolve_acks, while_disabled};

use crate::{
    call::{CallSettings, admission::Admission},
    command::{Command, Inbox, Nudge, Order, Refused},
    config::{HealthConfig, PluginConfig, PluginKind},
    conn::{Conn, Dest},
    events::EventKind,
    link,
    snapshot::{Linked, Publisher},
    status::{Health, PluginState},
    tls::remote::RemoteTls,
};

pub(super) struct Owner {
    pub(super) name: String,
    pub(super) dest: Dest,
    /// `remote.tls`: the files are read at each dial.
    pub(super) tls: Option<Arc<RemoteTls>>,
    pub(super) connect_timeout: Duration,
    /// `remote.keepalive`, `remote.connections`.
    pub(super) conn: crate::conn::Options,
    pub(super) backoff: supervisor::Backoff,
    pub(super) health: HealthConfig,
    pub(super) drain_timeout: Duration,
    pub(super) admission: Arc<Admission>,
    pub(super) inbox: Inbox,
    pub(super) publisher: Publisher,
    /// Connections replaced by an upgrade, finishing their calls.
    pub(super) retiring: tokio::task::JoinSet<()>,
}

/// Where the owner is.
enum Phase {
    /// Dial now.
    Connect {
        attempt: u32,
    },
    /// Connected: probe, react to suspicion.
    Serve {
        conn: Conn,
        generation: u64,
    },
    /// The last dial failed; dial again at `until` (or earlier for a waiting call).
    Wait {
        attempt: u32,
        until: Instant,
    },
    Disabled,
    End,
}

impl Owner {
    pub(super) async fn run(mut self) {
        let mut phase = Phase::Connect { attempt: 0 };
        let mut generation = 0u64;
        let mut last_dial: Option<Instant> = None;
        let mut rng = fastrand::Rng::new();
        let mut acks: Acks = Vec::new();
        loop {
            phase = match phase {
                Phase::Connect { attempt } => {
                    self.publisher.update(|s| {
                        s.state = PluginState::Connecting { attempt };
                        s.link = None;
                        s.health = Health::Unknown;
                    });
                    resolve_acks(&mut acks);
                    last_dial = Some(Instant::now());
                    self.connect(attempt, &mut generation, &mut rng, &mut acks)
                        .await
                }
                Phase::Serve {
                    conn,
                    generation: g,
                } => {
                    resolve_acks(&mut acks);
                    let next = self
                        .serve(conn.clone(), g, &mut generation, &mut acks)
                        .await;
                    if matches!(next, Phase::Serve { .. }) {
                        // Upgraded to a new connection: the old one finishes its calls.
                        let drain = self.drain_timeout;
                        self.retiring.spawn(async move {
                            conn.retire(drain).await;
                            conn.close();
                        });
                    } else {
                        // Lost, disabled, reconnecting or destroyed: calls still
                        // waiting on this connection fail now.
                        conn.close();
                    }
                    next
                }
                Phase::Wait { attempt, until } => {
                    resolve_acks(&mut acks);
                    self.wait(attempt, until, last_dial, &mut acks).await
                }
                Phase::Disabled => {
                    self.publisher.update(|s| {
                        s.state = PluginState::Disabled;
                        s.link = None;
                        s.health = Health::Unknown;
                    });
                    resolve_acks(&mut acks);
                    self.disabled(&mut acks).await
                }
                Phase::End => break,
            };
        }
    }

    /// Dials; commands are handled meanwhile, nudges ignored.
    async fn connect(
        &mut self,
        attempt: u32,
        generation: &mut u64,
        rng: &mut fastrand::Rng,
        acks: &mut Acks,
    ) -> Phase {
        let dial = dial(
            self.dest.clone(),
            self.tls.clone(),
            self.connect_timeout,
            self.conn,
            self.health.timeout,
        );
        tokio::pin!(dial);
        loop {
            tokio::select! {
                result = &mut dial => return match result {
                    Ok(conn) => {
                        *generation += 1;
                        let g = *generation;
                        tracing::info!(plugin = %self.name, generation = g, "remote plugin connected");
                        self.publisher.update(|s| {
                            s.state = PluginState::Ready;
                            s.link = Some(Linked::new(conn.clone(), g));
                            s.generation = g;
                            s.health = Health::Healthy;
                            if g > 1 {
                                s.restarts += 1;
                            }
                        });
                        Phase::Serve { conn, generation: g }
                    }
                    Err(error) => {
                        let attempt = attempt.saturating_add(1);
                        let until = deadline(Instant::now(), self.backoff.delay(attempt, rng));
                        tracing::debug!(plugin = %self.name, attempt, %error, "remote plugin unreachable");
                        self.publisher.update(|s| {
                            s.state = PluginState::Unreachable { attempt, until: until.into_std() };
                            s.last_error = Some(error);
                        });
                        Phase::Wait { attempt, until }
                    }
                },
                order = self.inbox.orders.recv() => {
                    if let Some(next) = self.order(order, acks).await {
                        return next;
                    }
                }
                Some(_) = self.inbox.nudges.recv() => {}
            }
        }
    }

    /// While connected: probe every interval, and at once (one failure is
    /// enough) when a call saw this connection fail.
    async fn serve(
        &mut self,
        conn: Conn,
        generation: u64,
        generations: &mut u64,
        acks: &mut Acks,
    ) -> Phase {
        let mut failures = 0u32;
        let mut next_probe = deadline(Instant::now(), self.health.interval);
        loop {
            let suspected = tokio::select! {
                () = sleep_until(next_probe) => false,
                Some(nudge) = self.inbox.nudges.recv() => match nudge {
                    Nudge::Suspect(g) if g == generation => true,
                    _ => continue,
                },
                order = self.inbox.orders.recv() => match order {
                    Some(Order { command: Command::Upgrade(config), done }) => {
                        match self.switch(config.as_deref(), generations).await {
                            Ok(next) => {
                                acks.push(done);
                                return next;
                            }
                            Err(why) => {
                                let _ = done.send(Err(Refused::Failed(why)));
                                continue;
                            }
                        }
                    }
                    other => match self.order(other, acks).await {
                        Some(next) => return next,
                        None => continue,
                    },
                },
            };
            let result = if conn.is_closed() {
                Err("the connection closed".to_owned())
            } else {
                link::probe(conn.clone(), self.health.timeout).await
            };
            next_probe = deadline(Instant::now(), self.health.interval);
            match result {
                Ok(()) => {
                    failures = 0;
                    self.publisher.update(|s| s.health = Health::Healthy);
                }
                Err(error) => {
                    failures += 1;
                    let lost = suspected || failures >= self.health.failure_threshold;
                    tracing::warn!(plugin = %self.name, failures, %error, lost, "remote plugin health check failed");
                    self.publisher.update(|s| {
                        s.health = Health::Unhealthy {
                            failures,
                            error: error.clone(),
                        };
                        s.last_error = Some(error);
                    });
                    if lost {
                        return Phase::Connect { attempt: 0 };
                    }
                }
            }
        }
    }

    /// Backing off after a failed dial.
    async fn wait(
        &mut self,
        attempt: u32,
        mut until: Instant,
        last_dial: Option<Instant>,
        acks: &mut Acks,
    ) -> Phase {
        loop {
            tokio::select! {
                () = sleep_until(until) => return Phase::Connect { attempt },
                Some(nudge) = self.inbox.nudges.recv() => {
                    if nudge == Nudge::Waiting {
                        // A call waits: dial now, but not more often than the
                        // initial backoff delay.
                        let soonest = last_dial.map_or(Instant::now(), |t| deadline(t, self.backoff.initial()));
                        if soonest <= Instant::now() {
                            return Phase::Connect { attempt };
                        }
                        until = until.min(soonest);
                    }
                }
                order = self.inbox.orders.recv() => {
                    if let Some(next) = self.order(order, acks).await {
                        return next;
                    }
                }
            }
        }
    }

    async fn disabled(&mut self, acks: &mut Acks) -> Phase {
        loop {
            match while_disabled(&mut self.inbox).await {
                WhileDisabled::Enable(done) => {
                    acks.push(done);
                    return Phase::Connect { attempt: 0 };
                }
                WhileDisabled::Upgrade(config, done) => {
                    // Disabled: the new settings wait for the enable.
                    if let Some(config) = config {
                        self.apply(&config);
                    }
                    let _ = done.send(Ok(()));
                }
                WhileDisabled::Destroy(done) => {
                    acks.push(done);
                    self.destroy(acks).await;
                    return Phase::End;
                }
                WhileDisabled::End => return Phase::End,
            }
        }
    }

    /// A command while enabled; `Some` when it changes the phase (its ack is
    /// then sent once the next phase is published).
    async fn order(&mut self, order: Option<Order>, acks: &mut Acks) -> Option<Phase> {
        let Some(Order { command, done }) = order else {
            return Some(Phase::End);
        };
        match command {
            Command::Enable => {
                let _ = done.send(Ok(()));
                None
            }
            Command::Disable => {
                acks.push(done);
                Some(Phase::Disabled)
            }
            Command::Restart => {
                acks.push(done);
                Some(Phase::Connect { attempt: 0 })
            }
            // Not connected: nothing to keep; the new settings apply from the next dial.
            Command::Upgrade(config) => {
                if let Some(config) = config {
                    self.apply(&config);
                }
                acks.push(done);
                Some(Phase::Connect { attempt: 0 })
            }
            Command::Destroy => {
                acks.push(done);
                self.destroy(acks).await;
                Some(Phase::End)
            }
        }
    }

    /// Takes `config`'s remote settings (the next dial uses them).
    fn apply(&mut self, config: &PluginConfig) {
        let PluginKind::Remote(remote) = &config.kind else {
            return;
        };
        self.dest = super::dest(&remote.address);
        self.tls = super::tls(remote);
        self.connect_timeout = remote.connect_timeout;
        self.conn = super::conn_options(remote);
        if let Ok(backoff) = remote.backoff.to_backoff() {
            self.backoff = backoff;
        }
        self.health = config.health.clone();
        self.drain_timeout = config.drain_timeout;
        self.admission
            .set_limits(config.call.max_concurrent.get(), config.call.max_queued);
        let address: Arc<str> = super::uri(remote).into();
        let settings = Arc::new(CallSettings::of(config));
        self.publisher.update(|s| {
            s.address = Some(address);
            s.settings = settings;
        });
    }

    /// Blue/green for a connected plugin: dial the (new) address first; once that
    /// connection passed its health check, publish it and let the old one finish its
    /// calls. A failed dial keeps the old connection and settings.
    async fn switch(
        &mut self,
        config: Option<&PluginConfig>,
        generations: &mut u64,
    ) -> Result<Phase, String> {
        let remote = match config.map(|c| &c.kind) {
            None => None,
            Some(PluginKind::Remote(remote)) if remote.fleet.is_some() => {
                return Err("the new configuration has several endpoints; a plugin started with one address cannot become a fleet by a reload (remove it and add it again)".into());
            }
            Some(PluginKind::Remote(remote)) => Some(remote),
            Some(PluginKind::Companion(_)) => {
                return Err("the new configuration is not a remote plugin".into());
            }
        };
        let dest = remote.map_or_else(|| self.dest.clone(), |r| super::dest(&r.address));
        let tls = remote.map_or_else(|| self.tls.clone(), super::tls);
        let connect_timeout = remote.map_or(self.connect_timeout, |r| r.connect_timeout);
        let options = remote.map_or(self.conn, super::conn_options);
        let health_timeout = config.map_or(self.health.timeout, |c| c.health.timeout);
        self.publisher.event(EventKind::Upgrading, |_| {});
        match dial(dest.clone(), tls, connect_timeout, options, health_timeout).await {
            Ok(conn) => {
                if let Some(config) = config {
                    self.apply(config);
                }
                *generations += 1;
                let g = *generations;
                tracing::info!(plugin = %self.name, generation = g, "upgrade: calls go to the new connection");
                self.publisher.update(|s| {
                    s.state = PluginState::Ready;
                    s.link = Some(Linked::new(conn.clone(), g));
                    s.generation = g;
                    s.health = Health::Healthy;
                    s.upgrades.done += 1;
                    s.upgrades.last = Some((std::time::SystemTime::now(), None));
                });
                self.publisher.event(EventKind::Upgraded, |_| {});
                Ok(Phase::Serve {
                    conn,
                    generation: g,
                })
            }
            Err(error) => {
                let why = format!(
                    "cannot connect to {dest}: {error}; the current connection goes on serving"
                );
                tracing::warn!(plugin = %self.name, "upgrade failed: {why}");
                self.publisher.update(|s| {
                    s.upgrades.failed += 1;
                    s.upgrades.last = Some((std::time::SystemTime::now(), Some(why.clone())));
                });
                self.publisher
                    .event(EventKind::UpgradeFailed, |e| e.reason = Some(why.clone()));
                Err(why)
            }
        }
    }

    /// Terminal: refuse new calls, drain, close, publish `Destroyed`.
    async fn destroy(&mut self, acks: &mut Acks) {
        self.publisher.update(|s| s.state = PluginState::Destroying);
        if !self.admission.drain(self.drain_timeout).await {
            tracing::warn!(plugin = %self.name, timeout = %supervisor::HumanDuration(self.drain_timeout), "calls still in flight after the drain timeout; closing anyway");
        }
        self.publisher.update(|s| {
            s.state = PluginState::Destroyed;
            s.link = None;
            s.health = Health::Unknown;
        });
        resolve_acks(acks);
        // Commands that arrive from now on find the owner gone: `Destroyed`.
        refuse_later_orders(&mut self.inbox);
    }
}

/// One connection attempt, over TLS when the plugin has `remote.tls` (its files read now, so
/// a rotated certificate or CA is used from this attempt on).
pub(super) async fn dial(
    dest: Dest,
    tls: Option<Arc<RemoteTls>>,
    within: Duration,
    options: crate::conn::Options,
    health_timeout: Duration,
) -> Result<Conn, String> {
    let client = match tls.as_deref().map(RemoteTls::client).transpose() {
        Ok(client) => client,
        Err(error) => return Err(format!("cannot connect to {dest}: {error}")),
    };
    let dialed = link::dial(&dest, client.as_ref(), within, options, health_timeout).await;
    dialed.map_err(|error| match tls.as_deref().and_then(RemoteTls::hint) {
        Some(hint) => format!("{error}; {hint}"),
        None => error,
    })
}
