//! The host's side of each companion run, plugged into the supervisor.

use std::time::Duration;

use parking_lot::Mutex;
use supervisor::{BoxFuture, HookError, Hooks, ReadyContext};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::logs::StderrForwarder;
use crate::{
    conn::{self, Conn, origin},
    handshake::{Handshake, PluginAddr},
    link,
    proto::go_plugin::{
        Empty, grpc_controller_client::GrpcControllerClient, grpc_stdio_client::GrpcStdioClient,
    },
    protocol::APP_PROTOCOL_VERSION,
    status::Health,
};

/// One ready run of the plugin, handed to the owner task.
#[derive(Debug)]
pub(crate) struct Incarnation {
    pub(crate) pid: u32,
    pub(crate) conn: Conn,
    /// Where it listens, to remove a socket it leaves behind.
    pub(crate) addr: PluginAddr,
    /// Drains the plugin's `GRPCStdio` stream; aborted with the run.
    pub(crate) _stdio: AbortOnDropHandle<()>,
}

#[derive(Debug)]
pub(crate) struct CompanionHooks {
    name: String,
    ready_tx: mpsc::UnboundedSender<Incarnation>,
    /// The current run's connection and address, for probes and `Shutdown`.
    current: Mutex<Option<(Conn, PluginAddr)>>,
    health: Mutex<Health>,
    stderr: StderrForwarder,
    /// The stop grace: its first half is for `Shutdown` and the exit after it.
    stop_grace: Duration,
}

impl CompanionHooks {
    pub(crate) fn new(
        name: &str,
        stop_grace: Duration,
        ready_tx: mpsc::UnboundedSender<Incarnation>,
    ) -> Self {
        CompanionHooks {
            stop_grace,
            name: name.to_owned(),
            ready_tx,
            current: Mutex::new(None),
            health: Mutex::new(Health::Unknown),
            stderr: StderrForwarder::default(),
        }
    }

    pub(crate) fn health(&self) -> Health {
        self.health.lock().clone()
    }

    pub(crate) fn address(&self) -> Option<PluginAddr> {
        self.current.lock().as_ref().map(|(_, a)| a.clone())
    }

    fn conn(&self) -> Option<Conn> {
        self.current.lock().as_ref().map(|(c, _)| c.clone())
    }

    async fn handshake(&self, ctx: ReadyContext<'_>) -> Result<(), HookError> {
        let line = ctx.stdout.recv().await.ok_or_else(|| {
            HookError::msg("the plugin closed stdout without printing its handshake line (it probably exited; see its stderr)")
        })?;
        let handshake: Handshake = line
            .parse()
            .map_err(|e| HookError::with_source(format!("bad handshake line {line:?}"), e))?;
        handshake
            .check_app_version(&[APP_PROTOCOL_VERSION])
            .map_err(|e| HookError::with_source("handshake", e))?;
        if handshake.server_cert.is_some() {
            return Err(HookError::msg(
                "the plugin offers AutoMTLS (a server certificate in its handshake), which this host does not support; \
                 make sure PLUGIN_CLIENT_CERT is not set for it",
            ));
        }
        let channel = conn::connect(&conn::Dest::from(&handshake.addr), None)
            .await
            .map_err(|e| {
                HookError::with_source(format!("cannot connect to {}", handshake.addr), e)
            })?;
        link::check_health(channel.clone())
            .await
            .map_err(HookError::msg)?;
        *self.health.lock() = Health::Healthy;
        *self.current.lock() = Some((channel.clone(), handshake.addr.clone()));
        let stdio = AbortOnDropHandle::new(tokio::spawn(drain_stdio(
            self.name.clone(),
            channel.clone(),
        )));
        tracing::debug!(plugin = %self.name, pid = ctx.pid, addr = %handshake.addr, "plugin ready");
        self.ready_tx
            .send(Incarnation {
                pid: ctx.pid,
                conn: channel,
                addr: handshake.addr,
                _stdio: stdio,
            })
            .map_err(|_| HookError::msg("the plugin's handle is gone"))
    }
}

