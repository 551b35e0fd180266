//! Host-provided behaviour: a check before each spawn, readiness, liveness, pre-stop and
//! output lines.

use std::{error::Error as StdError, fmt, fs::File, future::Future, path::Path, pin::Pin};

use tokio::sync::mpsc;

/// A boxed, sendable future (the return type of the async hooks).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the readiness hook gets after each spawn.
#[derive(Debug)]
pub struct ReadyContext<'a> {
    /// The job's name.
    pub name: &'a str,
    /// The run id: 1 for the job's first child, 2 for the next, … (one per spawned child,
    /// never reused within a job). The same id is passed to [`Hooks::run_ended`] once this
    /// child is gone, and appears in [`State::Running`](crate::State::Running).
    pub run: u64,
    /// The child's pid (also its process group id).
    pub pid: u32,
    /// The child's stdout lines while readiness runs, each at most `max_line_len` bytes. The
    /// buffer is bounded: when the hook does not keep up, lines are dropped and counted in
    /// [`Stats::stdout_dropped`](crate::Stats::stdout_dropped). Lines the hook leaves unread
    /// are passed to [`Hooks::stdout_line`] afterwards. `recv` returns `None` when stdout closes.
    pub stdout: &'a mut mpsc::Receiver<String>,
}

/// Host-provided behaviour for a job. Every method has a default, so an empty `impl` (or
/// [`NoHooks`]) is a valid host.
///
/// The async hooks return a [`BoxFuture`]; write them as `Box::pin(async move { … })`.
pub trait Hooks: Send + Sync + 'static {
    /// Runs before every spawn (the first start, each restart, a start after enable or
    /// restart), on a blocking thread, with [`Spec::program`](crate::Spec::program). An error
    /// means the program must not run: nothing is spawned and the job becomes
    /// [`Failed`](crate::State::Failed) with [`FailKind::Refused`](crate::FailKind::Refused)
    /// carrying the error's text (no restart loop; enable or restart tries again).
    ///
    /// `Ok(Some(file))` hands over the program *as the hook opened and checked it*: the child
    /// then executes that open file (through `/proc/self/fd/N`, with `argv[0]` still the
    /// program's path), not whatever the path names by the time of the exec, so a file
    /// replaced after the check is not run. A script (`#!`) gets the descriptor without
    /// close-on-exec, because its interpreter opens it by that path; it stays open in the
    /// plugin, and the script's `$0` is `/proc/self/fd/N`. `Ok(None)` executes the path as
    /// usual. The default returns `Ok(None)` at once.
    fn before_spawn(&self, program: &Path) -> Result<Option<File>, HookError> {
        let _ = program;
        Ok(None)
    }

    /// Extra environment variables for the next spawn only, applied after
    /// [`Spec::env`](crate::Spec::env). Called once before each spawn, synchronously in the owner task; runs
    /// are sequential, so what a host makes here (a per-run credential, say) belongs to the run
    /// that [`ready`](Self::ready) sees next. Keep it quick. Names must not be empty nor
    /// contain `=` or NUL, values no NUL, else the spawn fails. The default adds nothing.
    fn spawn_env(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        Vec::new()
    }

    /// Runs after each spawn, bounded by [`Policy::start_timeout`](crate::Policy::start_timeout).
    /// The state becomes [`Running`](crate::State::Running) only when it returns `Ok`. An error
    /// or a timeout is a failed start: the child's group is killed and the failure counts for
    /// backoff. After an error (not a timeout) the child first gets up to 200 ms to be reaped:
    /// a hook that failed because stdout closed has usually lost a race with the child's exit,
    /// and then the run's exit is the child's own status (say `Exited { code: 7 }`), with the
    /// hook's error logged, rather than [`ReadinessFailed`](crate::Exit::ReadinessFailed).
    /// Likewise a child that exits while the hook runs leaves the hook up to 200 ms to see the
    /// rest of its stdout (`recv` returning `None` once the pipe closes) and return; the run's
    /// exit is the child's status either way. The default returns `Ok` at once.
    fn ready<'a>(&'a self, ctx: ReadyContext<'a>) -> BoxFuture<'a, Result<(), HookError>> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// A liveness probe, run every [`Liveness::interval`](crate::Liveness::interval) while the
    /// child runs, bounded by its timeout. The default always succeeds.
    fn probe(&self) -> BoxFuture<'_, Result<(), HookError>> {
        Box::pin(async { Ok(()) })
    }

    /// Runs before SIGTERM on a graceful stop of a running child (the host asks the plugin to
    /// shut down here), bounded by the stop's grace budget. Not run when the child never became
    /// ready. If the child exits while the hook runs, the hook is dropped and no signal is sent,
    /// so a hook may wait (bounded) for the exit it asked for; SIGTERM follows when it returns.
    /// The default does nothing.
    fn pre_stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Called once per run, after the run's child has been reaped and what was left of its
    /// process group killed, on every path out of a run: an exit, a failed or timed-out
    /// readiness check, a liveness kill, a stop, a destroy, dropping the last handle. It runs
    /// synchronously in the owner task before anything else happens to the job (the next
    /// spawn, the next published state), so it is the place to clean up what belongs to this
    /// run only, such as a private socket directory. `exit` is how the run ended, as recorded
    /// in [`Stats::last_exit`](crate::Stats::last_exit). Keep it quick; a panic in it is logged
    /// and ignored. Not called when the spawn itself failed (there was no child), nor when the
    /// owner task is cancelled or panics (the group guard kills the child then). The default
    /// does nothing.
    fn run_ended(&self, run: u64, pid: u32, exit: &crate::Exit) {
        let _ = (run, pid, exit);
    }

    /// Each stderr line, called synchronously from the reader task: keep it quick. The default
    /// logs it at debug level (inside the job's tracing span).
    fn stderr_line(&self, line: &str) {
        tracing::debug!(target: "supervisor::stderr", "{line}");
    }

    /// Each stdout line after readiness, called synchronously from the reader task. The default
    /// logs it at trace level.
    fn stdout_line(&self, line: &str) {
        tracing::trace!(target: "supervisor::stdout", "{line}");
    }
}

/// Hooks that do nothing: ready at once, always live, stdout and stderr logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// An error from a hook: a message and optionally its cause.
#[derive(Debug)]
pub struct HookError {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl HookError {
    /// An error with a message only.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            source: None,
        }
    }

    /// An error with a message and a cause.
    pub fn with_source(
        message: impl fmt::Display,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for HookError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}
