//! What a plugin serves, from gRPC server reflection (`grpc.reflection.v1`, else
//! `v1alpha`), or — for a plugin that does not serve reflection, such as one built on
//! go-plugin before 1.2 — the descriptors bundled with this crate: `proto.Plugin`,
//! go-plugin's services and grpc.health.v1, which every Polaris plugin serves.
//!
//! [`Description`] is what `PluginHandle::describe` returns and what the command line's
//! `describe` prints; [`call_json`] calls any unary method with JSON through it.

pub(crate) mod dynamic;

use std::{collections::BTreeMap, time::Duration};

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DescriptorPool, MethodDescriptor, ServiceDescriptor};
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use tonic::{Code, Status, client::GrpcService};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, ServerReflectionResponse, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse,
};

pub use dynamic::call_json;

/// Reflection's own services: not listed as the plugin's.
const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

const V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// Rounds of asking for files a descriptor depends on but the server did not send.
const MAX_ROUNDS: usize = 8;

/// Where a [`Description`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The plugin's own gRPC server reflection, at this version (`v1` or `v1alpha`).
    Reflection {
        /// `v1` or `v1alpha`.
        version: &'static str,
    },
    /// The plugin serves no reflection; these are the descriptors bundled with this crate
    /// (the services every Polaris plugin serves), and `why` says what reflection answered.
    Bundled {
        /// What the plugin answered to reflection.
        why: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Reflection { version } => write!(f, "the plugin's gRPC reflection ({version})"),
            Source::Bundled { why } => write!(
                f,
                "the descriptors bundled with polaris-plugin (the plugin serves no gRPC reflection: {why})"
            ),
        }
    }
}

/// The services a plugin serves, with the descriptors of their messages.
#[derive(Debug, Clone)]
pub struct Description {
    source: Source,
    services: Vec<String>,
    pool: DescriptorPool,
}

impl Description {
    /// Where the services and descriptors came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The services, by full name, in the order listed (reflection's own left out).
    pub fn service_names(&self) -> &[String] {
        &self.services
    }

