//! The host's lifecycle event log: every plugin's state changes and exits, in order, with a
//! sequence number.
//!
//! Each plugin's owner emits through its [`Publisher`](crate::snapshot::Publisher) as it
//! publishes the change, so no transition is missed (a watch channel keeps only the latest
//! value). The log keeps the last [`BACKLOG`] events for late subscribers (the admin API's
//! `Last-Event-ID`, the status page) and broadcasts new ones; a subscriber that falls more
//! than [`BUFFER`] events behind is told how many it missed.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::status::PluginState;

/// Events kept for subscribers that arrive late.
pub const BACKLOG: usize = 256;

/// Events a subscriber may fall behind before it misses some.
pub const BUFFER: usize = 1024;

/// What happened to a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A companion process is being started.
    Starting,
    /// A remote plugin (or a companion's broken connection) is being (re)connected.
    Connecting,
    /// Connected and healthy: calls go through.
    Ready,
    /// A companion's run ended (`exit` says how).
    Exited,
    /// A companion will be restarted at `until`.
    BackingOff,
    /// A remote plugin is unreachable; the next attempt is at `until`.
    Unreachable,
    /// Stopping for a disable or restart.
    Stopping,
    /// Stopped; not restarting by itself.
    Stopped,
    /// Disabled by the host.
    Disabled,
    /// Enabled again after being disabled.
    Enabled,
    /// Given up (`reason` says why).
    Failed,
    /// Destroy began: new calls are refused.
    Destroying,
    /// Destroyed for good.
    Destroyed,
    /// An upgrade began: a new process starts beside the serving one (a remote plugin:
    /// a new connection is dialed).
    Upgrading,
    /// The upgrade switched calls to the new process (connection); the old one finishes
    /// its calls and stops.
    Upgraded,
    /// The upgrade failed (`reason`); the old process (connection) goes on serving.
    UpgradeFailed,
    /// The binary watch saw the binary replaced but did not start it (`reason`: not a
    /// regular file, not executable, failing `companion.sha256`).
    BinaryIgnored,
    /// A remote fleet's endpoint was ejected (`reason`: which, and why; `until`: when it
    /// is tried again).
    EndpointEjected,
    /// An ejected endpoint's time ran out: it is back in rotation once healthy
    /// (`reason`: which).
    EndpointReturned,
    /// A unix socket in the pluggable folder answered gRPC and became this plugin
    /// (`reason`: the socket and the services its reflection listed).
    Discovered,
    /// A pluggable plugin's socket left the folder (or was replaced): the plugin is out
    /// of the registry and is being destroyed (`reason`: the socket).
    Removed,
    /// A unix socket in the pluggable folder was not made a plugin (`reason`: it does not
    /// answer gRPC, its name is unusable or taken); it is looked at again when the file
    /// is replaced. `plugin` is the name it would have had.
    SocketSkipped,
}

impl EventKind {
    /// The kind whose event announces `state`.
    pub(crate) fn of(state: &PluginState) -> Self {
        match state {
            PluginState::Starting { .. } => Self::Starting,
            PluginState::Connecting { .. } => Self::Connecting,
            PluginState::Ready => Self::Ready,
            PluginState::BackingOff { .. } => Self::BackingOff,
            PluginState::Unreachable { .. } => Self::Unreachable,
            PluginState::Stopping => Self::Stopping,
            PluginState::Stopped => Self::Stopped,
            PluginState::Disabled => Self::Disabled,
            PluginState::Failed { .. } => Self::Failed,
            PluginState::Destroying => Self::Destroying,
            PluginState::Destroyed => Self::Destroyed,
        }
    }
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in the host's log, from 1, without gaps.
    pub seq: u64,
    /// When it happened (RFC 3339 in JSON).
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// The plugin.
    pub plugin: Arc<str>,
    /// What happened.
    pub kind: EventKind,
    /// The plugin's state after it, as status shows it.
    pub state: String,
    /// The run (companion) the event is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// The process (companion), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How the run ended (`exited`), or the last exit (`backing_off`, `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// When the next attempt happens (`backing_off`, `unreachable`; RFC 3339 in JSON).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option",
        default
    )]
    pub until: Option<SystemTime>,
    /// Why (`failed`), or the last error (`unreachable`, `connecting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The log. Cheap to clone; every clone is the same log.
