//! Generated protobuf and gRPC code.
//!
//! - [`polaris`]: the Polaris plugin service and messages (proto package `proto`,
//!   so the method is `/proto.Plugin/Call` and type URLs are
//!   `type.googleapis.com/proto.RateLimitPluginRequest` and so on).
//! - [`go_plugin`]: hashicorp/go-plugin's internal services (proto package `plugin`):
//!   `GRPCController`, `GRPCBroker`, `GRPCStdio`.
//!
//! Health is `grpc.health.v1` from [`tonic_health`].

/// The Polaris plugin protocol (proto package `proto`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod polaris {
    tonic::include_proto!("proto");
}

/// hashicorp/go-plugin's internal services (proto package `plugin`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod go_plugin {
    tonic::include_proto!("plugin");
}

/// The encoded `FileDescriptorSet` of every bundled `.proto` file (for
/// JSON <-> protobuf conversion through descriptors).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/polaris_descriptor.bin"));

/// The bundled messages' descriptors, decoded once from [`FILE_DESCRIPTOR_SET`]: for
/// JSON ↔ protobuf conversion of any bundled message type by name.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("build.rs writes a valid descriptor set")
    })
}

/// The full names of the Polaris messages (proto package `proto`) in [`descriptor_pool`],
/// e.g. `proto.RateLimitPluginResponse`.
pub fn message_names() -> Vec<String> {
    descriptor_pool()
        .all_messages()
        .filter(|m| m.package_name() == "proto")
        .map(|m| m.full_name().to_owned())
        .collect()
}
