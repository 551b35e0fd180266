//! One run of the child, inside the owner task: spawn, readiness, running with liveness probes
//! (the graceful stop is in `stop.rs`). Every path ends with the child reaped and its group killed.

use std::{
    error::Error as StdError,
    future::{Future, pending},
    io,
    process::ExitStatus,
    sync::Arc,
    time::{Duration, SystemTime},
};

use nix::sys::signal::Signal;
use tokio::{
    process::Child,
    sync::mpsc,
    task::JoinSet,
    time::{Instant, error::Elapsed, sleep_until, timeout},
};
use tracing::Instrument;

use crate::{
    deadline::deadline,
    hooks::{BoxFuture, Hooks, ReadyContext},
    output::{self, READY_BUFFER},
    owner::{Command, Owner, RunEnd, Tickets, resolve},
    spawn::{self, Group},
    state::{Exit, State},
    stats::Shared,
    stop::Pending,
};

/// How long to wait for the output readers to reach end-of-file after the child is gone.
const READER_DRAIN: Duration = Duration::from_millis(500);

/// How long a child whose readiness hook failed gets to be reaped before it is killed.
const EXIT_WINDOW: Duration = Duration::from_millis(200);

/// The live child and everything tied to it. Consumed by [`ChildRun::finish`]; if dropped
/// instead (the owner task was cancelled), the group guard SIGKILLs the group, tokio's
/// `kill_on_drop` reaps the leader in the background, and the readers are aborted.
pub(crate) struct ChildRun {
    pub(crate) child: Child,
    pub(crate) group: Group,
    pub(crate) pid: u32,
    /// The run id: 1 for the job's first child, 2 for the next, ….
    pub(crate) id: u64,
    readers: JoinSet<()>,
    shared: Arc<Shared>,
    hooks: Arc<dyn Hooks>,
}

impl ChildRun {
    /// SIGKILLs the group and reaps the child. The run's exit is `why` (the reason the
    /// supervisor killed it), or else the child's status.
    async fn kill(mut self, why: Option<Exit>) -> Exit {
        self.group.signal(Signal::SIGKILL);
        let status = self.child.wait().await;
        self.end(status, why).await
    }

    /// After the leader was reaped: kills what is left of the group, lets the readers drain,
    /// and calls [`Hooks::run_ended`]. The run's exit is the child's status.
    pub(crate) async fn finish(self, status: io::Result<ExitStatus>) -> Exit {
        self.end(status, None).await
    }

    /// Ends the run: group killed, readers drained, `run_ended` called with the run's exit
    /// (`why`, or else the status).
    async fn end(mut self, status: io::Result<ExitStatus>, why: Option<Exit>) -> Exit {
        self.group.reaped();
        let readers = &mut self.readers;
        let drained = timeout(READER_DRAIN, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!(
                pid = self.pid,
                "output still open after the child exited (a process left its group?); closing it"
            );
        }
        self.readers.shutdown().await;
        self.shared.update(|s| s.pid = None);
        let exit = why.unwrap_or_else(|| match status {
            Ok(status) => Exit::from_status(status),
            Err(error) => Exit::Lost {
                error: error.to_string(),
            },
        });
        let (hooks, id, pid) = (&self.hooks, self.id, self.pid);
        let call = std::panic::AssertUnwindSafe(|| hooks.run_ended(id, pid, &exit));
        if std::panic::catch_unwind(call).is_err() {
            tracing::error!(run = id, pid, "run_ended hook panicked");
        }
        exit
    }
}

/// How the readiness phase ended.
enum Readiness {
    Ready(Result<Result<(), crate::HookError>, Elapsed>),
    /// The child exited first; the hook's result if it finished within [`EXIT_WINDOW`] after.
    Exited(io::Result<ExitStatus>, Option<Result<(), crate::HookError>>),
    Command(Option<Command>),
}

