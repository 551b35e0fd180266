//! Calls any unary method with JSON, through its descriptors: the request read from JSON
//! as the method's input message, the reply printed with every field (defaults included,
//! as grpcurl's `-emit-defaults`).

use std::time::Duration;

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions};
use tonic::{
    Status,
    client::GrpcService,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// Calls `method` on `service` with the JSON text `json` as its request, within
/// `timeout`; the reply as JSON. A request that does not read as the method's input is
/// `INVALID_ARGUMENT`, never sent; a streaming method is `UNIMPLEMENTED` here.
pub async fn call_json<T>(
    service: T,
    method: &MethodDescriptor,
    json: &str,
    timeout: Duration,
) -> Result<serde_json::Value, Status>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(Status::unimplemented(format!(
            "{} is a streaming method; only unary methods are called with JSON",
            method.full_name()
        )));
    }
    let request = request_from_json(&method.input(), json)?;
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let path = PathAndQuery::try_from(path)
        .map_err(|e| Status::invalid_argument(format!("bad method path: {e}")))?;
    let mut grpc = tonic::client::Grpc::with_origin(service, crate::conn::origin());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    let reply = grpc
        .unary(request, path, DynamicCodec(method.output()))
        .await?
        .into_inner();
    let options = SerializeOptions::new().skip_default_fields(false);
    reply
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| Status::internal(format!("the reply does not print as JSON: {e}")))
}

/// `json` read as message `desc`; the error says where it went wrong.
pub(crate) fn request_from_json(
    desc: &MessageDescriptor,
    json: &str,
) -> Result<DynamicMessage, Status> {
    let mut de = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize(desc.clone(), &mut de).map_err(|e| {
        Status::invalid_argument(format!("the request is not a {}: {e}", desc.full_name()))
    })?;
    de.end().map_err(|e| {
        Status::invalid_argument(format!("the request has text after its JSON: {e}"))
    })?;
    Ok(message)
}

/// Encodes dynamic messages; decodes replies as the method's output message.
struct DynamicCodec(MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.0.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("the request does not encode: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| {
                Status::internal(format!(
                    "the reply does not decode as {}: {e}",
                    self.0.full_name()
                ))
            })
    }
}
