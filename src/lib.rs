//! # polaris-plugin
//!
//! Runs Polaris server plugins outside the host process, wire-compatible with
//! hashicorp/go-plugin (gRPC) and the Polaris Go SDK.
//!
//! - [`handshake`]: the go-plugin handshake line (shared by host and plugin).
//! - [`codec`]: packing plugin messages into `Request`/`Response`.
//! - [`proto`]: the generated protobuf and gRPC code.
//! - [`sdk`]: the plugin side — a Rust plugin is a [`sdk::Call`] impl and one line of `main`.
//! - [`protocol`]: the constants of the wire contract.
//! - [`config`]: the YAML configuration: plugins, validated once (`docs/configuration.md`).
//!
//! The wire contract is in `docs/protocol.md`.

pub mod codec;
pub mod config;
pub mod handshake;
pub mod proto;
pub mod protocol;
pub mod sdk;
