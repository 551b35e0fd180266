//! A connection's gate for blue/green switches: counts the requests in flight on it, and
//! once retired lets no new request through, so the host can wait until the last one is
//! answered before it tells the process to shut down.
//!
//! One atomic word: the top bit is "retired", the rest the count. `enter` adds one and
//! backs out if the bit was set, so a request either counts before the retire (and is
//! waited for) or is refused unsent; there is no window between.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire},
    },
    time::Duration,
};

use tokio::sync::Notify;

const RETIRED: u64 = 1 << 63;

#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: AtomicU64,
    idle: Notify,
}

/// One request in flight; leaves the gate when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Gate>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Gate {
    /// Counts one request in, unless the gate is retired.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<InFlight> {
        let before = self.state.fetch_add(1, AcqRel);
        let guard = InFlight(self.clone());
        (before & RETIRED == 0).then_some(guard)
    }

    fn leave(&self) {
        let before = self.state.fetch_sub(1, AcqRel);
        if before == RETIRED | 1 {
            self.idle.notify_waiters();
        }
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> u64 {
        self.state.load(Acquire) & !RETIRED
    }

    /// Lets no new request in, then waits until those in flight are answered, at most
    /// `within`. Whether they all were.
    pub(crate) async fn retire(&self, within: Duration) -> bool {
        self.state.fetch_or(RETIRED, AcqRel);
        let drained = async {
            loop {
                let idle = self.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(within, drained).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retiring_refuses_new_requests_and_waits_for_those_in_flight() {
        let gate = Arc::new(Gate::default());
        let first = gate.enter().expect("open");
        let second = gate.enter().expect("open");
        assert_eq!(gate.in_flight(), 2);
        let retire = tokio::spawn({
            let gate = gate.clone();
            async move { gate.retire(Duration::from_secs(10)).await }
        });
        tokio::task::yield_now().await;
        assert!(gate.enter().is_none(), "retired: refused");
        assert_eq!(gate.in_flight(), 2, "a refused request does not count");
        drop(first);
        tokio::task::yield_now().await;
        assert!(!retire.is_finished());
        drop(second);
        assert!(retire.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn retiring_gives_up_after_its_time() {
        let gate = Arc::new(Gate::default());
        let _stuck = gate.enter().expect("open");
        assert!(!gate.retire(Duration::from_secs(3)).await);
        let idle = Arc::new(Gate::default());
        assert!(
            idle.retire(Duration::ZERO).await,
            "nothing in flight: at once"
        );
    }
}
