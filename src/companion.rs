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
//! - `pin`: `companion.sha256`, checked before every start on the file that is executed.
//! - `watch`: `companion.watch`, the binary's directory watched; a settled replacement
//!   that passes its checks is upgraded to blue/green by the owner.

mod hooks;
mod launch;
mod limits;
mod line;
mod logs;
mod owner;
mod pin;
mod rundir;
mod start;
mod watch;

use std::sync::Arc;

use tokio_util::task::AbortOnDropHandle;

use crate::{
    call::{CallSettings, admission::Admission},
    command,
    config::{CompanionConfig, PluginConfig},
    events::Events,
    plugin::Started,
    snapshot::Publisher,
    status::PluginState,
};

/// Spawns the plugin's process (through the supervisor) and its owner task;
/// returns at once.
pub(crate) fn start(
    plugin: &PluginConfig,
    companion: &CompanionConfig,
    admission: Arc<Admission>,
    events: &Events,
) -> Started {
    let (mailbox, inbox) = command::channel();
    let (publisher, snapshot) = Publisher::new(
        &plugin.name,
        PluginState::Starting { attempt: 0 },
        CallSettings::of(plugin),
        events,
    );
    let runs = supervisor::RunIds::default();
    let line = line::Line::launch(plugin, companion, &runs);
    let mut watcher = watch::Watcher::new(&plugin.name);
    watcher.follow(companion);
    let owner = owner::Owner {
        name: plugin.name.clone(),
        plugin: plugin.clone(),
        runs,
        line,
        admission,
        inbox,
        publisher,
        watcher,
    };
    Started {
        snapshot,
        mailbox,
        owner: AbortOnDropHandle::new(tokio::spawn(owner.run())),
    }
}
