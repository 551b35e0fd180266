//! The host's side of each companion run, plugged into the supervisor. The
//! hooks hold no plugin state: a ready run's connection goes to the owner
//! task, health results too; probes and `Shutdown` use the connection the
//! owner publishes.

use std::{ffi::OsString, fs::File, path::Path, sync::Arc, time::Duration};

use supervisor::{BoxFuture, HookError, Hooks, LineSplitter, ReadyContext};
use tokio::{
    sync::{mpsc, watch},
    time::timeout,
};
use tokio_util::task::AbortOnDropHandle;

use super::{limits, logs::StderrForwarder, pin, rundir::PluginDir, start::Progress};
use crate::{
    config::{CompanionConfig, PluginConfig, Sha256Digest},
    conn::{Conn, Dest, origin},
    handshake::{Handshake, HandshakeError, PluginAddr},
    link,
    proto::go_plugin::{
        Empty, StdioData, grpc_controller_client::GrpcControllerClient,
        grpc_stdio_client::GrpcStdioClient, stdio_data::Channel as StdioChannel,
    },
    protocol::{APP_PROTOCOL_VERSION, env},
    tls::{self, ClientTls, Identity},
};

/// One ready run of the plugin, handed to the owner task.
#[derive(Debug)]
pub(crate) struct Incarnation {
    /// The supervisor's run id (its count of spawns).
    pub(crate) run: u64,
    pub(crate) pid: u32,
    pub(crate) conn: Conn,
    /// Where it listens (redials go there too).
    pub(crate) addr: PluginAddr,
    /// With AutoMTLS, the TLS settings pinned to this run's certificates (redials use them).
    pub(crate) tls: Option<ClientTls>,
    /// Drains the plugin's `GRPCStdio` stream; aborted with the run.
    pub(crate) _stdio: AbortOnDropHandle<()>,
}

/// A run that ended, as the hooks saw it: sent before the supervisor publishes the state
/// that follows it.
#[derive(Debug)]
pub(crate) struct RunEnd {
    pub(crate) run: u64,
    pub(crate) pid: u32,
    pub(crate) exit: supervisor::Exit,
    /// The first stderr line that shows the run hit a resource limit.
    pub(crate) limit_line: Option<String>,
    /// Why it never became ready (`None`: it did).
    pub(crate) why: Option<String>,
}

#[derive(Debug)]
pub(crate) struct CompanionHooks {
    name: String,
    start_timeout: Duration,
    health_timeout: Duration,
    /// The stop grace: its first half is for `Shutdown` and the exit after it.
    stop_grace: Duration,
    /// `companion.sha256`: checked before every start.
    pin: Option<Sha256Digest>,
    /// The connection the owner uses for this line, for probes and `Shutdown`.
    conn: watch::Receiver<Option<Conn>>,
    ready_tx: mpsc::UnboundedSender<Incarnation>,
    health_tx: mpsc::Sender<Result<(), String>>,
    /// Why each run that ended never became ready (`None` for one that did),
    /// sent before the supervisor publishes the state after it.
    start_tx: mpsc::UnboundedSender<RunEnd>,
    /// How far the current run got towards ready (runs are sequential).
    progress: parking_lot::Mutex<Progress>,
    /// The first stderr line of this run that shows it hit a resource limit.
    limit_line: parking_lot::Mutex<Option<String>>,
    stderr: StderrForwarder,
    /// The plugin's private run directory, emptied after each run; removed
    /// when the hooks go (the supervisor's owner ends after destroy).
    dir: Option<PluginDir>,
    /// With `auto-mtls`, the certificate made for the next (then current) run; runs are
    /// sequential. `None` without AutoMTLS.
    identity: Option<parking_lot::Mutex<Result<Arc<Identity>, String>>>,
}

/// At most this many characters of a bad handshake line are quoted.
const QUOTE_MAX: usize = 120;

impl CompanionHooks {
    pub(crate) fn new(
        plugin: &PluginConfig,
        companion: &CompanionConfig,
        conn: watch::Receiver<Option<Conn>>,
        ready_tx: mpsc::UnboundedSender<Incarnation>,
        health_tx: mpsc::Sender<Result<(), String>>,
        start_tx: mpsc::UnboundedSender<RunEnd>,
        dir: Option<PluginDir>,
    ) -> Self {
        CompanionHooks {
            name: plugin.name.clone(),
            start_timeout: companion.start_timeout,
            health_timeout: plugin.health.timeout,
            stop_grace: companion.stop_grace,
            pin: companion.sha256,
            conn,
            ready_tx,
            health_tx,
            start_tx,
            progress: parking_lot::Mutex::new(Progress::Spawned),
            limit_line: parking_lot::Mutex::new(None),
            stderr: StderrForwarder::default(),
            dir,
            identity: companion
                .auto_mtls
                .then(|| parking_lot::Mutex::new(Err("no run started yet".to_owned()))),
        }
    }

