//! `run CONFIG`: the host itself.

use std::{net::SocketAddr, path::Path, process::ExitCode, sync::Arc};

use tokio::signal::unix::{SignalKind, signal};

use polaris_plugin::{
    Registry,
    admin::{AdminError, AdminServer},
    config::{AdminConfig, DEFAULT_ADMIN_LISTEN},
};

use crate::Result;

pub(crate) async fn run(
    path: &Path,
    admin_listen: Option<SocketAddr>,
    no_admin: bool,
    watch: bool,
) -> Result<ExitCode> {
    let mut config = crate::load(path)?;
    if watch {
        config.watch_companions();
    }
    let admin = if no_admin {
        None
    } else {
        let mut admin = config.admin.take().unwrap_or_else(|| {
            AdminConfig::new(DEFAULT_ADMIN_LISTEN.parse().expect("a valid address"))
        });
        if let Some(listen) = admin_listen {
            admin.listen = listen;
        }
        Some(admin)
    };
    let mut registry = Registry::from_config(config)?.with_source(path);
    if watch {
        registry = registry.watching_all();
    }
    let registry = Arc::new(registry);
    tracing::info!(config = %path.display(), plugins = ?registry.names(), "host started");
    let server = match &admin {
        Some(admin) => match AdminServer::start(registry.clone(), admin).await {
            Ok(server) => {
                // On stdout, for people and scripts alike (the port may have been chosen by
                // the OS).
                println!(
                    "polaris-plugin: admin API and status page at http://{}/",
                    server.local_addr()
                );
                Some(server)
            }
            Err(e) => {
                registry.destroy().await;
                return Err(explain(e).into());
            }
        },
        None => None,
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r?;
                break;
            }
            _ = term.recv() => break,
            // Reload: the config file again; an invalid one changes nothing.
            _ = hup.recv() => {
                tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                if let Err(e) = registry.reload_file().await {
                    tracing::error!("reload refused, the running plugins stay as they are: {e}");
                }
            }
        }
    }
    tracing::info!("stopping: destroying every plugin");
    registry.destroy().await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn explain(e: AdminError) -> String {
    match e {
        AdminError::Bind { addr, error } if error.kind() == std::io::ErrorKind::AddrInUse => {
            format!(
                "admin API: {addr} is in use (another host?); set admin.listen in the config or --admin-listen (127.0.0.1:0 picks a free port), or run with --no-admin"
            )
        }
        other => other.to_string(),
    }
}
