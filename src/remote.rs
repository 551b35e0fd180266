//! Remote plugins: gRPC servers at an address, no process control. The owner
//! task keeps one connection, health-checks it, and reconnects with its own
//! backoff (tonic's channel reconnects on every call with none), gating calls
//! on the state meanwhile. When the server comes back, calls succeed again
//! without any action by the host.

mod owner;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::{
    config::{PluginConfig, RemoteConfig},
    link::Link,
    status::{Health, PluginState, PluginStatus},
};

/// What the host asks of the owner task.
#[derive(Debug)]
enum Command {
    Disable(oneshot::Sender<()>),
    Enable(oneshot::Sender<()>),
    Reconnect(oneshot::Sender<()>),
    Destroy(oneshot::Sender<()>),
}

/// Figures the owner task publishes for status.
#[derive(Debug, Default)]
struct Figures {
    reconnects: u64,
    health: Option<Health>,
}

/// The remote side of a [`PluginHandle`](crate::PluginHandle).
#[derive(Debug)]
pub(crate) struct Remote {
    commands: mpsc::UnboundedSender<Command>,
    /// Calls that saw a broken connection wake the owner to probe at once.
    suspect: Arc<Suspect>,
    figures: Arc<Mutex<Figures>>,
    address: String,
}

#[derive(Debug, Default)]
struct Suspect {
    generation: Mutex<Option<u64>>,
    notify: Notify,
}

impl Remote {
    pub(crate) fn start(
        plugin: &PluginConfig,
        remote: &RemoteConfig,
    ) -> (Self, watch::Receiver<Link>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let (link_tx, link_rx) = watch::channel(Link::down(PluginState::Connecting { attempt: 0 }));
        let suspect = Arc::new(Suspect::default());
        let figures = Arc::new(Mutex::new(Figures::default()));
        let owner = owner::Owner {
            name: plugin.name.clone(),
            dest: owner::dest(remote),
            connect_timeout: remote.connect_timeout,
            keepalive: remote.keepalive,
            backoff: remote
                .backoff
                .to_backoff()
                .expect("a loaded or validated config has a valid backoff"),
            health: plugin.health.clone(),
            commands: rx,
            suspect: suspect.clone(),
            figures: figures.clone(),
            link: link_tx,
        };
        tokio::spawn(owner.run());
        (
            Remote {
                commands,
                suspect,
                figures,
                address: remote.address.to_uri(),
            },
            link_rx,
        )
    }

    pub(crate) fn suspect(&self, generation: u64) {
        *self.suspect.generation.lock() = Some(generation);
        self.suspect.notify.notify_one();
    }

    async fn send(&self, make: impl FnOnce(oneshot::Sender<()>) -> Command) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(make(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) async fn disable(&self) {
        self.send(Command::Disable).await;
    }

    pub(crate) async fn enable(&self) {
        self.send(Command::Enable).await;
    }

    pub(crate) async fn restart(&self) {
        self.send(Command::Reconnect).await;
    }

    pub(crate) async fn destroy(&self) {
        self.send(Command::Destroy).await;
    }

    pub(crate) fn fill_status(&self, status: &mut PluginStatus) {
        let figures = self.figures.lock();
        status.restarts = figures.reconnects;
        status.health = figures.health.clone().unwrap_or(Health::Unknown);
        status.address = Some(self.address.clone());
    }
}