    /// The current run's connection, as the owner set it.
    fn conn(&self) -> Option<Conn> {
        self.conn.borrow().clone()
    }

    /// The readiness hook: records how far the run got, so that when it
    /// ends unready [`Hooks::run_ended`] can say why.
    async fn ready_or_why(&self, ctx: ReadyContext<'_>) -> Result<(), HookError> {
        let result = self.handshake(ctx).await;
        let mut progress = self.progress.lock();
        match &result {
            Ok(()) => *progress = Progress::Ready,
            Err(why) => {
                *progress = why.clone();
                return Err(HookError::msg(why.error()));
            }
        }
        Ok(())
    }

    /// `start-timeout` bounds the handshake line; connecting and the first
    /// health check are bounded by the health timeout each.
    async fn handshake(&self, ctx: ReadyContext<'_>) -> Result<(), Progress> {
        let line = match timeout(self.start_timeout, ctx.stdout.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => return Err(Progress::StdoutClosed),
            Err(_) => return Err(Progress::Silent(self.start_timeout)),
        };
        let handshake: Handshake = line.parse().map_err(|e| match e {
            HandshakeError::TooFewFields { .. } => Progress::NotHandshake(quote(&line)),
            e => Progress::Failed(format!("bad handshake line {}: {e}", quote(&line))),
        })?;
        handshake
            .check_app_version(&[APP_PROTOCOL_VERSION])
            .map_err(|e| Progress::Failed(format!("handshake: {e}")))?;
        let tls = self.tls_for(handshake.server_cert.clone())?;
        *self.progress.lock() = Progress::Handshaken;
        let conn = link::dial(
            &Dest::from(&handshake.addr),
            tls.as_ref(),
            self.health_timeout,
            crate::conn::Options::default(),
            self.health_timeout,
        )
        .await
        .map_err(|e| Progress::Failed(format!("after its handshake: {e}")))?;
        let stdio =
            AbortOnDropHandle::new(tokio::spawn(drain_stdio(self.name.clone(), conn.clone())));
        tracing::debug!(plugin = %self.name, pid = ctx.pid, addr = %handshake.addr, "plugin ready");
        self.ready_tx
            .send(Incarnation {
                run: ctx.run,
                pid: ctx.pid,
                conn,
                addr: handshake.addr,
                tls,
                _stdio: stdio,
            })
            .map_err(|_| Progress::Failed("the plugin's owner is gone".to_owned()))
    }
}

impl CompanionHooks {
    /// The TLS settings for this run: none without AutoMTLS; with it, pinned to the
    /// certificate the plugin printed. A plugin that answers AutoMTLS the host did not ask
    /// for, or ignores it, fails its start with an error saying what to change.
    fn tls_for(&self, plugin_cert: Option<Vec<u8>>) -> Result<Option<ClientTls>, Progress> {
        let failed = |why: String| Progress::Failed(why);
        match (&self.identity, plugin_cert) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(failed(
                "the plugin offers AutoMTLS (a certificate in its handshake), but companion.auto-mtls is off; \
                 set companion.auto-mtls: true, or make sure PLUGIN_CLIENT_CERT is not set for it"
                    .to_owned(),
            )),
            (Some(_), None) => Err(failed(format!(
                "companion.auto-mtls is on, but the plugin's handshake carries no certificate: it ignored {} \
                 and does not speak AutoMTLS (go-plugin plugins since v1.0 and Rust SDK plugins do); \
                 set companion.auto-mtls: false for it",
                env::CLIENT_CERT
            ))),
            (Some(identity), Some(cert)) => {
                let identity = identity
                    .lock()
                    .clone()
                    .map_err(|e| failed(format!("AutoMTLS: no host certificate: {e}")))?;
                tls::auto_client(&identity, cert)
                    .map(Some)
                    .map_err(|e| failed(format!("AutoMTLS: {e}")))
            }
        }
    }
}

/// A bounded quote of untrusted text.
pub(crate) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
    }
}

impl Hooks for CompanionHooks {
    /// A pinned binary is hashed from an open file and, when it matches, that open file is
    /// what the supervisor executes; a mismatch is never executed.
    fn before_spawn(&self, program: &Path) -> Result<Option<File>, HookError> {
        let Some(pin) = &self.pin else {
            return Ok(None);
        };
        match pin::open_checked(program, pin) {
            Ok(file) => Ok(Some(file)),
            Err(why) => {
                tracing::error!(plugin = %self.name, "{why}");
                Err(HookError::msg(why))
            }
        }
    }

    /// With AutoMTLS, a fresh certificate for each run, in `PLUGIN_CLIENT_CERT`.
    fn spawn_env(&self) -> Vec<(OsString, OsString)> {
        let Some(slot) = &self.identity else {
            return Vec::new();
        };
        let made = Identity::generate()
            .map(Arc::new)
            .map_err(|e| e.to_string());
        let env = match &made {
            Ok(identity) => vec![(env::CLIENT_CERT.into(), identity.pem.clone().into())],
            Err(error) => {
                tracing::error!(plugin = %self.name, %error, "AutoMTLS: cannot make the host certificate");
                Vec::new()
            }
        };
        *slot.lock() = made;
        env
    }

