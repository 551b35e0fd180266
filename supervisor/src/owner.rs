//! The owner task: the only code that touches the child. It moves between phases (start,
//! back off, rest), publishes every transition, and ends when the last [`Job`](crate::Job)
//! handle is dropped.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    time::{Instant, sleep_until},
};

use crate::{
    deadline::deadline,
    hooks::Hooks,
    human::HumanDuration,
    policy::Policy,
    schedule::{Decision, RestartSchedule},
    spec::Spec,
    state::{Exit, FailKind, FailReason, State},
    stats::Shared,
};

/// A control message from a handle; `done` resolves the caller's ticket.
#[derive(Debug)]
pub(crate) enum Command {
    Stop {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
    Disable {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
    Enable {
        done: oneshot::Sender<()>,
    },
    Restart {
        done: oneshot::Sender<()>,
    },
    Destroy {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// Tickets to resolve once the next state has been published.
pub(crate) type Tickets = Vec<oneshot::Sender<()>>;

pub(crate) fn resolve(tickets: Tickets) {
    for ticket in tickets {
        let _ = ticket.send(());
    }
}

/// Run ids: a counter that one job, or several taking turns, draw from. Ids start at 1.
#[derive(Debug, Clone, Default)]
pub struct RunIds(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl RunIds {
    /// The next run id.
    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

/// The owner task's data. Built by [`Job::spawn`](crate::Job::spawn), consumed by [`Owner::run`].
pub(crate) struct Owner {
    pub(crate) name: String,
    pub(crate) spec: Spec,
    pub(crate) policy: Policy,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) cpus: Option<Vec<usize>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: watch::Sender<State>,
    pub(crate) events: broadcast::Sender<State>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// Where run ids come from (shared with other jobs, or this job's own).
    pub(crate) runs: RunIds,
}

/// The next phase of the owner loop.
enum Next {
    Start(Tickets),
    BackOff {
        attempt: u32,
        delay: Duration,
        last_exit: Exit,
    },
    Rest(State, Tickets),
    /// Publish [`State::Destroyed`], resolve the tickets and end.
    Destroyed(Tickets),
    Shutdown,
}

/// How one run of the child ended (see `run.rs`).
pub(crate) enum RunEnd {
    /// The child exited by itself, failed to start, or failed a check and was killed.
    Exited {
        exit: Exit,
        /// How long it ran stably; `None` for a failed start.
        ran_for: Option<Duration>,
    },
    /// Commands stopped it; the child is gone.
    Stopped(crate::stop::Pending),
    /// All handles were dropped; the child was killed and reaped.
    Abandoned,
    /// [`Hooks::before_spawn`] refused the program (its error); nothing was spawned.
    Refused(String),
}

impl Owner {
    /// The owner loop. Ends when every handle is gone and the child (if any) has been reaped.
    pub(crate) async fn run(mut self) {
        let mut schedule = RestartSchedule::new(&self.policy);
        let mut rng = fastrand::Rng::new();
        let mut next = Next::Start(Vec::new());
        loop {
            next = match next {
                Next::Start(tickets) => {
                    let end = self.run_child(schedule.failures(), tickets).await;
                    self.after_run(end, &mut schedule, &mut rng)
                }
                Next::BackOff {
                    attempt,
                    delay,
                    last_exit,
                } => {
                    self.back_off(attempt, delay, last_exit, &mut schedule)
                        .await
                }
                Next::Rest(state, tickets) => self.rest(state, tickets, &mut schedule).await,
                Next::Destroyed(tickets) => {
                    // The last value on the watch channel: it closes when the owner ends.
                    // Commands still queued are dropped with the receiver, which resolves
                    // their tickets.
                    self.set_state(State::Destroyed);
                    resolve(tickets);
                    return;
                }
                Next::Shutdown => break,
            };
        }
        tracing::debug!(job = %self.name, "every handle dropped; supervisor ends");
    }

    /// Publishes a transition on the watch and broadcast channels and traces it.
    pub(crate) fn set_state(&self, state: State) {
        let job = &*self.name;
        match &state {
            State::Starting { attempt } => tracing::info!(job, attempt, "starting"),
            State::Running { run, pid, .. } => tracing::info!(job, run, pid, "running"),
            State::BackingOff {
                attempt,
                delay,
                last_exit,
                ..
            } => {
                let delay = HumanDuration(*delay);
                tracing::warn!(job, attempt, %delay, %last_exit, "backing off before restart")
            }
            State::Stopping { run, pid } => tracing::info!(job, ?run, ?pid, "stopping"),
            State::Stopped => tracing::info!(job, "stopped"),
            State::Disabled => tracing::info!(job, "disabled"),
            State::Destroyed => tracing::info!(job, "destroyed"),
            State::Failed { reason } => tracing::error!(job, %reason, "failed"),
        }
        self.state.send_replace(state.clone());
        let _ = self.events.send(state);
    }

    fn fail(&self, kind: FailKind, last_exit: Option<Exit>) -> State {
        State::Failed {
            reason: FailReason {
                kind,
                last_exit,
                stderr_tail: self.shared.stderr_tail(),
            },
        }
    }

    fn after_run(
        &mut self,
        end: RunEnd,
        schedule: &mut RestartSchedule,
        rng: &mut fastrand::Rng,
    ) -> Next {
        match end {
            RunEnd::Abandoned => {
                self.set_state(State::Stopped);
                Next::Shutdown
            }
            // Terminal, even when every handle was dropped meanwhile.
            RunEnd::Stopped(pending) if pending.target == crate::stop::Target::Destroyed => {
                Next::Destroyed(pending.tickets)
            }
            RunEnd::Stopped(pending) if pending.abandoned => {
                self.set_state(State::Stopped);
                resolve(pending.tickets);
                Next::Shutdown
            }
            RunEnd::Stopped(pending) => match pending.target {
                crate::stop::Target::Stopped => Next::Rest(State::Stopped, pending.tickets),
                crate::stop::Target::Disabled => Next::Rest(State::Disabled, pending.tickets),
                crate::stop::Target::Restart => {
                    schedule.reset();
                    Next::Start(pending.tickets)
                }
                crate::stop::Target::Destroyed => Next::Destroyed(pending.tickets),
            },
            RunEnd::Exited { exit, ran_for } => self.decide(exit, ran_for, schedule, rng),
            RunEnd::Refused(error) => {
                let last_exit = self.shared.snapshot().last_exit;
                Next::Rest(
                    self.fail(FailKind::Refused { error }, last_exit),
                    Vec::new(),
                )
            }
        }
    }

    /// After an unrequested exit: restart now, back off, or stay down.
    fn decide(
        &mut self,
        exit: Exit,
        ran_for: Option<Duration>,
        schedule: &mut RestartSchedule,
        rng: &mut fastrand::Rng,
    ) -> Next {
        let ran = ran_for.map(|d| tracing::field::display(HumanDuration(d)));
        tracing::info!(job = %self.name, %exit, ran_for = ran, "child run ended");
        self.shared.update(|s| s.last_exit = Some(exit.clone()));
        if !self.policy.restart.applies_to(&exit) {
            return if exit.is_success() {
                Next::Rest(State::Stopped, Vec::new())
            } else {
                Next::Rest(self.fail(FailKind::NotRestarted, Some(exit)), Vec::new())
            };
        }
        match schedule.on_exit(Instant::now(), ran_for, rng) {
            Decision::Now => {
                self.shared.update(|s| s.restarts += 1);
                Next::Start(Vec::new())
            }
            Decision::After { attempt, delay } => Next::BackOff {
                attempt,
                delay,
                last_exit: exit,
            },
            Decision::GiveUp(intensity) => Next::Rest(
                self.fail(
                    FailKind::IntensityExceeded {
                        max_restarts: intensity.max_restarts,
                        window: intensity.window,
                    },
                    Some(exit),
                ),
                Vec::new(),
            ),
        }
    }

    /// Waits out a backoff delay; commands cancel it.
    async fn back_off(
        &mut self,
        attempt: u32,
        delay: Duration,
        last_exit: Exit,
        schedule: &mut RestartSchedule,
    ) -> Next {
        let until = deadline(Instant::now(), delay);
        self.set_state(State::BackingOff {
            attempt,
            delay,
            until: until.into_std(),
            last_exit,
        });
        let sleep = sleep_until(until);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => {
                    self.shared.update(|s| s.restarts += 1);
                    return Next::Start(Vec::new());
                }
                command = self.commands.recv() => match command {
                    None => return Next::Shutdown,
                    Some(Command::Stop { done, .. }) => return Next::Rest(State::Stopped, vec![done]),
                    Some(Command::Destroy { done, .. }) => return Next::Destroyed(vec![done]),
                    Some(Command::Disable { done, .. }) => {
                        return Next::Rest(State::Disabled, vec![done]);
                    }
                    Some(Command::Restart { done }) => {
                        schedule.reset();
                        return Next::Start(vec![done]);
                    }
                    Some(Command::Enable { done }) => {
                        let _ = done.send(());
                    }
                },
            }
        }
    }

    /// Stopped, disabled or failed: waits for a command that starts the child again.
    async fn rest(
        &mut self,
        mut state: State,
        tickets: Tickets,
        schedule: &mut RestartSchedule,
    ) -> Next {
        self.set_state(state.clone());
        resolve(tickets);
        loop {
            match self.commands.recv().await {
                None => return Next::Shutdown,
                Some(Command::Stop { done, .. }) => {
                    if matches!(state, State::Failed { .. }) {
                        state = State::Stopped;
                        self.set_state(state.clone());
                    }
                    let _ = done.send(());
                }
                Some(Command::Disable { done, .. }) => {
                    if state != State::Disabled {
                        state = State::Disabled;
                        self.set_state(state.clone());
                    }
                    let _ = done.send(());
                }
                Some(Command::Enable { done } | Command::Restart { done }) => {
                    schedule.reset();
                    return Next::Start(vec![done]);
                }
                Some(Command::Destroy { done, .. }) => return Next::Destroyed(vec![done]),
            }
        }
    }
}
