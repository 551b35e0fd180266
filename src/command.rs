//! What handles send a plugin's owner task: [`Order`]s (enable, disable,
//! restart, destroy), each resolved once the snapshot shows its effect, and
//! [`Nudge`]s from calls (best effort, never blocking a call).

use tokio::sync::{mpsc, oneshot};

use crate::config::PluginConfig;

/// A command to the owner.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Enable,
    Disable,
    Restart,
    /// Replace the running process without a gap (blue/green), with this configuration
    /// when given (a reload), else the current one (a new binary at the same path). A
    /// remote plugin reconnects, to the new address when given.
    Upgrade(Option<Box<PluginConfig>>),
    Destroy,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The plugin is destroyed (terminal).
    Gone,
    /// It could not be done; the plugin goes on as before. Why, in words.
    Failed(String),
}

/// The command was not carried out: the plugin is destroyed (terminal).
pub(crate) const GONE: Refused = Refused::Gone;

/// A command and where to say it is done.
#[derive(Debug)]
pub(crate) struct Order {
    pub(crate) command: Command,
    pub(crate) done: oneshot::Sender<Result<(), Refused>>,
}

/// A hint from a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nudge {
    /// A call is waiting for the plugin to be ready (a remote owner dials now
    /// instead of when its backoff runs out).
    Waiting,
    /// A call saw connection `generation` fail: check it now.
    Suspect(u64),
}

/// How many nudges may wait for the owner; more are dropped (the owner
/// acts on the first of a kind anyway).
pub(crate) const NUDGE_BUFFER: usize = 16;

/// The handles' side of an owner's inboxes.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    orders: mpsc::UnboundedSender<Order>,
    nudges: mpsc::Sender<Nudge>,
}

/// The owner's side.
#[derive(Debug)]
pub(crate) struct Inbox {
    pub(crate) orders: mpsc::UnboundedReceiver<Order>,
    pub(crate) nudges: mpsc::Receiver<Nudge>,
}

pub(crate) fn channel() -> (Mailbox, Inbox) {
    let (orders, order_rx) = mpsc::unbounded_channel();
    let (nudges, nudge_rx) = mpsc::channel(NUDGE_BUFFER);
    (
        Mailbox { orders, nudges },
        Inbox {
            orders: order_rx,
            nudges: nudge_rx,
        },
    )
}

impl Mailbox {
    /// Sends `command` and waits until the owner has carried it out and
    /// published the result. `Err(Gone)` once the plugin is destroyed (or its
    /// owner has ended).
    pub(crate) async fn order(&self, command: Command) -> Result<(), Refused> {
        let (done, rx) = oneshot::channel();
        self.orders
            .send(Order { command, done })
            .map_err(|_| Refused::Gone)?;
        rx.await.unwrap_or(Err(Refused::Gone))
    }

    /// Best effort: dropped when the owner is busy.
    pub(crate) fn nudge(&self, nudge: Nudge) {
        let _ = self.nudges.try_send(nudge);
    }
}
