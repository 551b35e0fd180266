//! The lifecycle: [`State`], with data per variant, and why runs end ([`Exit`]).

use std::{
    fmt, io,
    os::unix::process::ExitStatusExt,
    process::ExitStatus,
    time::{Duration, Instant},
};

/// A job's lifecycle state, published on a `watch` channel ([`Job::state`](crate::Job::state)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum State {
    /// Spawning the child and running the readiness hook.
    Starting {
        /// Consecutive quick failures before this start (0 on a fresh start).
        attempt: u32,
    },
    /// The readiness hook succeeded; the child is running.
    Running {
        /// The run id: 1 for the job's first child, 2 for the next, … (see
        /// [`ReadyContext::run`](crate::ReadyContext::run)).
        run: u64,
        /// The child's pid (also its process group id).
        pid: u32,
        /// When readiness succeeded.
        since: Instant,
    },
    /// The last run failed quickly; waiting before the next start.
    BackingOff {
        /// Consecutive quick failures, including the last one (1-based).
        attempt: u32,
        /// The delay chosen for this attempt.
        delay: Duration,
        /// When the next start happens.
        until: Instant,
        /// How the last run ended.
        last_exit: Exit,
    },
    /// A stop is in progress: pre-stop hook, SIGTERM, grace, SIGKILL.
    Stopping {
        /// The run id of the child being stopped, if one is running.
        run: Option<u64>,
        /// The child's pid, if one is running.
        pid: Option<u32>,
    },
    /// Not running and not going to start by itself: after [`Job::stop`](crate::Job::stop), or
    /// after a clean exit the policy does not restart.
    Stopped,
    /// Stopped by [`Job::disable`](crate::Job::disable); stays so until
    /// [`Job::enable`](crate::Job::enable).
    Disabled,
    /// Given up: see the reason.
    Failed {
        /// Why, with the last exit and the last stderr lines.
        reason: FailReason,
    },
    /// Terminal, after [`Job::destroy`](crate::Job::destroy): the child is gone and the job
    /// will never start one again. Every later command resolves at once without effect. This
    /// is the last state published: the owner task has ended and the state channel is closed.
    Destroyed,
}

impl State {
    /// The pid of the running or stopping child, if any.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Running { pid, .. } => Some(*pid),
            Self::Stopping { pid, .. } => *pid,
            _ => None,
        }
    }

    /// The run id of the running or stopping child, if any.
    pub fn run(&self) -> Option<u64> {
        match self {
            Self::Running { run, .. } => Some(*run),
            Self::Stopping { run, .. } => *run,
            _ => None,
        }
    }

    /// Whether the job will not start a child unless told to (stopped, disabled or failed), or
    /// ever again (destroyed).
    pub fn is_at_rest(&self) -> bool {
        matches!(
            self,
            Self::Stopped | Self::Disabled | Self::Failed { .. } | Self::Destroyed
        )
    }

    /// Whether the job is [`Destroyed`](Self::Destroyed): no command has an effect any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Destroyed)
    }
}

impl fmt::Display for State {
    /// One line for logs and status: `running (run 3, pid 4242)`, `backing off (attempt 2,
    /// 400ms) after: exited with code 1`, `failed: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Starting { attempt } => write!(f, "starting (attempt {attempt})"),
            Self::Running { run, pid, .. } => write!(f, "running (run {run}, pid {pid})"),
            Self::BackingOff {
                attempt,
                delay,
                last_exit,
                ..
            } => write!(
                f,
                "backing off (attempt {attempt}, {delay:?}) after: {last_exit}"
            ),
            Self::Stopping {
                run: Some(run),
                pid: Some(pid),
            } => write!(f, "stopping (run {run}, pid {pid})"),
            Self::Stopping { .. } => f.write_str("stopping"),
            Self::Stopped => f.write_str("stopped"),
            Self::Disabled => f.write_str("disabled"),
            Self::Failed { reason } => write!(f, "failed: {reason}"),
            Self::Destroyed => f.write_str("destroyed"),
        }
    }
}

