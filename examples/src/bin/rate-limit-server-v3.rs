//! `rate-limit-server-v3`: the remote example. A plain gRPC server (no
//! go-plugin handshake) serving `proto.Plugin` and health at an address,
//! `0.0.0.0:8972` by default as in the Go example.

use std::net::SocketAddr;

use clap::Parser;
use rate_limit::{Limits, RateLimiter};

#[derive(Parser)]
#[command(about = "Polaris remote plugin: token-bucket rate limiter over gRPC")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "RATE_LIMIT_ADDRESS", default_value = "0.0.0.0:8972")]
    address: SocketAddr,
    #[command(flatten)]
    limits: Limits,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match polaris_plugin::sdk::serve_remote(args.address, RateLimiter::new(args.limits)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(address = %args.address, error = %e, "cannot serve");
            std::process::ExitCode::from(1)
        }
    }
}
