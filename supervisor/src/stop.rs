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
    /// Terminal: once set, no later command changes it.
    Destroyed,
}

/// A stop in progress: the latest command's target (but a destroy is never overridden), the
/// earliest deadline asked for, and every ticket to resolve when the child is gone.
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
            Command::Destroy { grace, done } => (Target::Destroyed, grace, done),
        };
        Ok(Self {
            target,
            deadline: deadline(now, grace),
            tickets: vec![done],
            abandoned: false,
        })
    }

    /// A command that arrives during the stop: the latest target wins, except that nothing
    /// replaces [`Target::Destroyed`]; the earliest deadline wins. Its ticket resolves with the
    /// stop's.
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
            Some(Command::Destroy { grace, done }) => (Target::Destroyed, Some(grace), done),
        };
        if self.target != Target::Destroyed {
            self.target = target;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn command(kind: &str) -> Command {
        let done = oneshot::channel().0;
        let grace = Duration::from_secs(10);
        match kind {
            "stop" => Command::Stop { grace, done },
            "disable" => Command::Disable { grace, done },
            "enable" => Command::Enable { done },
            "restart" => Command::Restart { done },
            "destroy" => Command::Destroy { grace, done },
            _ => unreachable!(),
        }
    }

    fn start(kind: &str) -> Pending {
        Pending::start(command(kind), Duration::from_secs(2)).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_latest_target_wins() {
        let mut pending = start("stop");
        pending.absorb(Some(command("restart")));
        assert_eq!(pending.target, Target::Restart);
        pending.absorb(Some(command("disable")));
        assert_eq!(pending.target, Target::Disabled);
        pending.absorb(Some(command("enable")));
        assert_eq!(pending.target, Target::Restart);
        assert_eq!(pending.tickets.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_undoes_a_destroy() {
        for first in ["stop", "disable", "restart", "destroy"] {
            let mut pending = start(first);
            pending.absorb(Some(command("destroy")));
            for later in ["stop", "disable", "enable", "restart", "destroy"] {
                pending.absorb(Some(command(later)));
                assert_eq!(
                    pending.target,
                    Target::Destroyed,
                    "{first}, destroy, {later}"
                );
            }
            pending.absorb(None);
            assert_eq!(pending.target, Target::Destroyed);
            assert!(pending.abandoned);
        }
        let destroy = start("destroy");
        assert_eq!(destroy.target, Target::Destroyed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_earliest_deadline_wins_and_huge_graces_saturate() {
        let now = Instant::now();
        let mut pending = Pending::start(
            Command::Destroy {
                grace: Duration::MAX,
                done: oneshot::channel().0,
            },
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(pending.deadline > now + Duration::from_secs(3600 * 24 * 365));
        pending.absorb(Some(command("stop")));
        assert_eq!(pending.deadline, now + Duration::from_secs(10));
        pending.absorb(Some(command("restart")));
        assert_eq!(pending.deadline, now + Duration::from_secs(10));
    }
}
