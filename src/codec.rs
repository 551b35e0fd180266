//! Packing plugin messages into the generic [`Request`]/[`Response`] envelope
//! and unpacking them with a type-URL check, mirroring the Go SDK's
//! `MarshalRequest`, `UnmarshalRequest`, `MarshalResponse` and
//! `UnmarshalResponse`.
//!
//! A message `M` travels as `google.protobuf.Any { type_url:
//! "type.googleapis.com/" + M's full protobuf name, value: M's bytes }`.
//!
//! Unpacking compares only the full name after the last `/` of the type URL, as Go's
//! `anypb.MessageIs` does: `type.googleapis.com/auth.AuthRequest`,
//! `example.com/x/auth.AuthRequest` and `/auth.AuthRequest` (what a hand-written
//! [`prost::Name`] without a `type_url` gives) are all `auth.AuthRequest`. Packing always
//! writes `type.googleapis.com/<full name>`.

use prost::Name;
use prost_types::Any;

use crate::proto::polaris::{Request, Response};

/// Why a payload could not be unpacked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The envelope carried no `Any` at all (a nil payload or reply).
    #[error("{field} is missing (expected a {expected})")]
    Missing {
        /// `request payload` or `response reply`.
        field: &'static str,
        /// The type URL that was expected.
        expected: String,
    },
    /// The `Any` holds another message type.
    #[error("got wrong payload type url: expected {expected}, got {got:?}")]
    WrongType {
        /// The type URL of the message asked for.
        expected: String,
        /// The type URL found in the envelope.
        got: String,
    },
    /// The type URL matched but the bytes do not decode.
    #[error("payload of type {type_url} does not decode: {source}")]
    Decode {
        /// The type URL of the payload.
        type_url: String,
        /// The protobuf decoding error.
        #[source]
        source: prost::DecodeError,
    },
}

