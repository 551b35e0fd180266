//! The remote plugin's owner task: connect, health-check, reconnect with
//! backoff; the only writer of the plugin's [`Link`].

use std::{sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, sleep_until, timeout},
};

use super::{Command, Figures, Suspect};
use crate::{
    config::{HealthConfig, RemoteAddress, RemoteConfig},
    conn::{self, Conn, Dest},
    link::{self, Link},
    status::{Health, PluginState},
};

pub(super) fn dest(remote: &RemoteConfig) -> Dest {
    match &remote.address {
        RemoteAddress::Unix(path) => Dest::Unix(path.clone()),
        tcp => Dest::Tcp(tcp.to_uri().trim_start_matches("http://").to_owned()),
    }
}

pub(super) struct Owner {
    pub(super) name: String,
    pub(super) dest: Dest,
    pub(super) connect_timeout: Duration,
    pub(super) keepalive: Option<Duration>,
    pub(super) backoff: supervisor::Backoff,
    pub(super) health: HealthConfig,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) suspect: Arc<Suspect>,
    pub(super) figures: Arc<Mutex<Figures>>,
    pub(super) link: watch::Sender<Link>,
}

/// What to do after a wait was interrupted.
enum Flow {
    /// Nothing changes: carry on with what was being done.
    Continue,
    /// Connect again now, from attempt 0.
    Reconnect,
    /// Destroyed: end the task.
    Exit,
}

impl Owner {
    pub(super) async fn run(mut self) {
        let mut attempt = 0u32;
        let mut generation = 0u64;
        let mut last_error: Option<String> = None;
        let mut jitter = fastrand::Rng::new();
        loop {
            self.publish(PluginState::Connecting { attempt }, last_error.clone());
            let connected = tokio::select! {
                r = connect(&self.dest, self.connect_timeout, self.keepalive, &self.health) => r,
                cmd = self.commands.recv() => match self.command(cmd).await {
                    Flow::Continue => continue,
                    Flow::Reconnect => { attempt = 0; continue }
                    Flow::Exit => return,
                },
            };
            match connected {
                Ok(channel) => {
                    attempt = 0;
                    generation += 1;
                    if generation > 1 {
                        self.figures.lock().reconnects += 1;
                    }
                    self.figures.lock().health = Some(Health::Healthy);
                    tracing::info!(plugin = %self.name, "remote plugin connected");
                    self.link
                        .send_replace(Link::up(channel.clone(), generation));
                    match self.serve(channel, generation).await {
                        Ok(Flow::Continue | Flow::Reconnect) => {}
                        Ok(Flow::Exit) => return,
                        Err(lost) => {
                            tracing::warn!(plugin = %self.name, error = %lost, "remote plugin lost; reconnecting");
                            last_error = Some(lost);
                        }
                    }
                }
                Err(error) => {
                    attempt += 1;
                    let until = Instant::now() + self.backoff.delay(attempt, &mut jitter);
                    tracing::debug!(plugin = %self.name, attempt, %error, "remote plugin unreachable");
                    last_error = Some(error);
                    self.publish(
                        PluginState::Unreachable {
                            attempt,
                            until: until.into_std(),
                        },
                        last_error.clone(),
                    );
                    tokio::select! {
                        () = sleep_until(until) => {}
                        cmd = self.commands.recv() => match self.command(cmd).await {
                            Flow::Continue => {}
                            Flow::Reconnect => attempt = 0,
                            Flow::Exit => return,
                        },
                    }
                }
            }
        }
    }

    fn publish(&self, state: PluginState, last_error: Option<String>) {
        self.link.send_replace(Link::Down { state, last_error });
    }

    /// While connected: probe every interval (and at once when a call saw the
    /// connection break). `Err` when the connection is judged lost.
    async fn serve(&mut self, channel: Conn, generation: u64) -> Result<Flow, String> {
        let mut failures = 0u32;
        loop {
            let probe_now = tokio::select! {
                () = tokio::time::sleep(self.health.interval) => false,
                () = self.suspect.notify.notified() => {
                    *self.suspect.generation.lock() == Some(generation)
                }
                cmd = self.commands.recv() => match self.command(cmd).await {
                    Flow::Continue => continue,
                    flow => return Ok(flow),
                },
            };
            let result = probe(&self.health, channel.clone()).await;
            match result {
                Ok(()) => {
                    failures = 0;
                    self.figures.lock().health = Some(Health::Healthy);
                }
                Err(error) => {
                    failures += 1;
                    self.figures.lock().health = Some(Health::Unhealthy {
                        failures,
                        error: error.clone(),
                    });
                    // A call already saw the connection break: one failed probe confirms it.
                    if probe_now || failures >= self.health.failure_threshold {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// Handles a command received while waiting. Disable waits here for
    /// enable (or destroy).
    async fn command(&mut self, cmd: Option<Command>) -> Flow {
        match cmd {
            None => Flow::Exit,
            Some(Command::Destroy(ack)) => {
                self.publish(PluginState::Destroyed, None);
                let _ = ack.send(());
                Flow::Exit
            }
            Some(Command::Reconnect(ack)) => {
                let _ = ack.send(());
                Flow::Reconnect
            }
            // Not disabled: nothing to do.
            Some(Command::Enable(ack)) => {
                let _ = ack.send(());
                Flow::Continue
            }
            Some(Command::Disable(ack)) => {
                self.publish(PluginState::Disabled, None);
                let _ = ack.send(());
                loop {
                    match self.commands.recv().await {
                        None => return Flow::Exit,
                        Some(Command::Enable(ack)) => {
                            let _ = ack.send(());
                            return Flow::Reconnect;
                        }
                        Some(Command::Destroy(ack)) => {
                            self.publish(PluginState::Destroyed, None);
                            let _ = ack.send(());
                            return Flow::Exit;
                        }
                        Some(Command::Disable(ack) | Command::Reconnect(ack)) => {
                            let _ = ack.send(());
                        }
                    }
                }
            }
        }
    }
}

/// Connects (bounded by `connect_timeout`) and checks health once.
async fn connect(
    dest: &Dest,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
    health: &HealthConfig,
) -> Result<Conn, String> {
    let conn = match timeout(connect_timeout, conn::connect(dest, keepalive)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(format!("cannot connect to {dest}: {}", error_chain(&e))),
        Err(_) => {
            return Err(format!(
                "cannot connect to {dest}: no connection within {connect_timeout:?}"
            ));
        }
    };
    probe(health, conn.clone()).await?;
    Ok(conn)
}

async fn probe(health: &HealthConfig, channel: Conn) -> Result<(), String> {
    match timeout(health.timeout, link::check_health(channel)).await {
        Ok(r) => r,
        Err(_) => Err(format!("health check timed out after {:?}", health.timeout)),
    }
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
