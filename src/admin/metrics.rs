//! `GET /metrics`: the registry's figures in Prometheus text format, read at scrape time
//! (a `prometheus-client` collector over each plugin's status; nothing is recorded twice).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `polaris_plugin_calls_total` | counter | plugin, outcome (`ok`, `error`, `timeout`, `overloaded`) |
//! | `polaris_plugin_fallbacks_total` | counter | plugin |
//! | `polaris_plugin_call_duration_seconds` | histogram | plugin |
//! | `polaris_plugin_in_flight` | gauge | plugin |
//! | `polaris_plugin_restarts_total` | counter | plugin |
//! | `polaris_plugin_state` | gauge (1 for the current state) | plugin, state |
//! | `polaris_plugin_up` | gauge (1 when ready) | plugin |
//! | `polaris_plugin_info` | gauge (1) | plugin, mode (`companion`, `remote`, `pluggable`) |
//! | `polaris_plugin_cpu_seconds_total` | counter | plugin (companions while running) |
//! | `polaris_plugin_resident_memory_bytes` | gauge | plugin (companions while running) |
//! | `polaris_plugin_upgrades_total` | counter | plugin, result (`done`, `failed`) |
//! | `polaris_plugin_host_reloads_total` | counter | result (`done`, `refused`) |
//! | `polaris_plugin_host_info` | gauge (1) | version |
//!
//! A remote fleet adds per-endpoint families ([`endpoints`]).

mod endpoints;

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry as PromRegistry,
};

use crate::{LatencyHistogram, PluginState, Registry};

/// The content type of the text format written.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram bucket bounds exported, in seconds: 1, 2.5, 5 per decade from 100 µs to 10 s
/// (each is a bound of the finer buckets calls are recorded in).
const EXPORTED_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Debug)]
pub(super) struct Metrics {
    registry: PromRegistry,
}

impl Metrics {
    pub(super) fn new(plugins: Arc<Registry>) -> Self {
        let mut registry = PromRegistry::default();
        registry.register_collector(Box::new(PluginCollector(plugins)));
        Metrics { registry }
    }

    pub(super) fn encode(&self) -> Result<String, String> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .map_err(|e| format!("encoding metrics: {e}"))?;
        Ok(text)
    }
}

#[derive(Debug)]
struct PluginCollector(Arc<Registry>);

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One family: its descriptor, then one sample set per label set.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram read from [`LatencyHistogram`], exported with [`EXPORTED_BOUNDS`].
#[derive(Debug)]
struct Latency(LatencyHistogram);

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        // The encoder sums the buckets itself: hand it each exported bucket's own count.
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = EXPORTED_BOUNDS
            .iter()
            .map(|&bound| {
                let bound_d = Duration::from_secs_f64(bound);
                let cumulative = h
                    .buckets
                    .iter()
                    .take_while(|(upper, _)| *upper <= bound_d)
                    .last()
                    .map_or(0, |(_, c)| *c);
                let own = cumulative - below;
                below = cumulative;
                (bound, own)
            })
            .collect();
        buckets.push((f64::INFINITY, h.count - below));
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum.as_secs_f64(),
            h.count,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Collector for PluginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let plugins = self.0.plugins();
        let statuses: Vec<_> = plugins.iter().map(|p| p.status()).collect();
        let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
        let by_plugin = |i: usize| vec![("plugin", names[i])];

        family(
            &mut encoder,
            "polaris_plugin_calls",
            "Calls by outcome (before any fallback).",
            MetricType::Counter,
            statuses.iter().enumerate().flat_map(|(i, s)| {
                [
                    ("ok", s.calls.ok),
                    ("error", s.calls.error),
                    ("timeout", s.calls.timeout),
                    ("overloaded", s.calls.overloaded),
                ]
                .map(|(outcome, n)| {
                    (
                        vec![("plugin", names[i]), ("outcome", outcome)],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_fallbacks",
            "Calls answered with the configured fallback.",
            MetricType::Counter,
            statuses
                .iter()
                .enumerate()
                .map(|(i, s)| (by_plugin(i), ConstCounter::new(s.calls.fallback))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_call_duration_seconds",
            "Call latency as the caller sees it, every outcome.",
            MetricType::Histogram,
            plugins
                .iter()
                .enumerate()
                .map(|(i, p)| (by_plugin(i), Latency(p.call_latency()))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_in_flight",
            "Calls in flight now.",
            MetricType::Gauge,
            statuses
                .iter()
                .enumerate()
                .map(|(i, s)| (by_plugin(i), ConstGauge::new(s.in_flight as i64))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_restarts",
            "Restarts of a companion's process.",
            MetricType::Counter,
            statuses
                .iter()
                .enumerate()
                .map(|(i, s)| (by_plugin(i), ConstCounter::new(s.restarts))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_state",
            "1 for the plugin's current state, 0 for the others.",
            MetricType::Gauge,
            statuses.iter().enumerate().flat_map(|(i, s)| {
                let now = s.state.name();
                let name = names[i];
                PluginState::NAMES.iter().map(move |&state| {
                    (
                        vec![("plugin", name), ("state", state)],
                        ConstGauge::new(i64::from(state == now)),
                    )
                })
            }),
        )?;
        let modes: Vec<String> = statuses.iter().map(|s| s.mode.to_string()).collect();
        family(
            &mut encoder,
            "polaris_plugin_info",
            "1 for every plugin now, with its mode (pluggable plugins come and go with their sockets).",
            MetricType::Gauge,
            modes.iter().enumerate().map(|(i, mode)| {
                (
                    vec![("plugin", names[i]), ("mode", mode.as_str())],
                    ConstGauge::new(1i64),
                )
            }),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_up",
            "1 when the plugin is ready for calls.",
            MetricType::Gauge,
            statuses.iter().enumerate().map(|(i, s)| {
                (
                    by_plugin(i),
                    ConstGauge::new(i64::from(matches!(s.state, PluginState::Ready))),
                )
            }),
        )?;
        let resources: Vec<_> = plugins
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.resources().map(|r| (i, r)))
            .collect();
        family(
            &mut encoder,
            "polaris_plugin_cpu_seconds",
            "CPU time of the companion's running process.",
            MetricType::Counter,
            resources
                .iter()
                .map(|(i, r)| (by_plugin(*i), ConstCounter::new(r.cpu_time.as_secs_f64()))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_resident_memory_bytes",
            "Resident memory of the companion's running process.",
            MetricType::Gauge,
            resources
                .iter()
                .map(|(i, r)| (by_plugin(*i), ConstGauge::new(r.rss_bytes as i64))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_upgrades",
            "Blue/green upgrades (reloads) of a plugin, by result.",
            MetricType::Counter,
            statuses.iter().enumerate().flat_map(|(i, s)| {
                [("done", s.upgrades.done), ("failed", s.upgrades.failed)].map(|(result, n)| {
                    (
                        vec![("plugin", names[i]), ("result", result)],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        endpoints::encode(&mut encoder, &names, &statuses)?;
        let reloads = self.0.reloads();
        family(
            &mut encoder,
            "polaris_plugin_host_reloads",
            "Configuration reloads, by result (refused: invalid, nothing changed).",
            MetricType::Counter,
            [("done", reloads.done), ("refused", reloads.refused)]
                .map(|(result, n)| (vec![("result", result)], ConstCounter::new(n))),
        )?;
        family(
            &mut encoder,
            "polaris_plugin_host_info",
            "The host library's version.",
            MetricType::Gauge,
            [(
                vec![("version", env!("CARGO_PKG_VERSION"))],
                ConstGauge::new(1i64),
            )],
        )?;
        Ok(())
    }
}