/// How one run of the child ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Exit {
    /// The child exited by itself with this code.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The child was killed by a signal (not sent by the supervisor for a failed check).
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether a core dump was written.
        core_dumped: bool,
    },
    /// The child could not be spawned.
    SpawnFailed {
        /// The OS error's kind.
        kind: io::ErrorKind,
        /// What failed, naming the program and the OS error.
        error: String,
    },
    /// The readiness hook returned an error; the child was killed. (A child that exited by
    /// itself around the time of the error is recorded with its own status instead.)
    ReadinessFailed {
        /// The hook's error.
        error: String,
    },
    /// The readiness hook did not finish within `start_timeout`; the child was killed.
    ReadinessTimedOut {
        /// The timeout.
        after: Duration,
    },
    /// Liveness probes failed `failures` times in a row; the child was killed.
    LivenessFailed {
        /// Consecutive failed probes.
        failures: u32,
        /// The last probe's error.
        last_error: String,
    },
    /// The exit status could not be collected.
    Lost {
        /// The wait error.
        error: String,
    },
}

impl Exit {
    /// From an OS exit status.
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Exited { code },
            (None, Some(signal)) => Self::Signaled {
                signal,
                core_dumped: status.core_dumped(),
            },
            (None, None) => Self::Lost {
                error: format!("unrecognised wait status {:#x}", status.into_raw()),
            },
        }
    }

    /// Whether this is exit code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Exited { code: 0 })
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { code } => write!(f, "exited with code {code}"),
            Self::Signaled {
                signal,
                core_dumped,
            } => {
                let name = nix::sys::signal::Signal::try_from(*signal)
                    .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned());
                let core = if *core_dumped { " (core dumped)" } else { "" };
                write!(f, "killed by {name}{core}")
            }
            Self::SpawnFailed { error, .. } => write!(f, "spawn failed: {error}"),
            Self::ReadinessFailed { error } => write!(f, "readiness check failed: {error}"),
            Self::ReadinessTimedOut { after } => {
                write!(f, "readiness check did not finish within {after:?}")
            }
            Self::LivenessFailed {
                failures,
                last_error,
            } => write!(
                f,
                "liveness probe failed {failures} times in a row (last: {last_error})"
            ),
            Self::Lost { error } => write!(f, "exit status lost: {error}"),
        }
    }
}

/// Why a job is [`Failed`](State::Failed).
#[derive(Debug, Clone, PartialEq)]
pub struct FailReason {
    /// What made the supervisor give up.
    pub kind: FailKind,
    /// How the last run ended, if there was one.
    pub last_exit: Option<Exit>,
    /// The last stderr lines (at most [`Policy::stderr_tail`](crate::Policy::stderr_tail)).
    pub stderr_tail: Vec<String>,
}

/// What made the supervisor give up on a job.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FailKind {
    /// More than `max_restarts` restarts within `window`.
    IntensityExceeded {
        /// The limit.
        max_restarts: u32,
        /// The window.
        window: Duration,
    },
    /// The run failed and the restart policy says not to restart.
    NotRestarted,
    /// The job's configuration is invalid; it never started.
    Invalid(crate::Error),
    /// [`Hooks::before_spawn`](crate::Hooks::before_spawn) refused to start the program
    /// (say, its checksum does not match); it was not executed.
    Refused {
        /// The hook's error.
        error: String,
    },
    /// The supervisor's owner task panicked (most likely in a hook); the child was killed.
    Panicked {
        /// The panic message.
        message: String,
    },
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FailKind::IntensityExceeded {
                max_restarts,
                window,
            } => write!(
                f,
                "gave up: more than {max_restarts} restarts within {window:?}"
            )?,
            FailKind::NotRestarted => f.write_str("failed; the restart policy does not restart")?,
            FailKind::Invalid(error) => write!(f, "not started: {error}")?,
            FailKind::Refused { error } => f.write_str(error)?,
            FailKind::Panicked { message } => write!(f, "supervisor panicked: {message}")?,
        }
        if let Some(exit) = &self.last_exit {
            write!(f, "; last run {exit}")?;
        }
        if !self.stderr_tail.is_empty() {
            write!(f, "; last stderr lines:")?;
            for line in &self.stderr_tail {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}
