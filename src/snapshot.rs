//! The one value each plugin's owner task publishes on a `watch` channel:
//! [`Snapshot`]. Calls, `status()`, `watch()` and the companion's hooks all
//! read it; only the owner writes it ([`Publisher`]).

use std::sync::Arc;

use supervisor::Exit;
use tokio::sync::watch;

use crate::{
    conn::Conn,
    events::{EventKind, Events, wall_time},
    link::{self, Client},
    status::{Health, PluginState},
};

/// A plugin as its owner sees it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) state: PluginState,
    /// The current connection. Calls use it only while `state` is `Ready`;
    /// it outlives `Ready` only while the same run still lives (a companion
    /// being stopped keeps it for `Shutdown`). Never a previous run's.
    pub(crate) link: Option<Linked>,
    /// Companion: the current run id and pid while a process exists.
    pub(crate) run: Option<u64>,
    pub(crate) pid: Option<u32>,
    /// The address being served (companion: the current run's handshake).
    pub(crate) address: Option<Arc<str>>,
    pub(crate) health: Health,
    pub(crate) restarts: u64,
    /// The number of connections made so far.
    pub(crate) generation: u64,
    pub(crate) last_exit: Option<Exit>,
    pub(crate) last_error: Option<String>,
    pub(crate) cpus: Option<Vec<usize>>,
}

/// A live connection and the client calls use over it.
#[derive(Debug, Clone)]
pub(crate) struct Linked {
    pub(crate) conn: Conn,
    pub(crate) client: Client,
    pub(crate) generation: u64,
}

impl Linked {
    pub(crate) fn new(conn: Conn, generation: u64) -> Self {
        Linked {
            client: link::client(conn.clone()),
            conn,
            generation,
        }
    }
}

impl Snapshot {
    pub(crate) fn new(state: PluginState) -> Self {
        Snapshot {
            state,
            link: None,
            run: None,
            pid: None,
            address: None,
            health: Health::Unknown,
            restarts: 0,
            generation: 0,
            last_exit: None,
            last_error: None,
            cpus: None,
        }
    }

    /// The connection of a ready plugin.
    pub(crate) fn ready_link(&self) -> Option<&Linked> {
        match (&self.state, &self.link) {
            (PluginState::Ready, Some(l)) => Some(l),
            _ => None,
        }
    }
}

/// The owner's side of the channel: every change goes through here, and
/// state transitions are traced.
#[derive(Debug)]
pub(crate) struct Publisher {
    name: Arc<str>,
    tx: watch::Sender<Snapshot>,
    events: Events,
}

impl Publisher {
    /// A publisher of `initial`, announced on `events`.
    pub(crate) fn new(
        name: &str,
        initial: PluginState,
        events: &Events,
    ) -> (Self, watch::Receiver<Snapshot>) {
        let snapshot = Snapshot::new(initial);
        let name: Arc<str> = name.into();
        events.emit(&name, EventKind::of(&snapshot.state), |e| {
            describe(e, &snapshot)
        });
        let (tx, rx) = watch::channel(snapshot);
        (
            Publisher {
                name,
                tx,
                events: events.clone(),
            },
            rx,
        )
    }

    /// Changes the snapshot; readers are woken when anything changed that
    /// they act on (state, connection, run, health, counters).
    pub(crate) fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let name = &self.name;
        self.tx.send_modify(|s| {
            let before = std::mem::discriminant(&s.state);
            let was_disabled = matches!(s.state, PluginState::Disabled);
            let generation = s.generation;
            let (run_before, pid_before) = (s.run, s.pid);
            let exit_before = s.last_exit.clone();
            change(s);
            if s.last_exit.is_some() && s.last_exit != exit_before {
                self.events.emit(name, EventKind::Exited, |e| {
                    e.state = s.state.to_string();
                    e.run = run_before.or(s.run);
                    e.pid = pid_before.or(s.pid);
                    e.exit = s.last_exit.as_ref().map(ToString::to_string);
                });
            }
            if std::mem::discriminant(&s.state) != before || s.generation != generation {
                match &s.state {
                    PluginState::Failed { .. } | PluginState::BackingOff { .. } => {
                        tracing::warn!(plugin = %name, state = %s.state, "plugin state")
                    }
                    _ => tracing::info!(plugin = %name, state = %s.state, generation = s.generation, "plugin state"),
                }
            }
            if std::mem::discriminant(&s.state) != before {
                if was_disabled && !matches!(s.state, PluginState::Destroying | PluginState::Destroyed) {
                    self.events.emit(name, EventKind::Enabled, |e| describe(e, s));
                }
                self.events.emit(name, EventKind::of(&s.state), |e| describe(e, s));
            }
        });
    }

    pub(crate) fn set_state(&self, state: PluginState) {
        self.update(|s| s.state = state);
    }

    /// A receiver for hooks and handles.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }
}

/// The fields of a state event, from the snapshot that has the new state.
fn describe(e: &mut crate::events::Event, s: &Snapshot) {
    e.state = s.state.to_string();
    e.run = s.run;
    e.pid = s.pid;
    match &s.state {
        PluginState::BackingOff {
            until, last_exit, ..
        } => {
            e.until = Some(wall_time(*until));
            e.exit = Some(last_exit.to_string());
        }
        PluginState::Unreachable { until, .. } => {
            e.until = Some(wall_time(*until));
            e.reason = s.last_error.clone();
        }
        PluginState::Failed { reason } => e.reason = Some(reason.to_string()),
        PluginState::Connecting { .. } => e.reason = s.last_error.clone(),
        _ => {}
    }
}
