//! JSON ↔ protobuf for the bundled message types, through their descriptors.

use polaris_plugin::proto::{
    descriptor_pool, message_names,
    polaris::{Request, Response},
};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};

fn message(name: &str) -> Result<MessageDescriptor, String> {
    let pool = descriptor_pool();
    pool.get_message_by_name(name)
        .or_else(|| pool.get_message_by_name(&format!("proto.{name}")))
        .ok_or_else(|| {
            format!(
                "unknown message type {name:?}; bundled types: {}",
                message_names().join(", ")
            )
        })
}

/// A `Request` whose payload is `json` parsed as message `type_name`.
pub(crate) fn request_from_json(type_name: &str, json: &str) -> Result<Request, String> {
    let desc = message(type_name)?;
    let mut de = serde_json::Deserializer::from_str(json);
    let msg = DynamicMessage::deserialize(desc.clone(), &mut de)
        .map_err(|e| format!("--json is not a valid {}: {e}", desc.full_name()))?;
    de.end()
        .map_err(|e| format!("--json has trailing characters: {e}"))?;
    Ok(Request {
        payload: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/{}", desc.full_name()),
            value: msg.encode_to_vec(),
        }),
    })
}

/// `{"type": "proto.X", "reply": {...}}` for a reply of a bundled type.
pub(crate) fn response_to_json(response: &Response) -> Result<String, String> {
    let any = response
        .reply
        .as_ref()
        .ok_or("the plugin's response has no reply")?;
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let desc = message(name)?;
    let msg = DynamicMessage::decode(desc.clone(), any.value.as_slice())
        .map_err(|e| format!("reply does not decode as {}: {e}", desc.full_name()))?;
    let reply = serde_json::to_value(&msg).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({ "type": desc.full_name(), "reply": reply }).to_string())
}