#[derive(Debug, Clone)]
pub struct Events(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    log: Mutex<Log>,
    tx: broadcast::Sender<Event>,
}

#[derive(Debug, Default)]
struct Log {
    next: u64,
    backlog: VecDeque<Event>,
}

impl Default for Events {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        Events(Arc::new(Inner {
            log: Mutex::new(Log {
                next: 1,
                backlog: VecDeque::with_capacity(BACKLOG),
            }),
            tx,
        }))
    }
}

/// Follows the log: first the kept events after a point, then new ones as they happen.
#[derive(Debug)]
pub struct Subscription {
    backlog: VecDeque<Event>,
    rx: broadcast::Receiver<Event>,
    /// The last sequence number handed out (or skipped over).
    last: u64,
}

/// What [`Subscription::next`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The next event.
    Event(Event),
    /// The subscriber fell behind (or asked for events no longer kept): this many were
    /// missed; events go on after them.
    Missed(u64),
    /// The log is gone (the registry was dropped).
    Closed,
}

impl Events {
    /// Follows the log from the event after `after` (a sequence number; `None` or 0: only
    /// new events; `Some(n)` replays the kept events after `n`, with a [`Next::Missed`]
    /// first if some of them are no longer kept).
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let log = self.0.log.lock();
        let rx = self.0.tx.subscribe();
        let last_emitted = log.next - 1;
        let after = after.unwrap_or(last_emitted).min(last_emitted);
        let backlog = log
            .backlog
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        Subscription {
            backlog,
            rx,
            last: after,
        }
    }

    /// The kept events (at most [`BACKLOG`]), oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.0.log.lock().backlog.iter().cloned().collect()
    }

    /// Appends an event (sequence number and time are set here).
    pub(crate) fn emit(&self, plugin: &Arc<str>, kind: EventKind, fill: impl FnOnce(&mut Event)) {
        let mut event = Event {
            seq: 0,
            time: SystemTime::now(),
            plugin: plugin.clone(),
            kind,
            state: String::new(),
            run: None,
            pid: None,
            exit: None,
            until: None,
            reason: None,
        };
        fill(&mut event);
        let mut log = self.0.log.lock();
        event.seq = log.next;
        log.next += 1;
        if log.backlog.len() == BACKLOG {
            log.backlog.pop_front();
        }
        log.backlog.push_back(event.clone());
        // Sent under the lock so that subscribe() sees each event either in the backlog or
        // on its receiver, never both or neither. No receiver is not an error.
        let _ = self.0.tx.send(event);
    }
}

impl Subscription {
    /// The next event, waiting for one.
    pub async fn next(&mut self) -> Next {
        loop {
            let event = match self.backlog.pop_front() {
                Some(e) => e,
                None => match self.rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Closed) => return Next::Closed,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                },
            };
            if event.seq <= self.last {
                continue; // replayed from the backlog already
            }
            let missed = event.seq - self.last - 1;
            if missed > 0 {
                self.last = event.seq - 1;
                self.backlog.push_front(event);
                return Next::Missed(missed);
            }
            self.last = event.seq;
            return Next::Event(event);
        }
    }
}

/// `until` as a wall-clock time: `Instant`s cannot be shown.
pub(crate) fn wall_time(at: Instant) -> SystemTime {
    let now = Instant::now();
    match at.checked_duration_since(now) {
        Some(ahead) => SystemTime::now() + ahead,
        None => SystemTime::now() - now.duration_since(at).min(Duration::from_secs(1 << 30)),
    }
}

