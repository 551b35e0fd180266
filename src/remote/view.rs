//! What a fleet owner publishes in the snapshot: the endpoints in rotation (for calls) and
//! every endpoint's record (for the status). Figures that change per call (requests in
//! flight, calls sent) are read when the status is asked for, not published.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use super::balance::Rotation;
use crate::{
    conn::Conn,
    status::{EndpointState, EndpointStatus},
};

/// A fleet as published.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetView {
    pub(crate) rotation: Rotation,
    pub(crate) endpoints: Vec<EndpointView>,
}

/// One endpoint as published.
#[derive(Debug, Clone)]
pub(crate) struct EndpointView {
    pub(crate) address: Arc<str>,
    pub(crate) state: EndpointState,
    /// The live connection and its generation.
    pub(crate) conn: Option<(Conn, u64)>,
    pub(crate) calls: Arc<AtomicU64>,
    pub(crate) ejections: u64,
    pub(crate) last_error: Option<String>,
}

impl FleetView {
    pub(crate) fn status(&self) -> Vec<EndpointStatus> {
        self.endpoints
            .iter()
            .map(|e| EndpointStatus {
                address: e.address.to_string(),
                state: e.state,
                generation: e.conn.as_ref().map(|(_, g)| *g),
                in_flight: e.conn.as_ref().map_or(0, |(c, _)| c.in_flight()),
                calls: e.calls.load(Relaxed),
                ejections: e.ejections,
                last_error: e.last_error.clone(),
            })
            .collect()
    }
}
