//! The one value each plugin's owner task publishes on a `watch` channel:
//! [`Snapshot`]. Calls, `status()`, `watch()` and the companion's hooks all
//! read it; only the owner writes it ([`Publisher`]).

use std::sync::Arc;

use supervisor::Exit;
use tokio::sync::watch;

use crate::{
    call::CallSettings,
    conn::Conn,
    events::{EventKind, Events, wall_time},
    remote::FleetView,
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
    /// A companion's serving supervisor job (for its resource figures and stderr tail).
    pub(crate) job: Option<supervisor::Job>,
    /// Other runs of a companion while a blue/green upgrade overlaps them with this one.
    pub(crate) others: Vec<crate::status::OtherRun>,
    /// Upgrades (blue/green replacements, reloads) so far, and how the last one ended.
    pub(crate) upgrades: crate::status::Upgrades,
    /// What calls obey (a reload may change it).
    pub(crate) settings: Arc<CallSettings>,
    /// A remote fleet's endpoints and the ones in rotation (then `link` is `None`).
    pub(crate) fleet: Option<Arc<FleetView>>,
}

/// A live connection and the client calls use over it.
#[derive(Debug, Clone)]
pub(crate) struct Linked {
    pub(crate) conn: Conn,
    pub(crate) generation: u64,
}

impl Linked {
    pub(crate) fn new(conn: Conn, generation: u64) -> Self {
        Linked { conn, generation }
    }
}

impl Snapshot {
    pub(crate) fn new(state: PluginState, settings: CallSettings) -> Self {
        Snapshot {
            settings: Arc::new(settings),
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
            job: None,
            others: Vec::new(),
            upgrades: Default::default(),
            fleet: None,
        }
    }

    /// The connection a call's attempt takes from a ready plugin, never connection
    /// `failed` (the one a call's request just came back unsent from). A fleet picks one of
    /// its endpoints in rotation (power of two choices, `remote/balance.rs`).
    pub(crate) fn ready_link(&self, failed: Option<u64>) -> Option<&Linked> {
        if !matches!(self.state, PluginState::Ready) {
            return None;
        }
        match &self.fleet {
            Some(fleet) => fleet.rotation.pick(failed),
            None => self.link.as_ref().filter(|l| failed != Some(l.generation)),
        }
    }

    /// A fleet's endpoints as the status shows them (empty without a fleet).
    pub(crate) fn endpoints(&self) -> Vec<crate::status::EndpointStatus> {
        self.fleet
            .as_deref()
            .map(FleetView::status)
            .unwrap_or_default()
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
        settings: CallSettings,
        events: &Events,
    ) -> (Self, watch::Receiver<Snapshot>) {
        let snapshot = Snapshot::new(initial, settings);
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
            change(s);
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

    /// Announces an event that is not a state change (an upgrade's steps, a retired
    /// run's exit), with the snapshot's state, run and pid unless `fill` says otherwise.
    pub(crate) fn event(&self, kind: EventKind, fill: impl FnOnce(&mut crate::events::Event)) {
        let s = self.tx.borrow();
        self.events.emit(&self.name, kind, |e| {
            e.state = s.state.to_string();
            e.run = s.run;
            e.pid = s.pid;
            fill(e);
        });
    }

    pub(crate) fn set_state(&self, state: PluginState) {
        self.update(|s| s.state = state);
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
