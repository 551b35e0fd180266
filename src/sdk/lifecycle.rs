//! What ends a plugin besides the host's `Shutdown`: SIGTERM, and the death
//! of the host process. SIGINT is ignored, as go-plugin plugins do, so a
//! Ctrl-C in the host's terminal leaves the plugin to the host's orderly stop.

use std::time::Duration;

use nix::{sys::signal::Signal, unistd::getppid};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The parent-death signal. Not SIGTERM/SIGKILL: Linux sends it when the
/// host's *spawning thread* exits, which also happens while the host lives
/// (a tokio host that spawned from a blocking-pool thread). On receipt the
/// plugin checks `getppid()` and only stops if the host process is gone.
const PARENT_DEATH_SIGNAL: Signal = Signal::SIGUSR2;
/// Belt and braces for hosts where the signal is not delivered (another OS,
/// a re-exec): the parent pid is also polled, as the Go SDK does.
const PARENT_POLL: Duration = Duration::from_secs(1);

/// Spawns the watchers; each cancels `shutdown` with a reason logged.
pub(crate) fn watch(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut pdeath = signal(SignalKind::from_raw(PARENT_DEATH_SIGNAL as i32))?;
    let parent = getppid();
    arm_parent_death_signal();
    // The host may have died before the signal was armed.
    if getppid() != parent {
        tracing::warn!("host process is gone; stopping");
        shutdown.cancel();
    }
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(PARENT_POLL);
        let mut interrupts = 0u64;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = term.recv() => {
                    tracing::info!("SIGTERM received; stopping gracefully");
                    shutdown.cancel();
                }
                _ = int.recv() => {
                    interrupts += 1;
                    tracing::debug!(count = interrupts, "SIGINT ignored; the host stops plugins through Shutdown");
                }
                _ = pdeath.recv() => {
                    if getppid() == parent {
                        // Only the spawning thread ended; re-arm for the new parent thread.
                        arm_parent_death_signal();
                    }
                }
                _ = poll.tick() => {}
            }
            if getppid() != parent && !shutdown.is_cancelled() {
                tracing::warn!(host_pid = parent.as_raw(), "host process is gone; stopping");
                shutdown.cancel();
            }
        }
    });
    Ok(())
}

#[cfg(target_os = "linux")]
fn arm_parent_death_signal() {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(PARENT_DEATH_SIGNAL) {
        tracing::debug!(error = %e, "cannot set the parent-death signal; relying on polling");
    }
}

#[cfg(not(target_os = "linux"))]
fn arm_parent_death_signal() {}