impl Owner {
    /// Spawns the child and supervises it until it is gone.
    pub(crate) async fn run_child(&mut self, attempt: u32, tickets: Tickets) -> RunEnd {
        self.set_state(State::Starting { attempt });
        resolve(tickets);
        self.shared.update(|s| {
            s.starts += 1;
            s.started_at = Some(SystemTime::now());
        });
        let opened = match self.before_spawn().await {
            Ok(opened) => opened,
            Err(error) => return RunEnd::Refused(error),
        };
        let mut command = spawn::command(&self.spec, self.cpus.as_deref(), opened.as_ref());
        command.envs(self.hooks.spawn_env());
        let spawned = spawn::spawn(command).await;
        // The exec has happened (or failed) by now: the child no longer needs our copy.
        drop(opened);
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                let exit = Exit::SpawnFailed {
                    kind: error.kind(),
                    error: spawn::describe_failure(&self.spec, &error),
                };
                return RunEnd::Exited {
                    exit,
                    ran_for: None,
                };
            }
        };
        let Some(pid) = child.id() else {
            let error = "spawned child has no pid".to_owned();
            return RunEnd::Exited {
                exit: Exit::Lost { error },
                ran_for: None,
            };
        };
        let id = self.runs.next();
        self.shared.update(|s| s.pid = Some(pid));

        let (ready_tx, mut ready_rx) = mpsc::channel(READY_BUFFER);
        let mut readers = JoinSet::new();
        let max = self.spec.max_line_len;
        if let Some(stdout) = child.stdout.take() {
            let task = output::pump_stdout(
                stdout,
                max,
                self.shared.clone(),
                self.hooks.clone(),
                ready_tx,
            );
            readers.spawn(task.in_current_span());
        }
        if let Some(stderr) = child.stderr.take() {
            let task = output::pump_stderr(stderr, max, self.shared.clone(), self.hooks.clone());
            readers.spawn(task.in_current_span());
        }
        let mut run = ChildRun {
            child,
            group: Group::new(pid),
            pid,
            id,
            readers,
            shared: self.shared.clone(),
            hooks: self.hooks.clone(),
        };

        let hooks = self.hooks.clone();
        let start_timeout = self.policy.start_timeout;
        let readiness = {
            let ctx = ReadyContext {
                name: &self.name,
                run: id,
                pid,
                stdout: &mut ready_rx,
            };
            let ready = timeout(start_timeout, hooks.ready(ctx));
            tokio::pin!(ready);
            loop {
                tokio::select! {
                    biased;
                    command = self.commands.recv() => match command {
                        Some(Command::Enable { done }) => {
                            let _ = done.send(());
                        }
                        other => break Readiness::Command(other),
                    },
                    status = run.child.wait() => {
                        // Its stdout is closing too: let the hook see what it printed, or
                        // that it printed nothing, so the host can say why the start failed.
                        let hook = timeout(EXIT_WINDOW, &mut ready).await.ok().and_then(Result::ok);
                        break Readiness::Exited(status, hook);
                    }
                    result = &mut ready => break Readiness::Ready(result),
                }
            }
        };

        match readiness {
            Readiness::Ready(Ok(Ok(()))) => {}
            Readiness::Ready(Ok(Err(error))) => {
                let exit = self.readiness_failed(run, chain(&error)).await;
                return RunEnd::Exited {
                    exit,
                    ran_for: None,
                };
            }
            Readiness::Ready(Err(_)) => {
                let exit = Exit::ReadinessTimedOut {
                    after: start_timeout,
                };
                let exit = run.kill(Some(exit)).await;
                return RunEnd::Exited {
                    exit,
                    ran_for: None,
                };
            }
            Readiness::Exited(status, hook) => {
                let exit = run.finish(status).await;
                if let Some(Err(error)) = hook {
                    self.exited_while_starting(&exit, &chain(&error));
                }
                return RunEnd::Exited {
                    exit,
                    ran_for: None,
                };
            }
            Readiness::Command(None) => {
                run.kill(None).await;
                return RunEnd::Abandoned;
            }
            Readiness::Command(Some(command)) => {
                match Pending::start(command, self.policy.restart_grace) {
                    Ok(pending) => return self.stop_child(run, pending, false).await,
                    Err(done) => {
                        let _ = done.send(());
                    }
                }
            }
        }

        // Lines the hook left unread go to the stdout hook; closing the channel switches the
        // reader to the hook for everything after.
        ready_rx.close();
        while let Ok(line) = ready_rx.try_recv() {
            output::guarded("stdout_line", || self.hooks.stdout_line(&line));
        }
        drop(ready_rx);
        self.running(run).await
    }

    /// The child is ready: wait for its exit or a command, probing liveness if configured.
    async fn running(&mut self, run: ChildRun) -> RunEnd {
        let mut run = run;
        let since = Instant::now();
        self.set_state(State::Running {
            run: run.id,
            pid: run.pid,
            since: since.into_std(),
        });
        let hooks = self.hooks.clone();
        let liveness = self.policy.liveness;
        let mut healthy_until = since;
        let mut failures = 0u32;
        let mut next_probe = liveness.map(|l| deadline(since, l.interval));
        let mut probe: Option<BoxFuture<'_, Result<Result<(), crate::HookError>, Elapsed>>> = None;
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    None => {
                        run.kill(None).await;
                        return RunEnd::Abandoned;
                    }
                    Some(command) => match Pending::start(command, self.policy.restart_grace) {
                        Ok(pending) => {
                            drop(probe);
                            return self.stop_child(run, pending, true).await;
                        }
                        Err(done) => {
                            let _ = done.send(());
                        }
                    },
                },
                status = run.child.wait() => {
                    let exit = run.finish(status).await;
                    return RunEnd::Exited { exit, ran_for: Some(since.elapsed()) };
                }
                () = sleep_opt(next_probe), if probe.is_none() => {
                    if let Some(liveness) = liveness {
                        probe = Some(Box::pin(timeout(liveness.timeout, hooks.probe())));
                    }
                }
                result = poll_opt(&mut probe) => {
                    probe = None;
                    let now = Instant::now();
                    next_probe = liveness.map(|l| deadline(now, l.interval));
                    let error = match result {
                        Ok(Ok(())) => {
                            failures = 0;
                            healthy_until = now;
                            continue;
                        }
                        Ok(Err(error)) => chain(&error),
                        Err(_) => format!(
                            "no answer within {:?}",
                            liveness.map(|l| l.timeout).unwrap_or_default()
                        ),
                    };
                    failures += 1;
                    tracing::warn!(job = %self.name, failures, %error, "liveness probe failed");
                    let threshold = liveness.map_or(1, |l| l.failure_threshold);
                    if failures >= threshold {
                        let exit = Exit::LivenessFailed { failures, last_error: error };
                        let exit = run.kill(Some(exit)).await;
                        return RunEnd::Exited {
                            exit,
                            ran_for: Some(healthy_until - since),
                        };
                    }
                }
            }
        }
    }
}

