//! What a call to one plugin may do: [`CallPolicy`] — delivery ([`Delivery`]), the concurrency
//! bound and its wait queue, what a call does while the plugin is unavailable
//! ([`OnUnavailable`]), and the optional [`Fallback`] reply.

use std::{fmt, num::NonZeroUsize, str::FromStr};

use crate::proto::polaris::Response;

/// The call contract of one plugin (YAML keys `retry`, `max-concurrent-calls`,
/// `max-queued-calls`, `on-unavailable`, `fallback` on the plugin entry).
#[derive(Debug, Clone, PartialEq)]
pub struct CallPolicy {
    /// Whether a call that may already have reached the plugin is sent again. Default
    /// [`Delivery::AtMostOnce`].
    pub delivery: Delivery,
    /// Calls in flight at once (sent, or waiting for the plugin to be ready). Default
    /// [`CallPolicy::DEFAULT_MAX_CONCURRENT`]; at most [`CallPolicy::LIMIT`].
    pub max_concurrent: NonZeroUsize,
    /// Calls that may wait for one of the `max_concurrent` slots; past that a call fails at
    /// once with `Overloaded`. Default [`CallPolicy::DEFAULT_MAX_QUEUED`]; 0 means no queue; at
    /// most [`CallPolicy::LIMIT`].
    pub max_queued: usize,
    /// What a call does while the plugin is not ready. Default [`OnUnavailable::Wait`].
    pub on_unavailable: OnUnavailable,
    /// The reply given instead of an error when the plugin is unavailable, overloaded or
    /// does not answer in time. Default none: those calls fail.
    pub fallback: Option<Fallback>,
}

impl CallPolicy {
    /// Default of [`max_concurrent`](Self::max_concurrent): 256.
    pub const DEFAULT_MAX_CONCURRENT: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");
    /// Default of [`max_queued`](Self::max_queued): 1024 (tonic's channel buffer).
    pub const DEFAULT_MAX_QUEUED: usize = 1024;
    /// The largest `max-concurrent-calls` and `max-queued-calls` accepted: 65 536.
    pub const LIMIT: usize = 65_536;
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            delivery: Delivery::default(),
            max_concurrent: Self::DEFAULT_MAX_CONCURRENT,
            max_queued: Self::DEFAULT_MAX_QUEUED,
            on_unavailable: OnUnavailable::default(),
            fallback: None,
        }
    }
}

/// How often a call may be delivered. YAML `retry: at-most-once | at-least-once`.
///
/// Either way a call that provably never reached the plugin (the connection handed it back
/// unsent, the stream was refused, or a GOAWAY named a lower stream id) is sent again on the
/// next connection, as often as its deadline allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// A call whose request may have reached the plugin is not sent again: when the
    /// connection breaks after sending, the call fails with `Error::Transport` (the default).
    #[default]
    AtMostOnce,
    /// The plugin's calls are idempotent: a call whose connection broke is sent again on the
    /// next connection within its deadline, so it may be processed more than once.
    AtLeastOnce,
}

impl Delivery {
    /// The YAML spellings, for messages.
    pub const NAMES: [&'static str; 2] = ["at-most-once", "at-least-once"];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtMostOnce => "at-most-once",
            Self::AtLeastOnce => "at-least-once",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Delivery {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, UnknownName> {
        match text {
            "at-most-once" => Ok(Self::AtMostOnce),
            "at-least-once" => Ok(Self::AtLeastOnce),
            _ => Err(UnknownName),
        }
    }
}

/// What a call does while its plugin is not ready. YAML `on-unavailable: wait | fail-fast`.
///
/// Either way a call fails at once when the plugin is disabled, destroyed, failed or stopped,
/// or when its next start is due after the call's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OnUnavailable {
    /// Wait for the plugin to become ready, up to the call timeout (the default).
    #[default]
    Wait,
    /// Fail at once (or answer with the fallback).
    FailFast,
}

impl OnUnavailable {
    /// The YAML spellings, for messages.
    pub const NAMES: [&'static str; 2] = ["wait", "fail-fast"];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::FailFast => "fail-fast",
        }
    }
}

impl fmt::Display for OnUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnUnavailable {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, UnknownName> {
        match text {
            "wait" => Ok(Self::Wait),
            "fail-fast" => Ok(Self::FailFast),
            _ => Err(UnknownName),
        }
    }
}

/// A name that is not one of an enum's YAML spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownName;

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a known name")
    }
}

impl std::error::Error for UnknownName {}

/// The reply a call gets instead of an error when its plugin is unavailable, overloaded or
/// late. YAML `fallback: { type: proto.RateLimitPluginResponse, json: { allow: true } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    /// The message's full protobuf name, e.g. `proto.RateLimitPluginResponse`; one of the
    /// [bundled messages](crate::proto::message_names).
    pub type_name: String,
    /// The reply, packed (`Any` with `type.googleapis.com/<type_name>`): from YAML, the
    /// `json` mapping encoded as that message through
    /// [`descriptor_pool`](crate::proto::descriptor_pool).
    pub response: Response,
}
