//! Integration tests: real plugin processes, real sockets.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod support;

/// The build script's toolchain detection (`build/interop.rs`).
#[path = "../../build/interop.rs"]
mod interop_detect;

mod admin;
mod cli;
mod examples;
mod fleet;
mod host;
mod interop;
mod page;
mod pin;
mod pluggable;
mod remote_example;
mod remote_tls;
mod sdk;
mod security;
mod storm;
mod typed;
mod upgrade;
mod watch;
