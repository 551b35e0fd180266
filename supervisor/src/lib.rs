//! Supervised child processes: spawn with CPU placement, line-based output, readiness and
//! liveness hooks, restart with backoff, graceful stop. Generic: no gRPC, YAML or Polaris here.
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use supervisor::{Job, NoHooks, Policy, Spec, State};
//!
//! # async fn example() {
//! let job = Job::spawn("echo", Spec::new("sleep").args(["1000"]), Policy::default(), Arc::new(NoHooks));
//! let mut state = job.state();
//! state.wait_for(|s| matches!(s, State::Running { .. })).await.unwrap();
//! job.stop(Duration::from_secs(2)).await;
//! assert_eq!(job.current(), State::Stopped);
//! # }
//! ```
//!
//! # Theory of operation
//!
//! **Who owns what.** [`Job::spawn`] validates the [`Spec`] and [`Policy`], chooses the CPUs,
//! and starts one *owner task* on the caller's tokio runtime. The owner task alone touches the
//! child: it spawns it, waits for it, signals its process group and decides about restarts.
//! Everyone else holds a [`Job`] handle (cheap to clone) and talks to the owner through an
//! unbounded command channel; each command returns a [`Ticket`] that resolves once the command
//! has taken effect (the state is published before tickets resolve). The owner publishes the
//! [`State`] on a `watch` channel ([`Job::state`]) and every transition on a `broadcast`
//! channel ([`Job::subscribe`]), and traces each transition with the job's name. Counters
//! ([`Stats`]) sit behind a short-held lock shared with the output readers.
//!
//! **One run of the child.** Each spawned child is one *run*, numbered from 1 per job (the run
//! id: [`ReadyContext::run`], [`State::Running`], [`State::Stopping`]); a failed spawn is no
//! run and takes no id. Before every spawn the owner runs [`Hooks::before_spawn`] on a
//! blocking thread: a refusal leaves the job [`State::Failed`] ([`FailKind::Refused`]) without
//! an exec; a file it hands back is executed as opened (through `/proc/self/fd`), so a check
//! the hook made on it (a checksum) holds for what runs. The owner asks the process-wide *spawner thread* (one long-lived
//! std thread, started on first use) to fork the child, because `PR_SET_PDEATHSIG` fires when
//! the forking *thread* exits; tokio's worker and blocking threads come and go. Before `exec`
//! the child sets its parent-death signal to SIGKILL, checks that its parent is still the host
//! (closing the race with a host that died during the fork), applies its CPU affinity (so every
//! thread it starts inherits it), and leads a new process group. Two reader tasks per run,
//! owned by the run's `JoinSet`, drain stdout and stderr into lines of at most
//! [`Spec::max_line_len`] bytes; they never block the child and never buffer more than one
//! line. Stdout goes to the readiness hook through a bounded channel (lines are dropped and
//! counted when it is full), then to [`Hooks::stdout_line`]; stderr goes to
//! [`Hooks::stderr_line`] and into a bounded tail kept for reports.
//!
//! The state is [`State::Starting`] until [`Hooks::ready`] succeeds within
//! [`Policy::start_timeout`], then [`State::Running`]. When the hook fails (not when it times
//! out) the child gets up to 200 ms to be reaped before it is killed, so a child that exited by
//! itself is recorded with its own exit status rather than as the hook's error (which is only a
//! symptom, say "stdout closed"). While running, [`Hooks::probe`] runs every
//! [`Liveness::interval`]; `failure_threshold` failures in a row kill the group.
//!
//! **Restarts.** After an exit nobody asked for, [`Restart`] says whether to restart at all;
//! [`RestartSchedule`] says when: at once after a stable run (at least
//! [`Policy::min_uptime`]), after an exponential [`Backoff`] delay after quick failures
//! ([`State::BackingOff`]), or never again when the [`Intensity`] limit is exceeded
//! ([`State::Failed`], carrying the last exit and stderr lines). Failed spawns, failed or late
//! readiness and liveness kills are failures too. The backoff is our own small validated type:
//! the `backoff` crate is unmaintained (RUSTSEC-2025-0012) and its `instant` dependency too
//! (RUSTSEC-2024-0384). Between runs the owner only waits on a timer or on commands, so a crash
//! loop costs almost no CPU.
//!
//! **How it ends.**
//!
//! * Every path out of a run reaps the child, then SIGKILLs what is left of its process group,
//!   so grandchildren die too and no zombie remains. Then the owner calls
//!   [`Hooks::run_ended`] with the run id, the pid and the run's [`Exit`], exactly once per run
//!   and before anything else (the next spawn, the next published state): the place to clean
//!   up what the run owned.
//! * A stop ([`Job::stop`], [`Job::disable`], [`Job::restart`]) runs [`Hooks::pre_stop`] if the
//!   child was ready, sends SIGTERM to the group, and SIGKILL when the grace budget runs out.
//!   Commands arriving meanwhile join the stop (the latest target and the earliest deadline
//!   win, except that nothing overrides a destroy; all tickets resolve when the child is gone). A stop during a backoff just cancels the
//!   pending start.
//! * [`Job::destroy`] is a stop whose end is terminal (watchexec's `Delete`): once the child is
//!   gone the owner publishes [`State::Destroyed`] and ends, so that is the last value on the
//!   state channel, which then closes. Commands arriving during that stop join it without
//!   changing its target; later commands find no owner and their tickets resolve at once. During
//!   a backoff or at rest there is no child and the job is destroyed at once.
//! * Deadlines (grace, backoff, probe interval) saturate at about 100 years, so any `Duration`,
//!   `Duration::MAX` included, is accepted.
//! * When the last handle is dropped, the owner SIGKILLs the group, reaps the child and ends (a
//!   stop in progress finishes first). If a child was running or stopping, the owner publishes
//!   [`State::Stopped`] once it is reaped; the state channel then closes with that as its last
//!   value. At rest or during a backoff the channel closes on the state it had.
//! * If the runtime shuts down under the owner task, or a hook panics inside it, a drop guard
//!   SIGKILLs the group and tokio reaps the leader; after a panic a watchdog task publishes
//!   [`State::Failed`] with [`FailKind::Panicked`]. A panic in a line hook is logged and the
//!   line dropped. The spawner thread catches panics too: its death would fire every child's
//!   parent-death signal.
//! * If the host process dies, even by SIGKILL, the kernel SIGKILLs each child (the
//!   parent-death signal). Grandchildren are not covered by that; they rely on the group kill
//!   of an orderly shutdown.
//!
//! **Resources.** [`Job::resources`] measures the running child's pid with `sysinfo` on demand
//! (CPU % is a rate between two calls; descendants are not included).

mod backoff;
mod cpu;
mod deadline;
mod error;
mod hooks;
mod human;
mod job;
mod output;
mod owner;
mod policy;
mod run;
mod schedule;
mod spawn;
mod spec;
mod state;
mod stats;
mod stop;

pub use backoff::{Backoff, FixedJitter, JitterSource};
pub use deadline::deadline;
pub use error::{BackoffError, Error, PolicyError, SpecError};
pub use hooks::{BoxFuture, HookError, Hooks, NoHooks, ReadyContext};
pub use human::HumanDuration;
pub use job::{Job, Ticket};
pub use output::LineSplitter;
pub use owner::RunIds;
pub use policy::{Intensity, Liveness, Policy, Restart};
pub use schedule::{Decision, RestartSchedule};
pub use spec::{CpuLimit, DEFAULT_MAX_LINE_LEN, Env, EnvFilter, Limits, Spec};
pub use state::{Exit, FailKind, FailReason, State};
pub use stats::{Resources, Stats};
