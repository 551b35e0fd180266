//! The gRPC router every plugin serves, [`serve_remote`] for remote plugins (plain gRPC
//! servers at an address, with no go-plugin handshake), and [`serve_pluggable`] for
//! pluggable ones (the same on a unix socket in a host's pluggable folder).

use std::{
    net::SocketAddr,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio_util::sync::CancellationToken;
use tonic::{
    service::RoutesBuilder,
    transport::{Server, server::Router},
};
use tonic_health::ServingStatus;

use super::{Call, services, typed::Extras};
use crate::proto::{go_plugin, polaris};
use crate::protocol::HEALTH_SERVICE;

/// The services every plugin serves, by full name (reflection lists them).
const HEALTH: &str = tonic_health::pb::health_server::SERVICE_NAME;
const PLUGIN: &str = polaris::plugin_server::SERVICE_NAME;
const GO_PLUGIN: [&str; 3] = [
    go_plugin::grpc_controller_server::SERVICE_NAME,
    go_plugin::grpc_stdio_server::SERVICE_NAME,
    go_plugin::grpc_broker_server::SERVICE_NAME,
];

/// Messages up to go-plugin's limit (2^31-1 bytes) in both directions.
const MAX_MESSAGE: usize = i32::MAX as usize;

/// `proto.Plugin` (unless [`Extras::without_call`]) and grpc.health.v1 (`""` and
/// `"plugin"` SERVING); with `go_plugin`, also go-plugin's controller, stdio and broker
/// services; the plugin's own services; and gRPC reflection describing all of them.
pub(crate) async fn router<P: Call>(
    plugin: P,
    extras: Extras,
    shutdown: CancellationToken,
    go_plugin: bool,
    max_connection_age: Option<std::time::Duration>,
) -> Result<Router, String> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(HEALTH_SERVICE, ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let mut routes = RoutesBuilder::default();
    let mut served = vec![HEALTH];
    routes.add_service(health);
    if !extras.without_call {
        served.push(PLUGIN);
        routes.add_service(
            polaris::plugin_server::PluginServer::new(services::PluginAdapter(plugin))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        );
    }
    if go_plugin {
        served.extend(GO_PLUGIN);
        routes
            .add_service(
                go_plugin::grpc_controller_server::GrpcControllerServer::new(
                    services::Controller {
                        shutdown: shutdown.clone(),
                    },
                ),
            )
            .add_service(go_plugin::grpc_stdio_server::GrpcStdioServer::new(
                services::Stdio {
                    shutdown: shutdown.clone(),
                },
            ))
            .add_service(go_plugin::grpc_broker_server::GrpcBrokerServer::new(
                services::Broker { shutdown },
            ));
    }
    extras.add_reflection(&mut routes, &served)?;
    for add in extras.services {
        add(&mut routes);
    }
    let mut server = Server::builder().tcp_nodelay(true);
    if let Some(age) = max_connection_age {
        server = server.max_connection_age(age);
    }
    Ok(server.add_routes(routes.routes()))
}

/// Serves `plugin` as a remote plugin on `addr` (TCP, no-delay) with health,
/// until SIGINT or SIGTERM, then stops gracefully. Logs go wherever the
/// caller's `tracing` subscriber sends them.
pub async fn serve_remote<P: Call>(addr: SocketAddr, plugin: P) -> std::io::Result<()> {
    serve(addr, plugin, None).await
}

/// The certificate files of a remote plugin that serves TLS ([`serve_remote_tls`]), PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTlsFiles {
    /// The server's certificate chain, its own certificate first.
    pub cert_file: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

/// [`serve_remote`] over TLS (1.2 or 1.3, ALPN `h2`): the files are read once, at start.
pub async fn serve_remote_tls<P: Call>(
    addr: SocketAddr,
    plugin: P,
    files: RemoteTlsFiles,
) -> std::io::Result<()> {
    let config = server_config(&files)?;
    serve(addr, plugin, Some(config)).await
}

fn server_config(files: &RemoteTlsFiles) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let invalid = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    };
    let certs = |path: &std::path::Path| -> std::io::Result<Vec<CertificateDer<'static>>> {
        let pem = std::fs::read(path).map_err(|e| invalid(path, &e))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(path, &e))?;
        if certs.is_empty() {
            return Err(invalid(path, &"no PEM CERTIFICATE block"));
        }
        Ok(certs)
    };
    let chain = certs(&files.cert_file)?;
    let key = std::fs::read(&files.key_file).map_err(|e| invalid(&files.key_file, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| invalid(&files.key_file, &e))?;
    let provider = crate::tls::provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(crate::tls::VERSIONS)
        .map_err(std::io::Error::other)?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(path)? {
                roots.add(cert).map_err(|e| invalid(path, &e))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| invalid(path, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&files.key_file, &e))?;
    config.alpn_protocols = crate::tls::alpn();
    Ok(Arc::new(config))
}

