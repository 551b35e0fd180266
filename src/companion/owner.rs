//! The companion's owner task: the only writer of its [`Link`]. Link is Up
//! exactly while the supervisor says `Running { pid }` and the readiness hook
//! has handed over a connection for that same pid.

use std::os::unix::fs::FileTypeExt as _;

use tokio::sync::{mpsc, watch};

use super::hooks::Incarnation;
use crate::{handshake::PluginAddr, link::Link, sdk::SOCKET_DIR_PREFIX, status::PluginState};

pub(super) async fn run(
    name: String,
    mut state: watch::Receiver<supervisor::State>,
    mut ready_rx: mpsc::UnboundedReceiver<Incarnation>,
    link_tx: watch::Sender<Link>,
) {
    let mut current: Option<(Incarnation, u64)> = None;
    let mut generation = 0u64;
    let mut last_error: Option<String> = None;
    let mut published: Option<(PluginState, u64)> = None;
    loop {
        let sup = state.borrow_and_update().clone();
        if let supervisor::State::BackingOff { last_exit, .. } = &sup {
            last_error = Some(last_exit.to_string());
        }
        let link = match (&sup, &current) {
            (supervisor::State::Running { pid, .. }, Some((inc, generation)))
                if inc.pid == *pid =>
            {
                Link::up(inc.conn.clone(), *generation)
            }
            _ => Link::Down {
                state: map_state(&sup),
                last_error: last_error.clone(),
            },
        };
        let key = match &link {
            Link::Up { generation, .. } => (PluginState::Ready, *generation),
            Link::Down { state, .. } => (state.clone(), 0),
        };
        if published.as_ref() != Some(&key) {
            tracing::info!(plugin = %name, state = %key.0, "plugin state");
            link_tx.send_replace(link);
            published = Some(key);
        }
        if sup.is_at_rest() || matches!(sup, supervisor::State::BackingOff { .. }) {
            // The run is over: close its connection and stdio drain. (Not in
            // Starting: the next run's connection arrives before Running.)
            retire(current.take(), None);
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { break },
            Some(inc) = ready_rx.recv() => {
                generation += 1;
                let next = inc.addr.clone();
                retire(current.replace((inc, generation)), Some(&next));
            }
        }
    }
    link_tx.send_replace(Link::down(PluginState::Stopped));
}

/// A run is over and its process reaped: drop its connection, and remove the
/// unix socket it leaves behind when it did not exit gracefully (a go-plugin
/// or SDK plugin killed by a signal, a Go panic), unless the next run listens
/// on the same path.
fn retire(old: Option<(Incarnation, u64)>, next: Option<&PluginAddr>) {
    let Some((old, _)) = old else { return };
    if next == Some(&old.addr) {
        return;
    }
    let PluginAddr::Unix(path) = &old.addr else {
        return;
    };
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket || std::fs::remove_file(path).is_err() {
        return;
    }
    tracing::debug!(socket = %path.display(), pid = old.pid, "removed the socket of an ended run");
    // The SDK's private socket directory, if it is one and now empty.
    if let Some(dir) = path.parent()
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(SOCKET_DIR_PREFIX))
    {
        let _ = std::fs::remove_dir(dir);
    }
}

fn map_state(s: &supervisor::State) -> PluginState {
    use supervisor::State as S;
    match s {
        S::Starting { attempt } => PluginState::Starting { attempt: *attempt },
        // Running, but the connection is not handed over yet.
        S::Running { .. } => PluginState::Starting { attempt: 0 },
        S::BackingOff {
            attempt,
            until,
            last_exit,
            ..
        } => PluginState::BackingOff {
            attempt: *attempt,
            until: *until,
            last_exit: last_exit.to_string(),
        },
        S::Stopping { .. } => PluginState::Stopping,
        S::Stopped => PluginState::Stopped,
        S::Disabled => PluginState::Disabled,
        S::Failed { reason } => PluginState::Failed {
            reason: reason.to_string(),
        },
        _ => PluginState::Stopped,
    }
}
