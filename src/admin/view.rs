//! A plugin's status as the admin API shows it (JSON).

use serde::Serialize;

use crate::{
    EndpointState, Health, PluginHandle, PluginState, ReloadReport, Reloads, RunRole,
    events::{rfc3339, wall_time},
};

/// One plugin in `GET /maintain/v1/plugins`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PluginView {
    /// Its name.
    pub name: String,
    /// `companion`, `remote` or `pluggable`.
    pub mode: String,
    /// The state's short name (`ready`, `backing_off`, ...).
    pub state: &'static str,
    /// The state in words, with its details (`backing off (attempt 2) until ...`).
    pub state_detail: String,
    /// Whether calls go through now.
    pub ready: bool,
    /// The companion's run (counts from 1).
    pub run: Option<u64>,
    /// The companion's process.
    pub pid: Option<u32>,
    /// Where the plugin is reached.
    pub address: Option<String>,
    /// Connections made so far (each redial or restart adds one).
    pub generation: u64,
    /// Restarts so far.
    pub restarts: u64,
    /// `serving`, `unknown`, or `failing: <error> (N in a row)`.
    pub health: String,
    /// When the next start or attempt is (backing off, unreachable; RFC 3339).
    pub until: Option<String>,
    /// How the last run ended.
    pub last_exit: Option<String>,
    /// The companion's last stderr lines.
    pub stderr_tail: Vec<String>,
    /// The last error (connect, handshake, health).
    pub last_error: Option<String>,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls by outcome since start.
    pub calls: Calls,
    /// The last minute's calls.
    pub latency: Latency,
    /// CPU and memory of the companion's process, while one runs.
    pub resources: Option<Resources>,
    /// The CPUs the companion is pinned to.
    pub cpus: Option<Vec<usize>>,
    /// Runs beside the serving one during an upgrade (`candidate`, `retiring`).
    pub others: Vec<OtherRunView>,
    /// Upgrades (reloads of this plugin) so far.
    pub upgrades: UpgradesView,
    /// A remote fleet's endpoints (empty otherwise).
    pub endpoints: Vec<EndpointView>,
    /// A pluggable plugin's services, as its gRPC reflection listed them when its socket
    /// was found (absent otherwise, and for one that serves no reflection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
}

/// One endpoint of a remote fleet.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// Its address.
    pub address: String,
    /// `connecting`, `ready`, `ejected` or `unreachable`.
    pub state: &'static str,
    /// Until when it is ejected or backs off (RFC 3339).
    pub until: Option<String>,
    /// Its current connection's number, while connected.
    pub generation: Option<u64>,
    /// Requests in flight on it now.
    pub in_flight: u64,
    /// Calls sent to it since it joined.
    pub calls: u64,
    /// Times it was ejected.
    pub ejections: u64,
    /// Its last failure.
    pub last_error: Option<String>,
}

/// A run beside the serving one.
#[derive(Debug, Clone, Serialize)]
pub struct OtherRunView {
    /// `candidate` (starting, takes over once ready) or `retiring` (finishing its calls).
    pub role: &'static str,
    /// Its run id.
    pub run: Option<u64>,
    /// Its process.
    pub pid: Option<u32>,
}

/// Upgrades of one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradesView {
    /// Upgrades that switched to a new process (connection).
    pub done: u64,
    /// Upgrades that failed, the old one serving on.
    pub failed: u64,
    /// When the last one ended (RFC 3339).
    pub last_at: Option<String>,
    /// Why the last one failed (`null`: it succeeded, or there was none).
    pub last_error: Option<String>,
}

/// Calls by outcome.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct Calls {
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    pub overloaded: u64,
    pub fallback: u64,
}

/// The last minute's calls.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// What the figures cover, in seconds.
    pub window_seconds: f64,
    /// Calls in the window.
    pub calls: u64,
    /// Calls per second over the window.
    pub per_second: f64,
    /// Median latency in milliseconds (its bucket's upper bound; within 25 %).
    pub p50_ms: Option<f64>,
    /// 99th percentile in milliseconds, likewise.
    pub p99_ms: Option<f64>,
}

