//! Constants of the wire contract shared by the host and the plugin SDK
//! (see `docs/protocol.md`).

/// The magic-cookie environment variable of Polaris plugins.
pub const MAGIC_COOKIE_KEY: &str = "POLARIS_PLUGIN";
/// The magic-cookie value of Polaris plugins (the Go SDK's value). A guard
/// against running a plugin by hand, not a security measure.
pub const MAGIC_COOKIE_VALUE: &str =
    "ZEEyZPTB68aDLXZGvPwXTJEmzkBpNpeexrx0EhARJx6LGv47pRv8vWurxgCuQtm4";
/// The application protocol version of the Polaris plugin API.
pub const APP_PROTOCOL_VERSION: u32 = 1;
/// The grpc.health.v1 service name go-plugin hosts check (`Ping`).
pub const HEALTH_SERVICE: &str = "plugin";

/// What the host reads of gRPC-over-HTTP/2 from a peer, as PROTOCOL-HTTP2.md in grpc/grpc
/// defines it, exposed for the fuzz targets (`fuzz/`): `grpc-timeout` values, a status
/// from `grpc-status`/`grpc-message`/`grpc-status-details-bin`, one length-prefixed message.
pub mod grpc {
    pub use crate::call::grpc::{encode_timeout, from_headers, parse_timeout, unframe};
}

/// Environment variables of the go-plugin protocol and the Polaris SDK.
pub mod env {
    /// Comma-separated app protocol versions the host offers.
    pub const PROTOCOL_VERSIONS: &str = "PLUGIN_PROTOCOL_VERSIONS";
    /// Lowest TCP port a plugin may listen on (TCP listeners only).
    pub const MIN_PORT: &str = "PLUGIN_MIN_PORT";
    /// Highest TCP port a plugin may listen on (TCP listeners only).
    pub const MAX_PORT: &str = "PLUGIN_MAX_PORT";
    /// Directory the host wants plugin sockets in (go-plugin v1.5+).
    pub const UNIX_SOCKET_DIR: &str = "PLUGIN_UNIX_SOCKET_DIR";
    /// Group that must be able to connect to the socket (go-plugin v1.5+).
    pub const UNIX_SOCKET_GROUP: &str = "PLUGIN_UNIX_SOCKET_GROUP";
    /// Set by hosts that want gRPC broker multiplexing (go-plugin v1.6+).
    pub const MULTIPLEX_GRPC: &str = "PLUGIN_MULTIPLEX_GRPC";
    /// The host's AutoMTLS client certificate (PEM).
    pub const CLIENT_CERT: &str = "PLUGIN_CLIENT_CERT";
    /// The plugin's name (Polaris SDK); the plugin falls back to argv\[0\]'s basename.
    pub const NAME: &str = "PLUGIN_NAME";
    /// Worker threads for the plugin (Polaris SDK; Go plugins use it as GOMAXPROCS).
    pub const PROCS: &str = "PLUGIN_PROCS";
    /// Go's scheduler limit; the host sets it to the same value as `PLUGIN_PROCS`.
    pub const GOMAXPROCS: &str = "GOMAXPROCS";
    /// `unix` (default) or `tcp`: the transport a Rust SDK plugin listens on.
    pub const TRANSPORT: &str = "POLARIS_PLUGIN_TRANSPORT";
    /// Log filter for a Rust SDK plugin (`tracing` env-filter syntax; default `info`).
    pub const LOG: &str = "POLARIS_PLUGIN_LOG";
}
