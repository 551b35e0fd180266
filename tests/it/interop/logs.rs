//! A `tracing` layer that records the host's forwarded plugin stderr (target
//! `plugin`, field `plugin`), so tests can check at which level each line of
//! a plugin landed. Installed as the process's global subscriber on first
//! use; only target `plugin` is recorded, other events stay disabled.

use std::{
    sync::{Mutex, OnceLock},
    time::Duration,
};

use tokio::sync::watch;
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, filter::Targets, layer::Context, prelude::*};

/// One forwarded line.
#[derive(Debug, Clone)]
pub struct Line {
    pub plugin: String,
    pub level: Level,
    pub message: String,
}

/// Every forwarded line so far, and a counter that changes with each.
pub struct Logs {
    lines: Mutex<Vec<Line>>,
    count: watch::Sender<usize>,
}

static LOGS: OnceLock<Logs> = OnceLock::new();

/// The recorder, installed on first use.
pub fn logs() -> &'static Logs {
    static INSTALL: OnceLock<()> = OnceLock::new();
    let logs = LOGS.get_or_init(|| Logs {
        lines: Mutex::new(vec![]),
        count: watch::Sender::new(0),
    });
    INSTALL.get_or_init(|| {
        let subscriber = tracing_subscriber::registry()
            .with(Recorder.with_filter(Targets::new().with_target("plugin", Level::TRACE)));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber in the tests");
    });
    logs
}

impl Logs {
    /// The lines of `plugin` so far.
    pub fn of(&self, plugin: &str) -> Vec<Line> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.plugin == plugin)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until the lines of `plugin` satisfy `done`; returns them.
    pub async fn wait_for(
        &self,
        plugin: &str,
        timeout: Duration,
        done: impl Fn(&[Line]) -> bool,
    ) -> Vec<Line> {
        let mut changed = self.count.subscribe();
        let wait = async {
            loop {
                changed.borrow_and_update();
                let lines = self.of(plugin);
                if done(&lines) {
                    return lines;
                }
                changed.changed().await.expect("the sender is static");
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(lines) => lines,
            Err(_) => panic!(
                "timed out after {timeout:?} waiting for log lines of {plugin}; got {:#?}",
                self.of(plugin)
            ),
        }
    }
}

struct Recorder;

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visit = Fields::default();
        event.record(&mut visit);
        let (Some(plugin), Some(logs)) = (visit.plugin, LOGS.get()) else {
            return;
        };
        logs.lines.lock().unwrap().push(Line {
            plugin,
            level: *event.metadata().level(),
            message: visit.message,
        });
        logs.count.send_modify(|n| *n += 1);
    }
}

#[derive(Default)]
struct Fields {
    plugin: Option<String>,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "plugin" => self.plugin = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "plugin" => self.plugin = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}