    fn ready<'a>(&'a self, ctx: ReadyContext<'a>) -> BoxFuture<'a, Result<(), HookError>> {
        self.stderr.new_run();
        *self.progress.lock() = Progress::Spawned;
        *self.limit_line.lock() = None;
        Box::pin(self.ready_or_why(ctx))
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), HookError>> {
        Box::pin(async move {
            let result = match self.conn() {
                Some(conn) => link::check_health(conn).await,
                None => Err("no connection to the plugin (redialing)".to_owned()),
            };
            let _ = self.health_tx.try_send(result.clone());
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
            let Some(conn) = self.conn() else {
                return;
            };
            let asked_to_exit = async {
                match GrpcControllerClient::with_origin(conn, origin())
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
            if timeout(self.stop_grace / 2, asked_to_exit).await.is_err() {
                tracing::debug!(plugin = %self.name, "still running after Shutdown; sending SIGTERM");
            }
        })
    }

    /// The run is over and its process group gone: remove whatever it left
    /// in its private directory (its socket, an SDK socket directory, temp
    /// files) before the next run starts.
    fn run_ended(&self, run: u64, pid: u32, exit: &supervisor::Exit) {
        let why = self.progress.lock().explain(exit);
        if let Some(why) = &why {
            tracing::warn!(plugin = %self.name, run, pid, "start failed: {why}");
        }
        let _ = self.start_tx.send(RunEnd {
            run,
            pid,
            exit: exit.clone(),
            limit_line: self.limit_line.lock().take(),
            why,
        });
        if let Some(dir) = &self.dir
            && let Err(error) = dir.clear()
        {
            tracing::warn!(plugin = %self.name, run, pid, %error, "could not empty the run directory");
        }
    }

    fn stderr_line(&self, line: &str) {
        if limits::is_limit_line(line) {
            self.limit_line
                .lock()
                .get_or_insert_with(|| line.to_owned());
        }
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
    let chunks = futures_util::stream::poll_fn(move |cx| {
        futures_util::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
            .map(|item| item.and_then(Result::ok))
    });
    stdio_lines(chunks, |channel, line| {
        tracing::debug!(target: "plugin", plugin = %name, stream = channel.as_str_name(), "{line}");
    })
    .await;
}

/// Whole lines from `GRPCStdio` chunks. go-plugin sends output in chunks of
/// up to 1 KiB that ignore line ends: an unfinished line is carried to the
/// next chunk of the same channel (F14). Empty lines are skipped.
async fn stdio_lines(
    chunks: impl futures_util::Stream<Item = StdioData>,
    mut line: impl FnMut(StdioChannel, &str),
) {
    use futures_util::StreamExt as _;
    let mut splitters: [LineSplitter; 2] =
        std::array::from_fn(|_| LineSplitter::new(STDIO_LINE_MAX));
    let index = |channel: StdioChannel| usize::from(channel == StdioChannel::Stderr);
    let mut emit = |channel: StdioChannel, text: String| {
        if !text.is_empty() {
            line(channel, &text);
        }
    };
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let channel = chunk.channel();
        for text in splitters[index(channel)].push(&chunk.data) {
            emit(channel, text);
        }
    }
    for channel in [StdioChannel::Stdout, StdioChannel::Stderr] {
        for text in splitters[index(channel)].finish() {
            emit(channel, text);
        }
    }
}

/// The longest `GRPCStdio` line logged whole (longer ones are split).
const STDIO_LINE_MAX: usize = supervisor::DEFAULT_MAX_LINE_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(channel: StdioChannel, data: &str) -> StdioData {
        StdioData {
            channel: channel as i32,
            data: data.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn lines_split_across_chunks_are_carried_per_channel() {
        use StdioChannel::{Stderr, Stdout};
        let chunks = futures_util::stream::iter([
            chunk(Stdout, "hel"),
            chunk(Stderr, "err one\ner"),
            chunk(Stdout, "lo\nwor"),
            chunk(Stderr, "r two\n"),
            chunk(Stdout, "ld\n\nlast without newline"),
        ]);
        let mut seen = Vec::new();
        stdio_lines(chunks, |channel, line| {
            seen.push((channel, line.to_owned()))
        })
        .await;
        assert_eq!(
            seen,
            [
                (Stderr, "err one".to_owned()),
                (Stdout, "hello".to_owned()),
                (Stderr, "err two".to_owned()),
                (Stdout, "world".to_owned()),
                (Stdout, "last without newline".to_owned()),
            ]
        );
    }

    #[test]
    fn a_long_handshake_line_is_quoted_short() {
        let line = "x".repeat(64 * 1024);
        let quoted = quote(&line);
        assert!(quoted.len() < 200, "{}", quoted.len());
        assert!(quoted.contains("65536 bytes"), "{quoted}");
    }
}
