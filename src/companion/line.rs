//! A line: one supervisor job running the plugin's binary, with what its hooks send the
//! owner. A plugin has one line; during a blue/green replacement, two (the serving one
//! and its candidate), each with its own private run directory, drawing run ids from one
//! sequence.

use std::sync::Arc;

use supervisor::RunIds;
use tokio::sync::{mpsc, watch};

use super::{hooks, launch, rundir};
use crate::{
    config::{CompanionConfig, PluginConfig},
    conn::Conn,
};

/// How many health reports from the liveness hook may wait for the owner.
const HEALTH_BUFFER: usize = 4;

pub(super) struct Line {
    pub(super) job: supervisor::Job,
    /// The job's state.
    pub(super) sup: watch::Receiver<supervisor::State>,
    /// Each ready run's connection.
    pub(super) ready_rx: mpsc::UnboundedReceiver<hooks::Incarnation>,
    /// Liveness results.
    pub(super) health_rx: mpsc::Receiver<Result<(), String>>,
    /// Each run that ended (and why it never became ready, if it did not), sent before
    /// the supervisor publishes the state that follows the run.
    pub(super) ended_rx: mpsc::UnboundedReceiver<hooks::RunEnd>,
    /// The connection the hooks probe and send `Shutdown` over (the owner's current one,
    /// as a control connection).
    pub(super) conn_tx: watch::Sender<Option<Conn>>,
}

impl Line {
    /// Spawns the job (through the supervisor); returns at once.
    pub(super) fn launch(
        plugin: &PluginConfig,
        companion: &CompanionConfig,
        runs: &RunIds,
    ) -> Line {
        // The line's private socket and temp directory (emptied after each run, removed
        // with the line); without it the plugin picks its own.
        let dir = match rundir::HostDir::shared().and_then(|host| host.plugin_dir(&plugin.name)) {
            Ok(dir) => Some(dir),
            Err(error) => {
                tracing::warn!(plugin = %plugin.name, %error, "no private run directory; the plugin chooses where its socket goes");
                None
            }
        };
        let run_env = dir.as_ref().map(rundir::PluginDir::env).unwrap_or_default();
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let (health_tx, health_rx) = mpsc::channel(HEALTH_BUFFER);
        let (start_tx, ended_rx) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = watch::channel(None);
        let hooks = Arc::new(hooks::CompanionHooks::new(
            plugin, companion, conn_rx, ready_tx, health_tx, start_tx, dir,
        ));
        let (spec, policy) = launch::spec_and_policy(plugin, companion, run_env);
        let job =
            supervisor::Job::spawn_numbered(plugin.name.clone(), spec, policy, hooks, runs.clone());
        Line {
            sup: job.state(),
            job,
            ready_rx,
            health_rx,
            ended_rx,
            conn_tx,
        }
    }

    /// Tells the hooks which connection to probe and stop the process through.
    pub(super) fn set_conn(&self, conn: Option<&Conn>) {
        self.conn_tx.send_if_modified(|now| {
            let same = match (now.as_ref(), conn) {
                (Some(a), Some(b)) => a.same(b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                *now = conn.map(Conn::control);
            }
            !same
        });
    }
}
