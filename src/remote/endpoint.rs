//! One endpoint of a fleet: its own task with its own connection, health probes and
//! reconnect backoff (the single-address owner's cycle, without the commands). It does not
//! publish anything: it reports to the fleet owner, the only writer of the snapshot, and
//! takes pokes from it. When the owner drops its handle, the task retires its connection
//! (new requests come back unsent, those in flight finish, at most `drain-timeout`),
//! closes it and ends.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};

use supervisor::deadline;

use crate::{config::HealthConfig, conn::Conn, conn::Dest, link, tls::remote::RemoteTls};

/// How an endpoint connects and checks; shared by a fleet's endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) tls: Option<Arc<RemoteTls>>,
    pub(crate) connect_timeout: Duration,
    /// `remote.keepalive`, `remote.connections`.
    pub(crate) conn: crate::conn::Options,
    pub(crate) backoff: supervisor::Backoff,
    pub(crate) health: HealthConfig,
    pub(crate) drain_timeout: Duration,
}

/// What an endpoint tells the fleet owner. `id` is the endpoint's key in the fleet.
#[derive(Debug)]
pub(crate) enum Report {
    /// Connected and health-checked: connection `generation` (unique in the fleet).
    Up {
        id: u64,
        conn: Conn,
        generation: u64,
    },
    /// A periodic (or suspicion's) health check of the live connection.
    Probed { id: u64, result: Result<(), String> },
    /// Not connected: the connection was lost (`attempt` 0, redialing now) or a dial failed
    /// (dialing again at `until`).
    Down {
        id: u64,
        error: String,
        attempt: u32,
        until: Instant,
    },
}

/// What the fleet owner asks of an endpoint (best effort).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poke {
    /// A call waits: dial now if backing off (at most once per initial backoff delay).
    Dial,
    /// A call saw connection `generation` fail: check it now (one failure is enough).
    Suspect(u64),
}

/// The fleet owner's handle on an endpoint task; dropping it ends the task.
#[derive(Debug)]
pub(crate) struct Handle {
    pokes: mpsc::Sender<Poke>,
}

impl Handle {
    pub(crate) fn poke(&self, poke: Poke) {
        let _ = self.pokes.try_send(poke);
    }
}

/// Starts endpoint `id` at `dest` on `tasks`.
pub(crate) fn spawn(
    tasks: &mut tokio::task::JoinSet<()>,
    id: u64,
    dest: Dest,
    settings: Settings,
    generations: Arc<AtomicU64>,
    reports: mpsc::UnboundedSender<Report>,
) -> Handle {
    let (pokes, inbox) = mpsc::channel(4);
    let task = Task {
        id,
        dest,
        settings,
        generations,
        reports,
        inbox,
        retiring: tokio::task::JoinSet::new(),
    };
    tasks.spawn(task.run());
    Handle { pokes }
}

struct Task {
    id: u64,
    dest: Dest,
    settings: Settings,
    generations: Arc<AtomicU64>,
    reports: mpsc::UnboundedSender<Report>,
    inbox: mpsc::Receiver<Poke>,
    /// Lost connections finishing their calls; aborted (closing them) with the task.
    retiring: tokio::task::JoinSet<()>,
}

/// The owner dropped the handle.
struct Removed;

impl Task {
    async fn run(mut self) {
        let mut attempt = 0u32;
        let mut rng = fastrand::Rng::new();
        loop {
            while self.retiring.try_join_next().is_some() {}
            let dialed = Instant::now();
            let dial = dial(self.dest.clone(), &self.settings);
            let result = tokio::select! {
                r = dial => r,
                poke = self.inbox.recv() => match poke {
                    None => return,
                    Some(_) => continue,
                },
            };
            match result {
                Ok(conn) => {
                    attempt = 0;
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                    self.report(Report::Up {
                        id: self.id,
                        conn: conn.clone(),
                        generation,
                    });
                    let served = self.serve(&conn, generation).await;
                    match served {
                        Ok(error) => {
                            if conn.is_closed() {
                                // Dead: calls still waiting on it fail now.
                                conn.close();
                            } else {
                                // Alive but failing its checks (slow, overloaded): new
                                // requests come back unsent and go to another endpoint;
                                // those in flight may still be answered, until the drain
                                // timeout.
                                let drain = self.settings.drain_timeout;
                                self.retiring.spawn(async move {
                                    conn.retire(drain).await;
                                    conn.close();
                                });
                            }
                            self.report(Report::Down {
                                id: self.id,
                                error,
                                attempt: 0,
                                until: Instant::now(),
                            });
                        }
                        Err(Removed) => {
                            // Calls in flight finish; new ones come back unsent and go
                            // to another endpoint.
                            conn.retire(self.settings.drain_timeout).await;
                            conn.close();
                            return;
                        }
                    }
                }
                Err(error) => {
                    attempt = attempt.saturating_add(1);
                    let until = deadline(
                        Instant::now(),
                        self.settings.backoff.delay(attempt, &mut rng),
                    );
                    tracing::debug!(endpoint = %self.dest, attempt, %error, "endpoint unreachable");
                    self.report(Report::Down {
                        id: self.id,
                        error,
                        attempt,
                        until,
                    });
                    if self.wait(until, dialed).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn report(&self, report: Report) {
        let _ = self.reports.send(report);
    }

    /// Probes every interval, and at once when a call suspected the connection; returns
    /// why the connection is lost.
    async fn serve(&mut self, conn: &Conn, generation: u64) -> Result<String, Removed> {
        let health = self.settings.health.clone();
        let mut failures = 0u32;
        let mut next_probe = deadline(Instant::now(), health.interval);
        loop {
            let suspected = tokio::select! {
                () = sleep_until(next_probe) => false,
                poke = self.inbox.recv() => match poke {
                    None => return Err(Removed),
                    Some(Poke::Suspect(g)) if g == generation => true,
                    Some(_) => continue,
                },
            };
            let result = if conn.is_closed() {
                Err("the connection closed".to_owned())
            } else {
                link::probe(conn.clone(), health.timeout).await
            };
            next_probe = deadline(Instant::now(), health.interval);
            self.report(Report::Probed {
                id: self.id,
                result: result.clone(),
            });
            match result {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(endpoint = %self.dest, failures, %error, "endpoint health check failed");
                    if suspected || failures >= health.failure_threshold {
                        return Ok(error);
                    }
                }
            }
        }
    }

    /// Backing off until `until`; a waiting call makes it dial sooner, but not sooner than
    /// the initial backoff delay after the last dial.
    async fn wait(&mut self, mut until: Instant, last_dial: Instant) -> Result<(), Removed> {
        loop {
            tokio::select! {
                () = sleep_until(until) => return Ok(()),
                poke = self.inbox.recv() => match poke {
                    None => return Err(Removed),
                    Some(Poke::Dial) => {
                        let soonest = deadline(last_dial, self.settings.backoff.initial());
                        if soonest <= Instant::now() {
                            return Ok(());
                        }
                        until = until.min(soonest);
                    }
                    Some(Poke::Suspect(_)) => {}
                },
            }
        }
    }
}

fn dial(dest: Dest, s: &Settings) -> impl Future<Output = Result<Conn, String>> + use<> {
    super::owner::dial(
        dest,
        s.tls.clone(),
        s.connect_timeout,
        s.conn,
        s.health.timeout,
    )
}
