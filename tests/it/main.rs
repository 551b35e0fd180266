//! Integration tests: real plugin processes, real sockets.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod support;

mod cli;
mod host;
mod interop;
mod page;
mod remote_example;
mod sdk;
mod storm;