/// A companion process's CPU and memory.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    /// CPU use since the previous reading, in percent of one CPU (absent on the first).
    pub cpu_percent: Option<f32>,
    /// CPU time used so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
}

impl PluginView {
    /// The plugin now.
    pub fn of(plugin: &PluginHandle) -> Self {
        let s = plugin.status();
        let until = match &s.state {
            PluginState::BackingOff { until, .. } | PluginState::Unreachable { until, .. } => {
                Some(rfc3339::format(wall_time(*until)))
            }
            _ => None,
        };
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        PluginView {
            name: s.name,
            mode: s.mode.to_string(),
            state: s.state.name(),
            state_detail: s.state.to_string(),
            ready: matches!(s.state, PluginState::Ready),
            run: s.run,
            pid: s.pid,
            address: s.address,
            generation: s.generation,
            restarts: s.restarts,
            health: match &s.health {
                Health::Unknown => "unknown".into(),
                Health::Healthy => "serving".into(),
                Health::Unhealthy { failures, error } => {
                    format!("failing: {error} ({failures} in a row)")
                }
            },
            until,
            last_exit: s.last_exit.as_ref().map(ToString::to_string),
            stderr_tail: plugin.stderr_tail(),
            last_error: s.last_error,
            in_flight: s.in_flight,
            calls: Calls {
                ok: s.calls.ok,
                error: s.calls.error,
                timeout: s.calls.timeout,
                overloaded: s.calls.overloaded,
                fallback: s.calls.fallback,
            },
            latency: Latency {
                window_seconds: s.latency.window.as_secs_f64(),
                calls: s.latency.calls,
                per_second: s.latency.per_second,
                p50_ms: ms(s.latency.p50),
                p99_ms: ms(s.latency.p99),
            },
            resources: plugin.resources().map(|r| Resources {
                cpu_percent: r.cpu_percent,
                cpu_seconds: r.cpu_time.as_secs_f64(),
                rss_bytes: r.rss_bytes,
            }),
            cpus: s.cpus,
            services: s.services,
            others: s
                .others
                .iter()
                .map(|o| OtherRunView {
                    role: match o.role {
                        RunRole::Candidate => "candidate",
                        RunRole::Retiring => "retiring",
                    },
                    run: o.run,
                    pid: o.pid,
                })
                .collect(),
            upgrades: UpgradesView {
                done: s.upgrades.done,
                failed: s.upgrades.failed,
                last_at: s.upgrades.last.as_ref().map(|(t, _)| rfc3339::format(*t)),
                last_error: s.upgrades.last.as_ref().and_then(|(_, e)| e.clone()),
            },
            endpoints: s
                .endpoints
                .into_iter()
                .map(|e| EndpointView {
                    until: match e.state {
                        EndpointState::Ejected { until }
                        | EndpointState::Unreachable { until, .. } => {
                            Some(rfc3339::format(wall_time(until)))
                        }
                        _ => None,
                    },
                    state: e.state.name(),
                    address: e.address,
                    generation: e.generation,
                    in_flight: e.in_flight,
                    calls: e.calls,
                    ejections: e.ejections,
                    last_error: e.last_error,
                })
                .collect(),
        }
    }
}

/// A reload's report as JSON.
pub(super) fn report(r: &ReloadReport) -> serde_json::Value {
    serde_json::json!({
        "added": r.added,
        "removed": r.removed,
        "changed": r.changed,
        "replaced": r.replaced,
        "unchanged": r.unchanged,
        "failed": r.failed.iter().map(|(plugin, error)| serde_json::json!({"plugin": plugin, "error": error})).collect::<Vec<_>>(),
    })
}

/// The registry's reloads as JSON.
pub(super) fn reloads(r: &Reloads) -> serde_json::Value {
    let (last_at, last) = match &r.last {
        None => (None, serde_json::Value::Null),
        Some((at, Ok(rep))) => (Some(rfc3339::format(*at)), report(rep)),
        Some((at, Err(why))) => (
            Some(rfc3339::format(*at)),
            serde_json::json!({ "refused": why }),
        ),
    };
    serde_json::json!({ "done": r.done, "refused": r.refused, "last_at": last_at, "last": last })
}