impl Hooks for CompanionHooks {
    fn ready<'a>(&'a self, ctx: ReadyContext<'a>) -> BoxFuture<'a, Result<(), HookError>> {
        *self.health.lock() = Health::Unknown;
        Box::pin(self.handshake(ctx))
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), HookError>> {
        Box::pin(async move {
            let Some(channel) = self.conn() else {
                return Err(HookError::msg("no connection to the plugin"));
            };
            let result = link::check_health(channel).await;
            let mut health = self.health.lock();
            *health = match (&result, &*health) {
                (Ok(()), _) => Health::Healthy,
                (Err(e), Health::Unhealthy { failures, .. }) => Health::Unhealthy {
                    failures: failures + 1,
                    error: e.clone(),
                },
                (Err(e), _) => Health::Unhealthy {
                    failures: 1,
                    error: e.clone(),
                },
            };
            result.map_err(HookError::msg)
        })
    }

    /// go-plugin's graceful path: `GRPCController/Shutdown`, then wait for the
    /// plugin to exit on its own, all within the first half of the stop grace.
    /// The supervisor drops this future as soon as the child exits, so a
    /// plugin that exits after `Shutdown` gets no signal at all; that matters
    /// for go-plugin plugins, which do not handle SIGTERM: their
    /// `plugin.Serve` returns after `Shutdown` and `main` finishes with exit 0,
    /// but a SIGTERM sent right after the RPC would kill them mid-cleanup.
    /// Returning (the plugin has no controller, or did not exit in time) means
    /// SIGTERM now, and SIGKILL when the rest of the grace is spent.
    fn pre_stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(channel) = self.conn() else {
                return;
            };
            let asked_to_exit = async {
                match GrpcControllerClient::with_origin(channel, origin())
                    .shutdown(Empty {})
                    .await
                {
                    Ok(_) => tracing::debug!(plugin = %self.name, "Shutdown accepted"),
                    Err(s) if s.code() == tonic::Code::Unimplemented => {
                        tracing::debug!(plugin = %self.name, "no GRPCController; stopping with SIGTERM");
                        return;
                    }
                    // go-plugin stops its server inside the call, so the
                    // reply often never arrives; the plugin is exiting anyway.
                    Err(s) => {
                        tracing::debug!(plugin = %self.name, code = ?s.code(), "Shutdown: {}", s.message())
                    }
                }
                std::future::pending::<()>().await;
            };
            if tokio::time::timeout(self.stop_grace / 2, asked_to_exit)
                .await
                .is_err()
            {
                tracing::debug!(plugin = %self.name, "still running after Shutdown; sending SIGTERM");
            }
        })
    }

    fn stderr_line(&self, line: &str) {
        self.stderr.forward(&self.name, line);
    }

    fn stdout_line(&self, line: &str) {
        tracing::debug!(target: "plugin", plugin = %self.name, stream = "stdout", "{line}");
    }
}

/// Reads the plugin's `GRPCStdio` stream so Go plugins that print to stdout
/// never block on it, and logs what arrives. Plugins without the service
/// (go-plugin 1.0, Python) answer UNIMPLEMENTED and this simply ends.
async fn drain_stdio(name: String, conn: Conn) {
    let Ok(reply) = GrpcStdioClient::with_origin(conn, origin())
        .stream_stdio(())
        .await
    else {
        return;
    };
    let mut stream = reply.into_inner();
    while let Ok(Some(chunk)) = stream.message().await {
        let text = String::from_utf8_lossy(&chunk.data);
        for line in text.lines().filter(|l| !l.is_empty()) {
            tracing::debug!(target: "plugin", plugin = %name, stream = chunk.channel().as_str_name(), "{line}");
        }
    }
}