/// RFC 3339 times in UTC with milliseconds.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::Serializer;
    use time::{OffsetDateTime, format_description::well_known::Rfc3339};

    /// `t` as RFC 3339 text.
    pub(crate) fn format(t: SystemTime) -> String {
        let t = OffsetDateTime::from(t);
        let t = t
            .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
            .unwrap_or(t);
        t.format(&Rfc3339).unwrap_or_default()
    }

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub(crate) mod option {
        use std::time::SystemTime;

        use serde::Serializer;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::format(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(events: &Events, kind: EventKind) {
        events.emit(&Arc::from("p"), kind, |e| e.state = format!("{kind:?}"));
    }

    fn seq(next: Next) -> u64 {
        match next {
            Next::Event(e) => e.seq,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_subscriber_gets_new_events_in_order_and_replays_on_request() {
        let events = Events::default();
        emit(&events, EventKind::Starting);
        let mut live = events.subscribe(None);
        let mut replay = events.subscribe(Some(0));
        emit(&events, EventKind::Ready);
        emit(&events, EventKind::Exited);
        assert_eq!(seq(live.next().await), 2);
        assert_eq!(seq(live.next().await), 3);
        assert_eq!(seq(replay.next().await), 1);
        assert_eq!(seq(replay.next().await), 2);
        assert_eq!(seq(replay.next().await), 3);
        let json = serde_json::to_value(&events.recent()[2]).unwrap();
        assert_eq!(json["kind"], "exited");
        assert_eq!(json["plugin"], "p");
        assert!(json["time"].as_str().unwrap().ends_with('Z'), "{json}");
        assert!(json.get("until").is_none(), "{json}");
    }

    proptest::proptest! {
        /// Whatever the interleaving of emits and reads, a subscriber sees events in
        /// order, and every event after its start point is either seen or counted missed.
        #[test]
        fn every_event_is_seen_or_counted_missed(
            steps in proptest::collection::vec((0usize..700, 0usize..700), 1..8),
            pre in 0u64..400,
            after in proptest::option::of(0u64..450),
        ) {
            use futures_util::FutureExt as _;
            let events = Events::default();
            for _ in 0..pre {
                emit(&events, EventKind::Ready);
            }
            let mut sub = events.subscribe(after);
            // Replayed from `after` (up to what was emitted), or only new events.
            let start = after.unwrap_or(pre).min(pre);
            let (mut seen, mut missed, mut last) = (0u64, 0u64, start);
            let mut emitted = 0u64;
            let mut read = |sub: &mut Subscription, n: usize| -> Result<(), proptest::test_runner::TestCaseError> {
                for _ in 0..n {
                    match sub.next().now_or_never() {
                        None => break,
                        Some(Next::Event(e)) => {
                            proptest::prop_assert!(e.seq > last, "{} after {}", e.seq, last);
                            last = e.seq;
                            seen += 1;
                        }
                        Some(Next::Missed(k)) => missed += k,
                        Some(Next::Closed) => proptest::prop_assert!(false, "closed"),
                    }
                }
                Ok(())
            };
            for (emits, reads) in steps {
                for _ in 0..emits {
                    emit(&events, EventKind::Ready);
                    emitted += 1;
                }
                read(&mut sub, reads)?;
            }
            read(&mut sub, usize::MAX)?;
            let total = pre + emitted;
            proptest::prop_assert_eq!(seen + missed, total - start);
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_many_it_missed() {
        let events = Events::default();
        let mut slow = events.subscribe(None);
        let total = (BUFFER + 10) as u64;
        for _ in 0..total {
            emit(&events, EventKind::Ready);
        }
        // The broadcast kept the newest BUFFER; the first 10 are gone.
        assert_eq!(slow.next().await, Next::Missed(10));
        assert_eq!(seq(slow.next().await), 11);
        // Asking for events older than the backlog: told what was dropped.
        let mut late = events.subscribe(Some(0));
        assert_eq!(late.next().await, Next::Missed(total - BACKLOG as u64));
        assert_eq!(seq(late.next().await), total - BACKLOG as u64 + 1);
    }
}
