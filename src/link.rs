//! The connection state a plugin's owner task publishes on a `watch` channel
//! and every call reads: either a ready client, or why there is none.

use crate::{
    conn::{Conn, origin},
    proto::polaris::plugin_client::PluginClient,
    status::PluginState,
};

/// Messages up to go-plugin's limit (2^31-1 bytes) in both directions.
const MAX_MESSAGE: usize = i32::MAX as usize;

/// What calls see of a plugin.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    /// Ready: calls go to `client`. `generation` changes with every new
    /// connection (each companion run, each remote reconnect).
    Up { client: Client, generation: u64 },
    /// Not ready; calls wait (or fail at once for terminal states).
    Down {
        state: PluginState,
        last_error: Option<String>,
    },
}

impl Link {
    pub(crate) fn down(state: PluginState) -> Self {
        Link::Down {
            state,
            last_error: None,
        }
    }

    pub(crate) fn up(conn: Conn, generation: u64) -> Self {
        Link::Up {
            client: client(conn),
            generation,
        }
    }

    pub(crate) fn state(&self) -> PluginState {
        self.snapshot().0
    }

    /// The state and, when down, the last error.
    pub(crate) fn snapshot(&self) -> (PluginState, Option<String>) {
        match self {
            Link::Up { .. } => (PluginState::Ready, None),
            Link::Down { state, last_error } => (state.clone(), last_error.clone()),
        }
    }
}

/// The client calls use.
pub(crate) type Client = PluginClient<Conn>;

/// A `proto.Plugin` client with go-plugin's message limits.
pub(crate) fn client(conn: Conn) -> Client {
    PluginClient::with_origin(conn, origin())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// One grpc.health.v1 check of service `"plugin"`. A plugin without the
/// health service (UNIMPLEMENTED) or without the `"plugin"` entry
/// (NOT_FOUND) answered over a working connection, so it counts as alive.
pub(crate) async fn check_health(conn: Conn) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let reply = HealthClient::with_origin(conn, origin())
        .check(HealthCheckRequest {
            service: crate::protocol::HEALTH_SERVICE.to_owned(),
        })
        .await;
    match reply {
        Ok(r) => match r.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("health check says {}", other.as_str_name())),
        },
        Err(s) if matches!(s.code(), tonic::Code::Unimplemented | tonic::Code::NotFound) => Ok(()),
        Err(s) => Err(format!(
            "health check failed: {}: {}",
            s.code(),
            s.message()
        )),
    }
}
