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
    /// The plugin is not ready and the call gave up: it did not become ready
    /// within the call timeout, or cannot before the call's deadline (failed,
    /// stopped, its next start is due after the deadline, or the plugin's
    /// `on-unavailable` is `fail-fast`).
    #[error("plugin {plugin:?} is unavailable ({state}) after waiting {}{}", supervisor::HumanDuration(*waited), last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    Unavailable {
        /// The plugin's name.
        plugin: String,
        /// Its state when the call gave up.
        state: Box<PluginState>,
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
    /// An upgrade (or reload) could not replace the plugin's process or connection; the
    /// old one goes on serving.
    #[error("plugin {plugin:?}: upgrade failed: {reason}")]
    Upgrade {
        /// The plugin's name.
        plugin: String,
        /// Why, with the new process's last stderr lines.
        reason: String,
    },
    /// A reload from file was asked of a registry that was not loaded from one.
    #[error(
        "this registry was not loaded from a file, so there is nothing to reload; give it one with Registry::with_source, or call Registry::reload with a Config"
    )]
    NoSource,
    /// The registry was destroyed: it reloads nothing any more.
    #[error("the registry has been destroyed; nothing is reloaded")]
    RegistryDestroyed,
    /// The plugin (or the whole registry) was destroyed.
    #[error("plugin {plugin:?} has been destroyed")]
    Destroyed {
        /// The plugin's name.
        plugin: String,
    },
    /// The plugin's concurrency limit (`max-concurrent-calls`) and its wait
    /// queue (`max-queued-calls`) were full: the call was refused at once,
    /// without reaching the plugin.
    #[error(
        "plugin {plugin:?} is overloaded: {limit} calls in flight and {queued} waiting; call refused"
    )]
    Overloaded {
        /// The plugin's name.
        plugin: String,
        /// Its `max-concurrent-calls`.
        limit: usize,
        /// Its `max-queued-calls`.
        queued: usize,
    },
    /// The connection to the plugin failed after the request was sent, so the
    /// plugin may have processed it; with `retry: at-most-once` (the default)
    /// it is not sent again. Not a status the plugin sent.
    #[error("plugin {plugin:?}: the connection failed after the call was sent (it may have been processed; not retried under {delivery}) after {attempts} attempt(s){}: {source}", last_exit.as_ref().map(|e| format!("; the plugin's run {e}")).unwrap_or_default())]
    Transport {
        /// The plugin's name.
        plugin: String,
        /// Attempts made (earlier ones provably never reached the plugin).
        attempts: u32,
        /// The plugin's delivery setting.
        delivery: crate::config::Delivery,
        /// How the plugin's run ended, when it crashed under the call.
        last_exit: Option<supervisor::Exit>,
        /// The connection's error.
        #[source]
        source: TransportError,
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
    /// The request was refused before it was sent: a method the plugin does not serve,
    /// or a request that does not read as the method's input.
    #[error("plugin {plugin:?}: {message}")]
    Request {
        /// The plugin's name.
        plugin: String,
        /// What is wrong with the request.
        message: String,
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

/// A connection failure under a call ([`Error::Transport`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A failure with only a message.
    pub(crate) fn new(message: &str) -> Self {
        TransportError {
            message: message.to_owned(),
            source: None,
        }
    }

    /// `error`, with its chain of causes as the message.
    pub(crate) fn of(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        TransportError {
            message: crate::link::error_chain(&error),
            source: Some(Box::new(error)),
        }
    }
}

impl Error {
    /// Whether a configured fallback reply may stand in for this error: the
    /// plugin was unavailable (not ready, disabled, failed), overloaded, did
    /// not answer in time, or its connection failed under the call. Not for
    /// a plugin's own error status, a destroyed plugin or a bad reply.
    pub fn allows_fallback(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Disabled { .. }
                | Error::Overloaded { .. }
                | Error::Timeout { .. }
                | Error::Transport { .. }
        )
    }

    /// The gRPC code if the plugin answered with an error status.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}

impl Error {
    /// The error behind a status from [`PluginHandle::channel`](crate::PluginHandle::channel):
    /// the host's own failure when the status carries one, else the plugin's status.
    pub(crate) fn from_status(plugin: &str, status: tonic::Status) -> Self {
        let host = std::error::Error::source(&status)
            .and_then(|s| s.downcast_ref::<Error>())
            .and_then(Error::duplicate);
        host.unwrap_or_else(|| Error::Status {
            plugin: plugin.to_owned(),
            status,
        })
    }

    /// A copy of a call's failure (the transport's source kept as text).
    fn duplicate(&self) -> Option<Error> {
        Some(match self {
            Error::Unavailable {
                plugin,
                state,
                last_error,
                waited,
            } => Error::Unavailable {
                plugin: plugin.clone(),
                state: state.clone(),
                last_error: last_error.clone(),
                waited: *waited,
            },
            Error::Disabled { plugin } => Error::Disabled {
                plugin: plugin.clone(),
            },
            Error::Destroyed { plugin } => Error::Destroyed {
                plugin: plugin.clone(),
            },
            Error::Overloaded {
                plugin,
                limit,
                queued,
            } => Error::Overloaded {
                plugin: plugin.clone(),
                limit: *limit,
                queued: *queued,
            },
            Error::Timeout { plugin, timeout } => Error::Timeout {
                plugin: plugin.clone(),
                timeout: *timeout,
            },
            Error::Transport {
                plugin,
                attempts,
                delivery,
                last_exit,
                source,
            } => Error::Transport {
                plugin: plugin.clone(),
                attempts: *attempts,
                delivery: *delivery,
                last_exit: last_exit.clone(),
                source: TransportError {
                    message: source.message.clone(),
                    source: None,
                },
            },
            _ => return None,
        })
    }
}

impl From<Error> for tonic::Status {
    /// The status a gRPC client sees for a call that failed in the host
    /// ([`PluginHandle::channel`](crate::PluginHandle::channel)): a plugin's own status as
    /// it sent it; otherwise a code for the failure (`UNAVAILABLE` for a plugin that is
    /// not ready, disabled, destroyed or whose connection failed, `RESOURCE_EXHAUSTED`
    /// when overloaded, `DEADLINE_EXCEEDED` when late, `NOT_FOUND` for an unknown
    /// plugin, `INTERNAL` otherwise), the error's text as the message and the error itself
    /// as the status's [`source`](std::error::Error::source), to downcast.
    fn from(error: Error) -> Self {
        use tonic::Code;
        let code = match &error {
            Error::Status { status, .. } => return status.clone(),
            Error::Unavailable { .. }
            | Error::Disabled { .. }
            | Error::Destroyed { .. }
            | Error::RegistryDestroyed
            | Error::Transport { .. } => Code::Unavailable,
            Error::Overloaded { .. } => Code::ResourceExhausted,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::UnknownPlugin { .. } => Code::NotFound,
            Error::Request { .. } => Code::InvalidArgument,
            _ => Code::Internal,
        };
        let mut status = tonic::Status::new(code, error.to_string());
        status.set_source(std::sync::Arc::new(error));
        status
    }
}