    /// The services with their descriptors (a listed service without one is left out).
    pub fn services(&self) -> impl Iterator<Item = ServiceDescriptor> + '_ {
        self.services
            .iter()
            .filter_map(|name| self.pool.get_service_by_name(name))
    }

    /// Every descriptor known: the plugin's, and any added with
    /// [`add_descriptors`](Self::add_descriptors).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Adds descriptors (a `FileDescriptorSet`, as `protoc -o` or `--descriptor-set`
    /// writes) for services the plugin serves but does not describe.
    pub fn add_descriptors(&mut self, set: &[u8]) -> Result<(), String> {
        self.pool
            .decode_file_descriptor_set(set)
            .map_err(|e| format!("the descriptor set does not load: {e}"))
    }

    /// The method `name`: `package.Service/Method` (as grpcurl and the wire path write
    /// it; a leading `/` is allowed) or `package.Service.Method`. The error names the
    /// services there are.
    pub fn method(&self, name: &str) -> Result<MethodDescriptor, String> {
        let trimmed = name.trim_start_matches('/');
        let (service, method) = trimmed
            .rsplit_once('/')
            .or_else(|| trimmed.rsplit_once('.'))
            .ok_or_else(|| {
                format!("{name:?} is not a method name; write it as package.Service/Method")
            })?;
        let Some(svc) = self.pool.get_service_by_name(service) else {
            return Err(format!(
                "the plugin has no service {service:?}; it serves: {}",
                self.services.join(", ")
            ));
        };
        svc.methods().find(|m| m.name() == method).ok_or_else(|| {
            format!(
                "service {service} has no method {method:?}; its methods: {}",
                svc.methods()
                    .map(|m| m.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// As JSON (what the admin API's `describe` answers and the command line prints):
    /// `{"source": "reflection" | "bundled", "detail": ..., "services": [{"name", "methods":
    /// [{"name", "path", "input", "output", "client_streaming", "server_streaming"}]}]}`.
    pub fn to_value(&self) -> serde_json::Value {
        let (source, detail) = match &self.source {
            Source::Reflection { version } => ("reflection", format!("gRPC reflection {version}")),
            Source::Bundled { why } => ("bundled", why.clone()),
        };
        let services: Vec<serde_json::Value> = self
            .services
            .iter()
            .map(|name| match self.pool.get_service_by_name(name) {
                Some(svc) => serde_json::json!({
                    "name": name,
                    "methods": svc.methods().map(|m| serde_json::json!({
                        "name": m.name(),
                        "path": format!("/{name}/{}", m.name()),
                        "input": m.input().full_name(),
                        "output": m.output().full_name(),
                        "client_streaming": m.is_client_streaming(),
                        "server_streaming": m.is_server_streaming(),
                    })).collect::<Vec<_>>(),
                }),
                None => serde_json::json!({ "name": name, "methods": null }),
            })
            .collect();
        serde_json::json!({ "source": source, "detail": detail, "services": services })
    }

    /// The bundled descriptors, for a plugin that serves no reflection.
    pub(crate) fn bundled(why: String) -> Self {
        let pool = bundled_pool();
        let services = pool.services().map(|s| s.full_name().to_owned()).collect();
        Description {
            source: Source::Bundled { why },
            services,
            pool,
        }
    }
}

/// The crate's descriptors and grpc.health.v1's.
fn bundled_pool() -> DescriptorPool {
    let mut pool = crate::proto::descriptor_pool().clone();
    // Both are compiled into this crate and load by construction; a failure would leave
    // health out of the list, not fail the description.
    if let Err(e) = pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET) {
        tracing::debug!(error = %e, "the bundled health descriptors do not load");
    }
    pool
}

/// Asks `service` (a plugin's connection or channel) what it serves: reflection v1,
/// then v1alpha; without either, the bundled descriptors. Each exchange is bounded by
/// `within`.
pub async fn describe<T>(service: T, within: Duration) -> Result<Description, Status>
where
    T: GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let list = vec![MessageRequest::ListServices(String::new())];
    let (version, path, answers) = match ask(service.clone(), V1, list.clone(), within).await {
        Ok(answers) => ("v1", V1, answers),
        Err(s) if s.code() == Code::Unimplemented => {
            match ask(service.clone(), V1ALPHA, list, within).await {
                Ok(answers) => ("v1alpha", V1ALPHA, answers),
                Err(s) if s.code() == Code::Unimplemented => {
                    let detail = match s.message() {
                        "" => String::new(),
                        m => format!(" ({m})"),
                    };
                    return Ok(Description::bundled(format!(
                        "reflection v1 and v1alpha both answered {:?}{detail}",
                        s.code()
                    )));
                }
                Err(s) => return Err(s),
            }
        }
        Err(s) => return Err(s),
    };
    let services: Vec<String> = answers
        .into_iter()
        .filter_map(|a| match a {
            MessageResponse::ListServicesResponse(list) => Some(list.service),
            _ => None,
        })
        .flatten()
        .map(|s| s.name)
        .filter(|name| !REFLECTION_SERVICES.contains(&name.as_str()))
        .collect();
    let mut files = BTreeMap::new();
    let mut wanted: Vec<MessageRequest> = services
        .iter()
        .map(|s| MessageRequest::FileContainingSymbol(s.clone()))
        .collect();
    for _ in 0..MAX_ROUNDS {
        if wanted.is_empty() {
            break;
        }
        for answer in ask(service.clone(), path, wanted, within).await? {
            match answer {
                MessageResponse::FileDescriptorResponse(found) => {
                    for bytes in found.file_descriptor_proto {
                        let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
                            Status::internal(format!("reflection sent a bad descriptor: {e}"))
                        })?;
                        files.insert(file.name().to_owned(), file);
                    }
                }
                // A service the server lists but cannot describe stays listed, without
                // descriptors.
                MessageResponse::ErrorResponse(e) => {
                    tracing::debug!(code = e.error_code, message = %e.error_message, "reflection could not describe a symbol");
                }
                _ => {}
            }
        }
        wanted = files
            .values()
            .flat_map(|f| f.dependency.iter())
            .filter(|d| !files.contains_key(*d))
            .map(|d| MessageRequest::FileByFilename(d.clone()))
            .collect();
        wanted.dedup();
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_set(FileDescriptorSet {
        file: files.into_values().collect(),
    })
    .map_err(|e| Status::internal(format!("the plugin's descriptors do not load: {e}")))?;
    Ok(Description {
        source: Source::Reflection { version },
        services,
        pool,
    })
}

/// One reflection exchange: `requests` out, one answer each back.
async fn ask<T>(
    service: T,
    path: &'static str,
    requests: Vec<MessageRequest>,
    within: Duration,
) -> Result<Vec<MessageResponse>, Status>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let expected = requests.len();
    let stream = tokio_stream::iter(requests.into_iter().map(|r| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    }));
    let mut request = tonic::Request::new(stream);
    request.set_timeout(within);
    let exchange = async {
        let mut grpc = tonic::client::Grpc::with_origin(service, crate::conn::origin());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
        let codec =
            tonic_prost::ProstCodec::<ServerReflectionRequest, ServerReflectionResponse>::default();
        let mut answers = grpc
            .streaming(request, PathAndQuery::from_static(path), codec)
            .await?
            .into_inner();
        let mut out = Vec::with_capacity(expected);
        while out.len() < expected
            && let Some(answer) = answers.message().await?
        {
            if let Some(response) = answer.message_response {
                out.push(response);
            }
        }
        Ok(out)
    };
    match tokio::time::timeout(within, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "reflection gave no answer within {}",
            supervisor::HumanDuration(within)
        ))),
    }
}

#[cfg(test)]
mod tests;