async fn serve<P: Call>(
    addr: SocketAddr,
    plugin: P,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let router = router(plugin, Extras::default(), shutdown.clone(), false, None)
        .await
        .map_err(std::io::Error::other)?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(addr = %local, tls = tls.is_some(), "remote plugin serving");
    stop_on_signal(shutdown.clone(), || {})?;
    super::serve_on(router, incoming, tls, shutdown)
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}

/// Cancels `shutdown` at SIGINT or SIGTERM, after `first`.
fn stop_on_signal(
    shutdown: CancellationToken,
    first: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        first();
        shutdown.cancel();
    });
    Ok(())
}

/// The socket path of the pluggable plugin `name` in this machine's pluggable folder:
/// `$POLARIS_PLUGGABLE_SOCKETS_FOLDER/<name>.sock`, or
/// `/tmp/polaris-pluggable-sockets/<name>.sock` without the variable. A host watching that
/// folder registers the plugin as `name`.
pub fn pluggable_socket(name: &str) -> PathBuf {
    crate::config::PluggableConfig::default_folder().join(format!("{name}.sock"))
}

/// Serves `plugin` as a pluggable plugin: the same gRPC services as
/// [`serve_remote`] (`proto.Plugin`, health, reflection) on a unix socket at `socket`,
/// until SIGINT or SIGTERM. A host whose `pluggable:` folder holds the socket registers the
/// plugin under the socket's file name without its extension (`auth.sock` → `auth`); see
/// `docs/pluggable.md` and [`pluggable_socket`].
///
/// The folder must exist (the plugin does not create it: its permissions are the host
/// operator's). A socket file left at `socket` by a run that was killed is replaced; a
/// socket that still accepts connections (another live server) or any other file there
/// is an error. At SIGINT or SIGTERM the socket file is removed first — so the host
/// takes the plugin out and stops sending it calls — then the calls in flight finish.
pub async fn serve_pluggable<P: Call>(socket: impl AsRef<Path>, plugin: P) -> std::io::Result<()> {
    let socket = socket.as_ref();
    clear_stale(socket).await?;
    let shutdown = CancellationToken::new();
    let listener = tokio::net::UnixListener::bind(socket).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", socket.display()),
        )
    })?;
    let ours = std::fs::symlink_metadata(socket)?.ino();
    let router = router(plugin, Extras::default(), shutdown.clone(), false, None)
        .await
        .map_err(std::io::Error::other)?;
    tracing::info!(socket = %socket.display(), "pluggable plugin serving");
    let path = socket.to_owned();
    let remove = move || remove_if_ours(&path, ours);
    stop_on_signal(shutdown.clone(), remove.clone())?;
    let served = super::serve_on(
        router,
        tokio_stream::wrappers::UnixListenerStream::new(listener),
        None,
        shutdown,
    )
    .await;
    remove();
    served
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}

/// Removes a socket file at `socket` that nothing listens on any more.
async fn clear_stale(socket: &Path) -> std::io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return Ok(());
    };
    let in_use = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("{} {why}", socket.display()),
        )
    };
    if !meta.file_type().is_socket() {
        return Err(in_use(
            "exists and is not a socket; remove it or choose another name",
        ));
    }
    if tokio::net::UnixStream::connect(socket).await.is_ok() {
        return Err(in_use("is served by another process"));
    }
    std::fs::remove_file(socket)
}

/// Removes the socket file if it is still the one this server bound (not one a newer
/// server put at the same path).
fn remove_if_ours(socket: &Path, ino: u64) {
    if std::fs::symlink_metadata(socket).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(socket);
    }
}
