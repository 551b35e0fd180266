//! JSON ↔ protobuf for the bundled message types, through their descriptors
//! ([`proto::descriptor_pool`](crate::proto::descriptor_pool)): what the command line
//! and the admin API read and print.
//!
//! Replies are printed with every field, defaults included (as grpcurl's
//! `-emit-defaults`): a rate limiter's `"allow": false` is the answer, not noise.

use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};

use crate::proto::{
    descriptor_pool, message_names,
    polaris::{Request, Response},
};

/// What went wrong converting between JSON and protobuf; the message says what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

/// The bundled message `name`, by full name (`proto.RateLimitPluginRequest`) or by
/// name in package `proto` (`RateLimitPluginRequest`).
pub fn message(name: &str) -> Result<MessageDescriptor, JsonError> {
    let pool = descriptor_pool();
    pool.get_message_by_name(name)
        .or_else(|| pool.get_message_by_name(&format!("proto.{name}")))
        .ok_or_else(|| {
            JsonError(format!(
                "unknown message type {name:?}; bundled types: {}",
                message_names().join(", ")
            ))
        })
}

/// A `Request` whose payload is the JSON text `json` read as message `type_name`.
pub fn request_from_json(type_name: &str, json: &str) -> Result<Request, JsonError> {
    let desc = message(type_name)?;
    let mut de = serde_json::Deserializer::from_str(json);
    let msg = DynamicMessage::deserialize(desc.clone(), &mut de)
        .map_err(|e| JsonError(format!("the JSON is not a valid {}: {e}", desc.full_name())))?;
    de.end()
        .map_err(|e| JsonError(format!("the JSON has trailing characters: {e}")))?;
    Ok(request_of(&desc, &msg))
}

/// A `Request` whose payload is the JSON value `json` read as message `type_name`.
pub fn request_from_value(type_name: &str, json: &serde_json::Value) -> Result<Request, JsonError> {
    let desc = message(type_name)?;
    let msg = DynamicMessage::deserialize(desc.clone(), json)
        .map_err(|e| JsonError(format!("the JSON is not a valid {}: {e}", desc.full_name())))?;
    Ok(request_of(&desc, &msg))
}

fn request_of(desc: &MessageDescriptor, msg: &DynamicMessage) -> Request {
    Request {
        payload: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/{}", desc.full_name()),
            value: msg.encode_to_vec(),
        }),
    }
}

/// `{"type": "proto.X", "reply": {...}}` for a reply of a bundled type, every field of
/// the reply present (defaults included).
pub fn response_to_value(response: &Response) -> Result<serde_json::Value, JsonError> {
    let any = response
        .reply
        .as_ref()
        .ok_or_else(|| JsonError("the plugin's response has no reply".into()))?;
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let desc = message(name)?;
    let msg = DynamicMessage::decode(desc.clone(), any.value.as_slice()).map_err(|e| {
        JsonError(format!(
            "the reply does not decode as {}: {e}",
            desc.full_name()
        ))
    })?;
    let options = SerializeOptions::new().skip_default_fields(false);
    let reply = msg
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError(e.to_string()))?;
    Ok(serde_json::json!({ "type": desc.full_name(), "reply": reply }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::polaris::{RateLimitPluginResponse, Response};

    #[test]
    fn a_denial_prints_allow_false() {
        let response = Response {
            reply: Some(prost_types::Any {
                type_url: "type.googleapis.com/proto.RateLimitPluginResponse".into(),
                value: RateLimitPluginResponse { allow: false }.encode_to_vec(),
            }),
        };
        let v = response_to_value(&response).unwrap();
        assert_eq!(v["type"], "proto.RateLimitPluginResponse");
        assert_eq!(v["reply"]["allow"], serde_json::json!(false));
    }

    #[test]
    fn requests_read_short_and_full_names_and_name_bad_input() {
        let json = r#"{"type":"APIRatelimit","key":"/users"}"#;
        let short = request_from_json("RateLimitPluginRequest", json).unwrap();
        let full = request_from_json("proto.RateLimitPluginRequest", json).unwrap();
        assert_eq!(short, full);
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            request_from_value("RateLimitPluginRequest", &value).unwrap(),
            full
        );
        let e = request_from_json("Nope", "{}").unwrap_err().to_string();
        assert!(e.contains("unknown message type \"Nope\""), "{e}");
        let e = request_from_json("RateLimitPluginRequest", r#"{"kye":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kye"), "{e}");
    }
}
