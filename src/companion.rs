//! Companion plugins: child processes launched and supervised through the
//! `supervisor` crate, spoken to over gRPC after the go-plugin handshake.
//!
//! - [`launch`](self::launch): config → supervisor `Spec` (go-plugin environment,
//!   CPU limits) and `Policy` (restart, backoff, liveness).
//! - `hooks`: what the supervisor calls back into for each run: readiness
//!   (read and check the handshake, connect, first health check, hand the
//!   connection to the owner), liveness (a health check over the owner's
//!   connection), pre-stop (Controller `Shutdown`), stderr into `tracing`.
//! - `owner`: the plugin's owner task, the only writer of its snapshot:
//!   joins the supervisor's state with the runs' connections, redials a
//!   broken connection of a live process, carries out commands.

mod hooks;
mod launch;
mod logs;
mod owner;
mod rundir;
mod start;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use crate::{
    call::admission::Admission,
    command,
    config::{CompanionConfig, PluginConfig},
    events::Events,
    plugin::Started,
    snapshot::Publisher,
    status::PluginState,
};

/// How many health reports from the liveness hook may wait for the owner.
const HEALTH_BUFFER: usize = 4;

/// Spawns the plugin's process (through the supervisor) and its owner task;
/// returns at once.
pub(crate) fn start(
    plugin: &PluginConfig,
    companion: &CompanionConfig,
    admission: Arc<Admission>,
    events: &Events,
) -> Started {
    let (mailbox, inbox) = command::channel();
    let (publisher, snapshot) =
        Publisher::new(&plugin.name, PluginState::Starting { attempt: 0 }, events);
    // The plugin's private socket and temp directory (emptied after each run,
    // removed with the plugin); without it the plugin picks its own.
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
    let (start_tx, start_rx) = mpsc::unbounded_channel();
    let hooks = Arc::new(hooks::CompanionHooks::new(
        plugin,
        companion,
        publisher.subscribe(),
        ready_tx,
        health_tx,
        start_tx,
        dir,
    ));
    let (spec, policy) = launch::spec_and_policy(plugin, companion, run_env);
    let job = supervisor::Job::spawn(plugin.name.clone(), spec, policy, hooks);
    let owner = owner::Owner {
        name: plugin.name.clone(),
        job: job.clone(),
        stop_grace: companion.stop_grace,
        drain_timeout: plugin.drain_timeout,
        health: plugin.health.clone(),
        admission,
        inbox,
        ready_rx,
        health_rx,
        start_rx,
        publisher,
    };
    Started {
        snapshot,
        mailbox,
        job: Some(job),
        owner: AbortOnDropHandle::new(tokio::spawn(owner.run())),
    }
}
