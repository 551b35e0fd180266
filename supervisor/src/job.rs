//! The cloneable [`Job`] handle and its awaitable [`Ticket`]s.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    runtime::Handle,
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinHandle,
};
use tracing::Instrument;

use crate::{
    error::Error,
    hooks::Hooks,
    owner::RunIds,
    owner::{Command, Owner},
    policy::Policy,
    spec::Spec,
    state::{FailKind, FailReason, State},
    stats::{Resources, Shared, Stats},
};

/// How many transitions [`Job::subscribe`] buffers per receiver.
const EVENT_BUFFER: usize = 64;

/// A handle to one supervised child. Cheap to clone; every clone talks to the same owner task,
/// which alone touches the child. When the last handle is dropped the owner kills the child's
/// process group, reaps it, publishes [`State::Stopped`] and ends, closing the state channel
/// (see the crate docs, "How it ends").
#[derive(Debug, Clone)]
pub struct Job {
    name: Arc<str>,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<State>,
    events: broadcast::Sender<State>,
    shared: Arc<Shared>,
}

impl Job {
    /// Starts supervising at once (state [`Starting`](State::Starting)).
    ///
    /// Never panics on bad input: an invalid spec or policy, or a call outside a tokio runtime,
    /// gives a job in state [`Failed`](State::Failed) whose reason says what is wrong. Use
    /// [`Job::try_spawn`] to get that as an error instead.
    pub fn spawn(
        name: impl Into<String>,
        spec: Spec,
        policy: Policy,
        hooks: Arc<dyn Hooks>,
    ) -> Job {
        Self::spawn_numbered(name, spec, policy, hooks, RunIds::default())
    }

    /// Like [`Job::spawn`], taking run ids from `runs`, which other jobs may share: jobs that
    /// take turns running one service (a blue/green replacement) then number their runs
    /// in one sequence.
    pub fn spawn_numbered(
        name: impl Into<String>,
        spec: Spec,
        policy: Policy,
        hooks: Arc<dyn Hooks>,
        runs: RunIds,
    ) -> Job {
        let name: String = name.into();
        let prepared = prepare(&name, &spec, &policy);
        Self::launch(name, spec, policy, hooks, prepared, runs)
    }

    /// Like [`Job::spawn`], but an invalid spec or policy, or a call outside a tokio runtime, is
    /// an error.
    pub fn try_spawn(
        name: impl Into<String>,
        spec: Spec,
        policy: Policy,
        hooks: Arc<dyn Hooks>,
    ) -> Result<Job, Error> {
        let name: String = name.into();
        let prepared = prepare(&name, &spec, &policy)?;
        Ok(Self::launch(
            name,
            spec,
            policy,
            hooks,
            Ok(prepared),
            RunIds::default(),
        ))
    }