/// A payload a plugin cannot unpack is the caller's mistake: the host gets
/// `INVALID_ARGUMENT` with the message (so `?` works in [`sdk::Call`](crate::sdk::Call)).
impl From<CodecError> for tonic::Status {
    fn from(e: CodecError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// The type URL `pack` writes for `M`: `type.googleapis.com/<full name>`.
pub fn type_url<M: Name>() -> String {
    format!("type.googleapis.com/{}", M::full_name())
}

/// The full message name a type URL names: what follows its last `/`.
pub fn full_name_of(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

/// Packs `msg` into an `Any` with the `type.googleapis.com/` type URL.
pub fn pack<M: Name>(msg: &M) -> Any {
    Any {
        type_url: type_url::<M>(),
        value: msg.encode_to_vec(),
    }
}

/// Unpacks an `Any` into `M`, checking first that the type URL names `M` (its full name
/// after the last `/`, whatever comes before).
pub fn unpack<M: Name + Default>(any: &Any) -> Result<M, CodecError> {
    let expected = type_url::<M>();
    if full_name_of(&any.type_url) != M::full_name() {
        return Err(CodecError::WrongType {
            expected,
            got: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(|source| CodecError::Decode {
        type_url: expected,
        source,
    })
}

/// Wraps `msg` into a [`Request`] (Go: `MarshalRequest`).
pub fn marshal_request<M: Name>(msg: &M) -> Request {
    Request {
        payload: Some(pack(msg)),
    }
}

/// Unwraps a [`Request`]'s payload as `M` (Go: `UnmarshalRequest`).
pub fn unmarshal_request<M: Name + Default>(req: &Request) -> Result<M, CodecError> {
    match &req.payload {
        Some(any) => unpack(any),
        None => Err(CodecError::Missing {
            field: "request payload",
            expected: M::type_url(),
        }),
    }
}

/// Wraps `msg` into a [`Response`] (Go: `MarshalResponse`).
pub fn marshal_response<M: Name>(msg: &M) -> Response {
    Response {
        reply: Some(pack(msg)),
    }
}

/// Unwraps a [`Response`]'s reply as `M` (Go: `UnmarshalResponse`). A missing
/// reply is an error, as on the Go host side.
pub fn unmarshal_response<M: Name + Default>(resp: &Response) -> Result<M, CodecError> {
    match &resp.reply {
        Some(any) => unpack(any),
        None => Err(CodecError::Missing {
            field: "response reply",
            expected: M::type_url(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType};

    #[test]
    fn type_urls_match_the_go_sdk() {
        assert_eq!(
            RateLimitPluginRequest::type_url(),
            "type.googleapis.com/proto.RateLimitPluginRequest"
        );
        assert_eq!(
            RateLimitPluginResponse::type_url(),
            "type.googleapis.com/proto.RateLimitPluginResponse"
        );
    }

    #[test]
    fn codec_errors_become_invalid_argument() {
        let status = tonic::Status::from(
            unmarshal_request::<RateLimitPluginRequest>(&Request { payload: None }).unwrap_err(),
        );
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("request payload is missing"));
    }

    #[test]
    fn request_round_trip() {
        let msg = RateLimitPluginRequest {
            r#type: RatelimitType::ApiRatelimit as i32,
            key: "/api/v1/users".into(),
        };
        let req = marshal_request(&msg);
        assert_eq!(unmarshal_request::<RateLimitPluginRequest>(&req), Ok(msg));
    }

    #[test]
    fn response_round_trip() {
        let msg = RateLimitPluginResponse { allow: true };
        let resp = marshal_response(&msg);
        assert_eq!(
            unmarshal_response::<RateLimitPluginResponse>(&resp),
            Ok(msg)
        );
        // The default message encodes to zero bytes and still round-trips.
        let empty = marshal_response(&RateLimitPluginResponse::default());
        assert_eq!(
            unmarshal_response::<RateLimitPluginResponse>(&empty),
            Ok(RateLimitPluginResponse { allow: false })
        );
    }

    #[test]
    fn wrong_type_names_both_urls() {
        let req = marshal_request(&RateLimitPluginResponse { allow: true });
        let err = unmarshal_request::<RateLimitPluginRequest>(&req).unwrap_err();
        assert_eq!(
            err,
            CodecError::WrongType {
                expected: "type.googleapis.com/proto.RateLimitPluginRequest".into(),
                got: "type.googleapis.com/proto.RateLimitPluginResponse".into(),
            }
        );
        let text = err.to_string();
        assert!(text.starts_with("got wrong payload type url"), "{text}");
        assert!(
            text.contains("proto.RateLimitPluginRequest")
                && text.contains("proto.RateLimitPluginResponse")
        );
    }

    /// A message defined by hand, as a plugin author with their own proto might: prost's
    /// default type URL for it is `/auth.AuthRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct AuthRequest {
        #[prost(string, tag = "1")]
        user: String,
    }

    impl Name for AuthRequest {
        const NAME: &'static str = "AuthRequest";
        const PACKAGE: &'static str = "auth";
    }

    #[test]
    fn own_messages_pack_as_go_does_and_unpack_from_any_type_url_prefix() {
        let msg = AuthRequest { user: "u".into() };
        assert_eq!(
            AuthRequest::type_url(),
            "/auth.AuthRequest",
            "prost's default"
        );
        let packed = pack(&msg);
        assert_eq!(packed.type_url, "type.googleapis.com/auth.AuthRequest");
        for url in [
            "type.googleapis.com/auth.AuthRequest",
            "/auth.AuthRequest",
            "example.com/types/auth.AuthRequest",
            "auth.AuthRequest",
        ] {
            let any = Any {
                type_url: url.into(),
                value: packed.value.clone(),
            };
            assert_eq!(unpack::<AuthRequest>(&any), Ok(msg.clone()), "{url}");
        }
        for url in [
            "type.googleapis.com/auth.AuthRequestX",
            "type.googleapis.com/x.AuthRequest",
        ] {
            let any = Any {
                type_url: url.into(),
                value: packed.value.clone(),
            };
            assert!(
                matches!(
                    unpack::<AuthRequest>(&any),
                    Err(CodecError::WrongType { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn missing_payload_and_reply_are_errors() {
        let err =
            unmarshal_request::<RateLimitPluginRequest>(&Request { payload: None }).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Missing {
                field: "request payload",
                ..
            }
        ));
        let err =
            unmarshal_response::<RateLimitPluginResponse>(&Response { reply: None }).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Missing {
                field: "response reply",
                ..
            }
        ));
        assert!(err.to_string().contains("proto.RateLimitPluginResponse"));
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        let any = Any {
            type_url: RateLimitPluginRequest::type_url(),
            value: vec![0x12, 0x05, b'a'], // field 2, length 5, only 1 byte follows
        };
        assert!(matches!(
            unpack::<RateLimitPluginRequest>(&any),
            Err(CodecError::Decode { .. })
        ));
    }
}
