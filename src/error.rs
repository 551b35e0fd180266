//! The host's errors.

use std::time::Duration;

use crate::{codec::CodecError, status::PluginState};

/// What can go wrong loading the registry or calling a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (nothing was started).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// No plugin has this name.
    #[error("no plugin named {name:?}; configured plugins: {known:?}")]
    UnknownPlugin {
        /// The name asked for.
        name: String,
        /// Every configured name.
        known: Vec<String>,
    },
    /// The plugin did not become ready within the call timeout.
    #[error("plugin {plugin:?} is unavailable ({state}) after waiting {waited:?}{}", last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    Unavailable {
        /// The plugin's name.
        plugin: String,
        /// Its state when the call gave up.
        state: PluginState,
        /// The last start, connection or health error, if any.
        last_error: Option<String>,
        /// How long the call waited.
        waited: Duration,
    },
    /// The plugin is disabled; enable it first.
    #[error("plugin {plugin:?} is disabled")]
    Disabled {
        /// The plugin's name.
        plugin: String,
    },
    /// The plugin (or the whole registry) was destroyed.
    #[error("plugin {plugin:?} has been destroyed")]
    Destroyed {
        /// The plugin's name.
        plugin: String,
    },
    /// The call was sent but no reply came within the call timeout.
    #[error("plugin {plugin:?} did not answer within {timeout:?}")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The call timeout.
        timeout: Duration,
    },
    /// The plugin answered with a gRPC error.
    #[error("plugin {plugin:?} returned {}: {}", status.code(), status.message())]
    Status {
        /// The plugin's name.
        plugin: String,
        /// The status, with its code and message.
        #[source]
        status: tonic::Status,
    },
    /// The reply did not unpack as the expected message (typed calls).
    #[error("plugin {plugin:?}: {source}")]
    Codec {
        /// The plugin's name.
        plugin: String,
        /// What was wrong with the payload.
        #[source]
        source: CodecError,
    },
}

impl Error {
    /// The gRPC code if the plugin answered with an error status.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}
