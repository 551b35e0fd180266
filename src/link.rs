//! The connection state a plugin's owner task publishes on a `watch` channel
//! and every call reads: either a ready client, or why there is none.

use tonic::transport::{Channel, Endpoint};

use crate::{
    handshake::PluginAddr, proto::polaris::plugin_client::PluginClient, status::PluginState,
};

/// Messages up to go-plugin's limit (2^31-1 bytes) in both directions.
const MAX_MESSAGE: usize = i32::MAX as usize;

/// What calls see of a plugin.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    /// Ready: calls go to `client`. `generation` changes with every new
    /// connection (each companion run, each remote reconnect).
    Up {
        client: PluginClient<Channel>,
        generation: u64,
    },
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

    pub(crate) fn up(channel: Channel, generation: u64) -> Self {
        Link::Up {
            client: client(channel),
            generation,
        }
    }

    pub(crate) fn state(&self) -> PluginState {
        match self {
            Link::Up { .. } => PluginState::Ready,
            Link::Down { state, .. } => state.clone(),
        }
    }
}

/// A `proto.Plugin` client with go-plugin's message limits.
pub(crate) fn client(channel: Channel) -> PluginClient<Channel> {
    PluginClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// An endpoint for a plugin address (`unix:/path` or `http://ip:port`), with
/// TCP no-delay.
pub(crate) fn endpoint(addr: &PluginAddr) -> Endpoint {
    let uri = match addr {
        PluginAddr::Unix(path) => format!("unix:{}", path.display()),
        PluginAddr::Tcp(sock) => format!("http://{sock}"),
    };
    // Both forms are valid URIs by construction.
    Endpoint::from_shared(uri)
        .unwrap_or_else(|_| Endpoint::from_static("http://127.0.0.1:1"))
        .tcp_nodelay(true)
}

/// One grpc.health.v1 check of service `"plugin"`. A plugin without the
/// health service (UNIMPLEMENTED) or without the `"plugin"` entry
/// (NOT_FOUND) answered over a working connection, so it counts as alive.
pub(crate) async fn check_health(channel: Channel) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let reply = HealthClient::new(channel)
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
