//! The call contract keys of a plugin entry → [`CallPolicy`]; the fallback's JSON is turned
//! into its protobuf message through the crate's descriptor pool.

use std::num::NonZeroUsize;

use prost::Message as _;
use prost_reflect::DynamicMessage;

use super::{
    CallPolicy, ConfigError, Delivery, Fallback, OnUnavailable,
    raw::{Int, RawFallback, Text},
    validate::Check,
};
use crate::proto::{descriptor_pool, polaris::Response};

/// The entry's call contract keys, as written.
pub(super) struct RawCall {
    pub(super) retry: Option<Text>,
    pub(super) max_concurrent_calls: Option<Int>,
    pub(super) max_queued_calls: Option<Int>,
    pub(super) on_unavailable: Option<Text>,
    pub(super) fallback: Option<RawFallback>,
}

pub(super) fn call(c: &Check, raw: RawCall) -> Result<CallPolicy, ConfigError> {
    let default = CallPolicy::default();
    let limit = CallPolicy::LIMIT as u64;
    Ok(CallPolicy {
        delivery: match raw.retry {
            None => default.delivery,
            Some(text) => choice(c, "retry", text, &Delivery::NAMES)?,
        },
        max_concurrent: match raw.max_concurrent_calls {
            None => default.max_concurrent,
            Some(n) => {
                let n: usize = c.integer_as("max-concurrent-calls", &n, 1, limit)?;
                NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
            }
        },
        max_queued: match raw.max_queued_calls {
            None => default.max_queued,
            Some(n) => c.integer_as("max-queued-calls", &n, 0, limit)?,
        },
        on_unavailable: match raw.on_unavailable {
            None => default.on_unavailable,
            Some(text) => choice(c, "on-unavailable", text, &OnUnavailable::NAMES)?,
        },
        fallback: raw.fallback.map(|f| fallback(c, f)).transpose()?,
    })
}

/// One of the spellings in `names`, parsed.
fn choice<T: std::str::FromStr>(
    c: &Check,
    key: &str,
    Text(text): Text,
    names: &'static [&'static str],
) -> Result<T, ConfigError> {
    text.parse().map_err(|_| ConfigError::UnknownChoice {
        plugin: c.at.clone(),
        key: c.key(key),
        value: text,
        expected: names,
    })
}

/// `type` must name a bundled message; `json` (default `{}`) must map onto it.
fn fallback(c: &Check, raw: RawFallback) -> Result<Fallback, ConfigError> {
    let Some(Text(type_name)) = raw.type_name else {
        return Err(ConfigError::MissingKey {
            plugin: c.at.clone(),
            key: c.key("fallback.type"),
            hint: "a fallback names the reply's protobuf message type, like type: proto.RateLimitPluginResponse",
        });
    };
    let Some(desc) = descriptor_pool().get_message_by_name(&type_name) else {
        return Err(ConfigError::UnknownMessageType {
            plugin: c.at.clone(),
            key: c.key("fallback.type"),
            value: type_name,
        });
    };
    let invalid = |problem: String| ConfigError::FallbackJson {
        plugin: c.at.clone(),
        key: c.key("fallback.json"),
        type_name: type_name.clone(),
        problem,
    };
    let json = raw
        .json
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    if !json.is_object() {
        return Err(invalid(format!(
            "it must be a mapping of the message's fields, like {{ field: value }}, but it is {}",
            kind(&json)
        )));
    }
    // prost-reflect rejects unknown fields by default.
    let message =
        DynamicMessage::deserialize(desc.clone(), json).map_err(|e| invalid(e.to_string()))?;
    Ok(Fallback {
        response: Response {
            reply: Some(prost_types::Any {
                type_url: format!("type.googleapis.com/{}", desc.full_name()),
                value: message.encode_to_vec(),
            }),
        },
        type_name,
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
