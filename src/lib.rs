//! # polaris-plugin
//!
//! Runs Polaris server plugins outside the host process, wire-compatible with
//! hashicorp/go-plugin (gRPC) and the Polaris Go SDK.
//!
//! The host:
//!
//! ```no_run
//! # async fn host() -> Result<(), polaris_plugin::Error> {
//! use polaris_plugin::{Registry, proto::polaris::*};
//!
//! let registry = Registry::from_yaml("host.yaml").await?;
//! let plugin = registry.get("rate-limit-server-v2").expect("configured");
//! let verdict: RateLimitPluginResponse = plugin
//!     .call_typed(&RateLimitPluginRequest { r#type: RatelimitType::ApiRatelimit as i32, key: "/users".into() })
//!     .await?;
//! println!("allow: {}, status: {:?}", verdict.allow, plugin.status());
//! registry.destroy().await;
//! # Ok(()) }
//! ```
//!
//! - [`Registry`], [`PluginHandle`]: plugins by name; calls, status, enable,
//!   disable, restart, destroy. [`config`]: the YAML configuration.
//! - [`sdk`]: the plugin side — a Rust plugin is a [`sdk::Call`] impl and one line of `main`.
//! - [`handshake`], [`codec`], [`proto`], [`protocol`]: the wire contract
//!   (`docs/protocol.md`), shared by both sides.
//!
//! How the pieces own each other is in `docs/architecture.md`. The host's work
//! is I/O: on small machines a current-thread tokio runtime for the registry
//! gives the lowest call latency and the most calls per CPU
//! (`docs/benchmarks.md`).

#[cfg(feature = "admin")]
pub mod admin;
mod call;
pub mod channel;
pub mod codec;
mod command;
mod companion;
pub mod config;
mod conn;
mod error;
pub mod events;
pub mod handshake;
pub mod json;
mod link;
mod pluggable;
mod plugin;
pub mod proto;
pub mod protocol;
pub mod reflection;
mod registry;
mod remote;
#[cfg(feature = "sdk")]
pub mod sdk;
mod snapshot;
mod status;
mod tls;

pub use call::{LatencyHistogram, LatencySummary, Reply};
pub use error::{Error, TransportError};
pub use plugin::{PluginHandle, StateWatch};
/// The `prost` this crate is built with (messages of your own proto must derive its
/// `Message` and implement its `Name`).
pub use prost;
/// The `prost-types` this crate is built with (`Any`).
pub use prost_types;
pub use registry::{Registry, ReloadReport, Reloads};
pub use status::{
    CallCounts, EndpointState, EndpointStatus, Health, Mode, OtherRun, PluginState, PluginStatus,
    RunRole, Upgrades,
};
pub use supervisor::{Exit, FailKind, FailReason, Resources};
/// The `tonic` this crate is built with (clients and services of your own proto).
pub use tonic;
