//! Companion plugins: child processes launched and supervised through the
//! `supervisor` crate, spoken to over gRPC after the go-plugin handshake.
//!
//! - [`launch`](self::launch): config → supervisor `Spec` (go-plugin environment,
//!   CPU limits) and `Policy` (restart, backoff, liveness).
//! - `hooks`: readiness (read and check the handshake, connect, first health
//!   check), liveness (health checks), pre-stop (Controller `Shutdown`),
//!   stderr into `tracing`.
//! - `owner`: the plugin's owner task, mapping supervisor states and ready
//!   connections to the [`Link`](crate::link::Link) calls read.

mod hooks;
mod launch;
mod logs;
mod owner;
// Not wired up yet: the supervisor's `run_ended` hook will call it.
#[allow(dead_code)]
mod rundir;

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, watch};

use crate::{
    config::{CompanionConfig, PluginConfig},
    link::Link,
    status::{PluginState, PluginStatus},
};

/// The companion side of a [`PluginHandle`](crate::PluginHandle).
#[derive(Debug)]
pub(crate) struct Companion {
    job: supervisor::Job,
    hooks: Arc<hooks::CompanionHooks>,
    stop_grace: Duration,
}

impl Companion {
    /// Spawns the plugin's process and its owner task; returns at once.
    pub(crate) fn start(
        plugin: &PluginConfig,
        companion: &CompanionConfig,
    ) -> (Self, watch::Receiver<Link>) {
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let hooks = Arc::new(hooks::CompanionHooks::new(
            &plugin.name,
            companion.stop_grace,
            ready_tx,
        ));
        let (spec, policy) = launch::spec_and_policy(plugin, companion);
        let job = supervisor::Job::spawn(plugin.name.clone(), spec, policy, hooks.clone());
        let (link_tx, link_rx) = watch::channel(Link::down(PluginState::Starting { attempt: 0 }));
        tokio::spawn(owner::run(
            plugin.name.clone(),
            job.state(),
            ready_rx,
            link_tx,
        ));
        (
            Companion {
                job,
                hooks,
                stop_grace: companion.stop_grace,
            },
            link_rx,
        )
    }

    pub(crate) async fn disable(&self) {
        self.job.disable(self.stop_grace).await;
    }

    pub(crate) async fn enable(&self) {
        self.job.enable().await;
    }

    pub(crate) async fn restart(&self) {
        self.job.restart().await;
    }

    /// Controller `Shutdown` and the exit after it (the pre-stop hook, first
    /// half of the grace), else SIGTERM, then SIGKILL when the grace is spent.
    pub(crate) async fn destroy(&self) {
        self.job.stop(self.stop_grace).await;
    }

    pub(crate) fn fill_status(&self, status: &mut PluginStatus) {
        let stats = self.job.stats();
        status.pid = stats.pid;
        status.restarts = stats.restarts;
        status.last_exit = stats.last_exit.map(|e| e.to_string());
        status.cpus = stats.cpus;
        status.health = self.hooks.health();
        status.address = self.hooks.address().map(|a| a.to_string());
    }

    /// CPU and memory of the running process (sysinfo).
    pub(crate) fn resources(&self) -> Option<supervisor::Resources> {
        self.job.resources()
    }
}
