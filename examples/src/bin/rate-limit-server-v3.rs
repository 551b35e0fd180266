//! `rate-limit-server-v3`: the remote example. A plain gRPC server (no
//! go-plugin handshake) serving `proto.Plugin` and health at an address,
//! `0.0.0.0:8972` by default as in the Go example. With `--tls-cert` and `--tls-key` it serves
//! TLS, and with `--client-ca` it requires client certificates signed by that CA.
//!
//! With `--pluggable SOCKET` it is a pluggable plugin instead: it serves on a unix socket at
//! SOCKET (in a host's pluggable folder; `--pluggable-name NAME` puts it at
//! `$POLARIS_PLUGGABLE_SOCKETS_FOLDER/NAME.sock`), and removes the socket when stopped.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;
use rate_limit::{Limits, RateLimiter};

#[derive(Parser)]
#[command(about = "Polaris remote plugin: token-bucket rate limiter over gRPC")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "RATE_LIMIT_ADDRESS", default_value = "0.0.0.0:8972")]
    address: SocketAddr,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With TLS, require client certificates signed by these CAs (PEM): mTLS.
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Serve as a pluggable plugin on a unix socket at this path instead of --address.
    #[arg(long, conflicts_with_all = ["tls_cert", "pluggable_name"])]
    pluggable: Option<PathBuf>,
    /// Serve as the pluggable plugin NAME, at NAME.sock in $POLARIS_PLUGGABLE_SOCKETS_FOLDER
    /// (default /tmp/polaris-pluggable-sockets).
    #[arg(long, conflicts_with = "tls_cert")]
    pluggable_name: Option<String>,
    #[command(flatten)]
    limits: Limits,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let plugin = RateLimiter::new(args.limits);
    let socket = args.pluggable.or_else(|| {
        args.pluggable_name
            .as_deref()
            .map(polaris_plugin::sdk::pluggable_socket)
    });
    if let Some(socket) = socket {
        return match polaris_plugin::sdk::serve_pluggable(&socket, plugin).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(socket = %socket.display(), error = %e, "cannot serve");
                std::process::ExitCode::from(1)
            }
        };
    }
    let served = match (args.tls_cert, args.tls_key) {
        (Some(cert_file), Some(key_file)) => {
            let files = polaris_plugin::sdk::RemoteTlsFiles {
                cert_file,
                key_file,
                client_ca_file: args.client_ca,
            };
            polaris_plugin::sdk::serve_remote_tls(args.address, plugin, files).await
        }
        _ => polaris_plugin::sdk::serve_remote(args.address, plugin).await,
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(address = %args.address, error = %e, "cannot serve");
            std::process::ExitCode::from(1)
        }
    }
}
