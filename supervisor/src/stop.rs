//! The graceful stop, inside the owner task: pre-stop hook, SIGTERM to the group, SIGKILL when
//! the grace budget runs out. Commands arriving meanwhile join the stop in progress.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::{
    sync::oneshot,
    time::{Instant, sleep_until},
};

use crate::{
    deadline::deadline,
    owner::{Command, Owner, RunEnd, Tickets},
    run::{ChildRun, poll_opt},
    state::State,
};

/// What a stop turns into once the child is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Stopped,
    Disabled,
    Restart,
}

/// A stop in progress: the latest command's target, the earliest deadline asked for, and every
/// ticket to resolve when the child is gone.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) target: Target,
    pub(crate) deadline: Instant,
    pub(crate) tickets: Tickets,
    /// Every handle was dropped during the stop.
    pub(crate) abandoned: bool,
}

impl Pending {
    /// A stop started by `command`; `Enable` starts no stop and hands back its ticket.
    pub(crate) fn start(
        command: Command,
        restart_grace: Duration,
    ) -> Result<Self, oneshot::Sender<()>> {
        let now = Instant::now();
        let (target, grace, done) = match command {
            Command::Enable { done } => return Err(done),
            Command::Stop { grace, done } => (Target::Stopped, grace, done),
            Command::Disable { grace, done } => (Target::Disabled, grace, done),
            Command::Restart { done } => (Target::Restart, restart_grace, done),
        };
        Ok(Self {
            target,
            deadline: deadline(now, grace),
            tickets: vec![done],
            abandoned: false,
        })
    }

    /// A command that arrives during the stop: the latest target wins, the earliest deadline wins.
    pub(crate) fn absorb(&mut self, command: Option<Command>) {
        let now = Instant::now();
        let (target, grace, done) = match command {
            None => {
                self.abandoned = true;
                return;
            }
            Some(Command::Stop { grace, done }) => (Target::Stopped, Some(grace), done),
            Some(Command::Disable { grace, done }) => (Target::Disabled, Some(grace), done),
            Some(Command::Restart { done } | Command::Enable { done }) => {
                (Target::Restart, None, done)
            }
        };
        self.target = target;
        if let Some(grace) = grace {
            self.deadline = self.deadline.min(deadline(now, grace));
        }
        self.tickets.push(done);
    }
}

impl Owner {
    /// The graceful stop: pre-stop hook (if the child was ready), SIGTERM to the group, SIGKILL
    /// when the deadline passes; commands arriving meanwhile join the stop.
    pub(crate) async fn stop_child(
        &mut self,
        run: ChildRun,
        mut pending: Pending,
        ready: bool,
    ) -> RunEnd {
        let mut run = run;
        self.set_state(State::Stopping {
            run: Some(run.id),
            pid: Some(run.pid),
        });
        let hooks = self.hooks.clone();
        let mut pre_stop = if ready {
            Some(hooks.pre_stop())
        } else {
            run.group.signal(Signal::SIGTERM);
            None
        };
        let mut killed = false;
        let status = loop {
            let at = pending.deadline;
            tokio::select! {
                biased;
                status = run.child.wait() => break status,
                command = self.commands.recv(), if !pending.abandoned => pending.absorb(command),
                () = sleep_until(at), if !killed => {
                    tracing::warn!(
                        job = %self.name,
                        pid = run.pid,
                        "grace period over; sending SIGKILL to the group"
                    );
                    run.group.signal(Signal::SIGKILL);
                    pre_stop = None;
                    killed = true;
                }
                () = poll_opt(&mut pre_stop) => {
                    pre_stop = None;
                    run.group.signal(Signal::SIGTERM);
                }
            }
        };
        let exit = run.finish(status).await;
        tracing::info!(job = %self.name, %exit, "child stopped");
        self.shared.update(|s| s.last_exit = Some(exit));
        RunEnd::Stopped(pending)
    }
}
