//! Pluggable plugins (`docs/pluggable.md`): gRPC servers that announce themselves by
//! creating a unix socket in a folder (the host config's `pluggable:` section; Polaris's
//! `POLARIS_PLUGGABLE_SOCKETS_FOLDER`, default `/tmp/polaris-pluggable-sockets`).
//!
//! One task per registry ([`Discovery`], `discovery.rs`) watches the folder (`watch.rs`),
//! lists its sockets (`scan.rs`) and compares them with what it knew (`diff.rs`). A new
//! socket is probed (`probe.rs`: health, then reflection for its services) and, if it
//! answers gRPC, registered as a plugin named after the file (`name.rs`): a remote plugin
//! at `unix:<socket>`, run by the remote owner (reconnect, health, backoff), shown with
//! mode `pluggable`. A socket that goes (or is replaced) takes its plugin out of the
//! registry, which is then destroyed. A socket that does not answer gRPC is reported (a
//! warning and a `socket_skipped` event) and looked at again only when its file is
//! replaced. The host never creates, changes or deletes anything in the folder.

mod diff;
mod discovery;
mod name;
mod probe;
mod scan;
mod watch;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

use crate::{config::PluggableConfig, events::Events, registry::SharedSet};

/// The discovery task of one registry. Dropping it aborts the task (its watch and probes
/// end with it); [`stop`](Self::stop) ends it and waits for the plugins it is destroying.
#[derive(Debug)]
pub(crate) struct Discovery {
    stop: CancellationToken,
    /// Asks the task to look at the folder again (a reload may have freed a name).
    look: Arc<Notify>,
    task: AbortOnDropHandle<()>,
}

impl Discovery {
    /// Starts watching `config.folder`, adding plugins to and removing them from `set`.
    /// The first look is made before this returns (the sockets there are being probed; a
    /// missing folder is reported and watched for). Must be called inside a tokio runtime.
    pub(crate) fn start(config: PluggableConfig, set: SharedSet, events: Events) -> Self {
        let stop = CancellationToken::new();
        let mut finder = discovery::Finder::new(config, set, events);
        let watch = finder.first_look();
        let look = Arc::new(Notify::new());
        let task =
            AbortOnDropHandle::new(tokio::spawn(finder.run(watch, look.clone(), stop.clone())));
        Discovery { stop, look, task }
    }

    /// Looks at the folder again soon: a socket skipped because a configured plugin had
    /// its name takes it once that plugin is gone.
    pub(crate) fn look_again(&self) {
        self.look.notify_one();
    }

    /// Ends the task: no socket is looked at any more; the plugins it registered stay in
    /// the registry (their owner is the registry's destroy or reload).
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}