impl Owner {
    /// [`Hooks::before_spawn`] on a blocking thread (it may read the whole program): the
    /// file to execute, or why nothing may be.
    async fn before_spawn(&self) -> Result<Option<std::fs::File>, String> {
        let hooks = self.hooks.clone();
        let program = self.spec.program.clone();
        match tokio::task::spawn_blocking(move || hooks.before_spawn(&program)).await {
            Ok(Ok(opened)) => Ok(opened),
            Ok(Err(error)) => Err(chain(&error)),
            Err(_) => Err("the before_spawn hook panicked".to_owned()),
        }
    }

    /// The readiness hook failed. A hook that fails because stdout closed usually lost a race
    /// with the child's exit: give the child [`EXIT_WINDOW`] to be reaped, and if it exited by
    /// itself, its status is the run's exit (the cause; the hook's error is a symptom, logged).
    /// Otherwise the group is killed and the run's exit is the hook's error.
    async fn readiness_failed(&self, mut run: ChildRun, error: String) -> Exit {
        match timeout(EXIT_WINDOW, run.child.wait()).await {
            Ok(status) => {
                let exit = run.finish(status).await;
                self.exited_while_starting(&exit, &error);
                exit
            }
            Err(_) => run.kill(Some(Exit::ReadinessFailed { error })).await,
        }
    }

    /// Debug only: the run's exit is what the state shows, and the host's
    /// `run_ended` hook knows best how to explain a failed start.
    fn exited_while_starting(&self, exit: &Exit, error: &str) {
        tracing::debug!(
            job = %self.name,
            %exit,
            readiness_error = %error,
            "readiness check failed; the child had exited by itself"
        );
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// Polls the future in `slot`, or waits forever when there is none.
pub(crate) async fn poll_opt<F: Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    match slot {
        Some(future) => future.await,
        None => pending().await,
    }
}

/// An error and its sources, `: `-separated.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