    fn launch(
        name: String,
        spec: Spec,
        policy: Policy,
        hooks: Arc<dyn Hooks>,
        prepared: Result<Prepared, Error>,
        runs: RunIds,
    ) -> Job {
        let cpus = prepared.as_ref().ok().and_then(|p| p.cpus.clone());
        let shared = Arc::new(Shared::new(policy.stderr_tail, cpus.clone()));
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let initial = match &prepared {
            Ok(_) => State::Starting { attempt: 0 },
            Err(error) => {
                tracing::error!(job = %name, %error, "job not started");
                State::Failed {
                    reason: FailReason {
                        kind: FailKind::Invalid(error.clone()),
                        last_exit: None,
                        stderr_tail: Vec::new(),
                    },
                }
            }
        };
        let (state_tx, state) = watch::channel(initial);
        let job = Job {
            name: name.as_str().into(),
            commands,
            state,
            events: events.clone(),
            shared: shared.clone(),
        };
        match prepared {
            Ok(Prepared { runtime, cpus }) => {
                // Not `name`: JSON logs put span fields beside the span's own `name`.
                let span = tracing::info_span!("job", job = %name);
                let watch = Watchdog {
                    name: name.clone(),
                    state: state_tx.clone(),
                    events: events.clone(),
                    shared: shared.clone(),
                };
                let owner = Owner {
                    name,
                    spec,
                    policy,
                    hooks,
                    cpus,
                    shared,
                    state: state_tx,
                    events,
                    commands: command_rx,
                    runs,
                };
                let task = runtime.spawn(owner.run().instrument(span));
                runtime.spawn(watch.watch(task));
            }
            Err(_) => {
                if let Ok(runtime) = Handle::try_current() {
                    // Keep the state sender alive while handles exist, so `changed()` waits
                    // instead of reporting a closed channel. Dropped commands resolve tickets;
                    // a destroy is terminal here too.
                    runtime.spawn(async move {
                        let mut command_rx = command_rx;
                        while let Some(command) = command_rx.recv().await {
                            if let Command::Destroy { done, .. } = command {
                                state_tx.send_replace(State::Destroyed);
                                let _ = events.send(State::Destroyed);
                                let _ = done.send(());
                                break;
                            }
                        }
                        drop(state_tx);
                    });
                }
            }
        }
        job
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A receiver of the current state. It sees the latest state, not every transition; use
    /// [`Job::subscribe`] for those.
    pub fn state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// The current state.
    pub fn current(&self) -> State {
        self.state.borrow().clone()
    }

    /// Every transition from now on, in order (buffered up to 64 per receiver; a receiver that
    /// falls further behind gets `Lagged`). Subscribe right after [`Job::spawn`], before the
    /// next `.await`, to see the first transitions on a current-thread runtime.
    pub fn subscribe(&self) -> broadcast::Receiver<State> {
        self.events.subscribe()
    }

    /// Counters: starts, restarts, last exit, stderr tail, chosen CPUs, dropped lines.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }

    /// CPU and memory figures for the running child, measured now; `None` when no child runs.
    pub fn resources(&self) -> Option<Resources> {
        self.shared.resources()
    }

    /// Stops the job: the pre-stop hook (if the child was ready), SIGTERM to the group, and
    /// SIGKILL to the group when `grace` (a budget covering all of this) runs out. Cancels a
    /// pending restart. Final state [`Stopped`](State::Stopped) (a disabled job stays
    /// [`Disabled`](State::Disabled)). Idempotent: concurrent calls all resolve when the child is
    /// gone, and a shorter grace shortens the stop in progress.
    pub fn stop(&self, grace: Duration) -> Ticket {
        self.send(|done| Command::Stop { grace, done })
    }

    /// Stops the child (with [`Policy::restart_grace`]) and starts it again at once, with the
    /// backoff reset. Also starts a stopped, disabled or failed job. Resolves when the old child
    /// is gone.
    pub fn restart(&self) -> Ticket {
        self.send(|done| Command::Restart { done })
    }

    /// Stops the job like [`Job::stop`] and keeps it in [`Disabled`](State::Disabled) until
    /// [`Job::enable`].
    pub fn disable(&self, grace: Duration) -> Ticket {
        self.send(|done| Command::Disable { grace, done })
    }

    /// Starts a disabled, stopped or failed job, with a fresh restart schedule. Does nothing to
    /// a job that is starting, running or backing off.
    pub fn enable(&self) -> Ticket {
        self.send(|done| Command::Enable { done })
    }

    /// Stops the job like [`Job::stop`] and destroys it: once the child is gone (and
    /// [`Hooks::run_ended`](crate::Hooks::run_ended) has run), the job publishes
    /// [`Destroyed`](State::Destroyed), its last state, and its owner task ends. Terminal
    /// (watchexec's `Delete`): commands arriving during the stop cannot undo it (their tickets
    /// resolve with this one), and every later command's ticket resolves at once without
    /// effect. During a backoff or at rest there is no child, and the job is destroyed at once.
    pub fn destroy(&self, grace: Duration) -> Ticket {
        self.send(|done| Command::Destroy { grace, done })
    }

    fn send(&self, command: impl FnOnce(oneshot::Sender<()>) -> Command) -> Ticket {
        let (done, rx) = oneshot::channel();
        // If the owner is gone, the command (and its sender) is dropped and the ticket resolves.
        let _ = self.commands.send(command(done));
        Ticket { rx }
    }
}

/// Publishes `Failed` if the owner task panics (a hook panicked). The unwinding already killed
/// the child: its process-group guard SIGKILLs the group and tokio reaps the leader.
struct Watchdog {
    name: String,
    state: watch::Sender<State>,
    events: broadcast::Sender<State>,
    shared: Arc<Shared>,
}

impl Watchdog {
    async fn watch(self, owner: JoinHandle<()>) {
        let Err(error) = owner.await else {
            return;
        };
        // Cancelled means the runtime is shutting down: nobody is left to tell.
        let Ok(panic) = error.try_into_panic() else {
            return;
        };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        tracing::error!(job = %self.name, %message, "supervisor owner task panicked");
        let stats = self.shared.snapshot();
        let state = State::Failed {
            reason: FailReason {
                kind: FailKind::Panicked { message },
                last_exit: stats.last_exit,
                stderr_tail: stats.stderr_tail,
            },
        };
        self.state.send_replace(state.clone());
        let _ = self.events.send(state);
    }
}

/// What [`prepare`] checked and chose.
struct Prepared {
    runtime: Handle,
    cpus: Option<Vec<usize>>,
}

/// Validates spec and policy, finds the runtime and chooses the CPUs.
fn prepare(name: &str, spec: &Spec, policy: &Policy) -> Result<Prepared, Error> {
    let invalid_spec = |source| Error::InvalidSpec {
        job: name.to_owned(),
        source,
    };
    spec.validate().map_err(invalid_spec)?;
    policy.validate().map_err(|source| Error::InvalidPolicy {
        job: name.to_owned(),
        source,
    })?;
    let runtime = Handle::try_current().map_err(|_| Error::NoRuntime {
        job: name.to_owned(),
    })?;
    let cpus = spec
        .cpu
        .as_ref()
        .map(|limit| crate::cpu::choose(limit, name))
        .transpose()
        .map_err(invalid_spec)?;
    Ok(Prepared { runtime, cpus })
}

/// An awaitable acknowledgement of a command: resolves when the command has taken effect (or at
/// once if the job's owner is gone). Dropping it does not cancel the command, which is sent when
/// the method is called.
#[derive(Debug)]
pub struct Ticket {
    rx: oneshot::Receiver<()>,
}

impl Future for Ticket {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.rx).poll(cx).map(|_| ())
    }
}
