//! The per-endpoint families of a remote fleet (labels `plugin`, `endpoint`; absent for
//! plugins without a fleet).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `polaris_plugin_endpoint_up` | gauge (1 when in rotation) | plugin, endpoint |
//! | `polaris_plugin_endpoint_state` | gauge (1 for the current state) | plugin, endpoint, state |
//! | `polaris_plugin_endpoint_in_flight` | gauge | plugin, endpoint |
//! | `polaris_plugin_endpoint_calls_total` | counter (attempts sent) | plugin, endpoint |
//! | `polaris_plugin_endpoint_ejections_total` | counter | plugin, endpoint |

use prometheus_client::{
    encoding::DescriptorEncoder,
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::family;
use crate::{EndpointState, EndpointStatus, PluginStatus};

pub(super) fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    names: &[&str],
    statuses: &[PluginStatus],
) -> Result<(), std::fmt::Error> {
    // (plugin, endpoint) per endpoint of every fleet.
    let rows: Vec<_> = statuses
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.endpoints.iter().map(move |e| (names[i], e)))
        .collect();
    family(
        encoder,
        "polaris_plugin_endpoint_up",
        "1 when the fleet's endpoint is in rotation (connected, healthy, not ejected).",
        MetricType::Gauge,
        rows.iter().map(|&(p, e)| {
            (
                labels(p, e),
                ConstGauge::new(i64::from(e.state == EndpointState::Ready)),
            )
        }),
    )?;
    family(
        encoder,
        "polaris_plugin_endpoint_state",
        "1 for the endpoint's current state, 0 for the others.",
        MetricType::Gauge,
        rows.iter().flat_map(|&(p, e)| {
            let now = e.state.name();
            EndpointState::NAMES.iter().map(move |&state| {
                let mut l = labels(p, e);
                l.push(("state", state));
                (l, ConstGauge::new(i64::from(state == now)))
            })
        }),
    )?;
    family(
        encoder,
        "polaris_plugin_endpoint_in_flight",
        "Requests in flight on the endpoint's connection.",
        MetricType::Gauge,
        rows.iter().map(|&(p, e)| {
            (
                labels(p, e),
                ConstGauge::new(i64::try_from(e.in_flight).unwrap_or(i64::MAX)),
            )
        }),
    )?;
    family(
        encoder,
        "polaris_plugin_endpoint_calls",
        "Calls (attempts) sent to the endpoint.",
        MetricType::Counter,
        rows.iter()
            .map(|&(p, e)| (labels(p, e), ConstCounter::new(e.calls))),
    )?;
    family(
        encoder,
        "polaris_plugin_endpoint_ejections",
        "Times the endpoint was ejected.",
        MetricType::Counter,
        rows.iter()
            .map(|&(p, e)| (labels(p, e), ConstCounter::new(e.ejections))),
    )
}

fn labels<'a>(plugin: &'a str, e: &'a EndpointStatus) -> super::Labels<'a> {
    vec![("plugin", plugin), ("endpoint", e.address.as_str())]
}
