//! The bound on a plugin's calls: at most `max_concurrent` in flight (sent,
//! or waiting for the plugin to be ready), at most `max_queued` waiting for a
//! slot; past that a call is refused at once (load shedding). Destroy drains
//! it: waits for every slot to come back, then closes it for good.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use tokio::{
    sync::{Semaphore, SemaphorePermit},
    time::{Instant, timeout, timeout_at},
};

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot taken and the queue full.
    Overloaded,
    /// No slot freed up before the call's deadline.
    TimedOut,
    /// Destroyed (drained and closed).
    Closed,
}

#[derive(Debug)]
pub(crate) struct Admission {
    slots: Semaphore,
    max_concurrent: usize,
    max_queued: usize,
    queued: AtomicUsize,
}

/// One admitted call; its slot returns when it is dropped.
#[derive(Debug)]
pub(crate) struct Slot<'a>(#[allow(dead_code)] SemaphorePermit<'a>);

impl Admission {
    pub(crate) fn new(max_concurrent: usize, max_queued: usize) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            slots: Semaphore::new(max_concurrent),
            max_concurrent,
            max_queued,
            queued: AtomicUsize::new(0),
        }
    }

    pub(crate) fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Calls holding a slot now.
    pub(crate) fn in_flight(&self) -> usize {
        if self.slots.is_closed() {
            return 0;
        }
        self.max_concurrent
            .saturating_sub(self.slots.available_permits())
    }

    /// Takes a slot: at once when one is free, else by queueing (when the
    /// queue has room) until one frees up or `deadline` passes.
    pub(crate) async fn enter(&self, deadline: Instant) -> Result<Slot<'_>, Refused> {
        match self.slots.try_acquire() {
            Ok(permit) => return Ok(Slot(permit)),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Refused::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        let _queued = Queued::join(&self.queued, self.max_queued).ok_or(Refused::Overloaded)?;
        match timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(Slot(permit)),
            Ok(Err(_closed)) => Err(Refused::Closed),
            Err(_) => Err(Refused::TimedOut),
        }
    }

    /// Waits (at most `within`) until no call holds a slot, then refuses every
    /// later call for good. `false` if calls were still in flight at the end.
    pub(crate) async fn drain(&self, within: Duration) -> bool {
        let all = u32::try_from(self.max_concurrent).unwrap_or(u32::MAX);
        let drained = match timeout(within, self.slots.acquire_many(all)).await {
            Ok(Ok(permits)) => {
                permits.forget();
                true
            }
            Ok(Err(_closed)) => true,
            Err(_) => false,
        };
        self.slots.close();
        drained
    }
}

/// A place in the wait queue, given back on drop.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(counter: &'a AtomicUsize, max: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Queued(counter))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_slots_and_the_queue_calls_are_refused_at_once() {
        let admission = Admission::new(2, 1);
        let a = admission.enter(far()).await.unwrap();
        let _b = admission.enter(far()).await.unwrap();
        assert_eq!(admission.in_flight(), 2);
        // The third waits in the queue…
        let waiting = admission.enter(far());
        tokio::pin!(waiting);
        assert!((&mut waiting).now_or_never().is_none());
        // …the fourth finds the queue full.
        assert_eq!(
            admission.enter(far()).await.unwrap_err(),
            Refused::Overloaded
        );
        drop(a);
        let _c = waiting.await.unwrap();
        assert_eq!(admission.in_flight(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_call_gives_up_at_its_deadline_and_leaves_the_queue() {
        let admission = Admission::new(1, 1);
        let _a = admission.enter(far()).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(10);
        assert_eq!(
            admission.enter(deadline).await.unwrap_err(),
            Refused::TimedOut
        );
        // Its place in the queue was given back.
        let waiting = admission.enter(far());
        tokio::pin!(waiting);
        assert!((&mut waiting).now_or_never().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_queue_a_full_plugin_refuses_at_once() {
        let admission = Admission::new(1, 0);
        let _a = admission.enter(far()).await.unwrap();
        assert_eq!(
            admission.enter(far()).await.unwrap_err(),
            Refused::Overloaded
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_calls_in_flight_then_refuses_for_good() {
        let admission = std::sync::Arc::new(Admission::new(4, 4));
        let slot = admission.enter(far()).await.unwrap();
        let drain = admission.drain(Duration::from_secs(5));
        tokio::pin!(drain);
        assert!((&mut drain).now_or_never().is_none());
        drop(slot);
        assert!(drain.await);
        assert_eq!(admission.enter(far()).await.unwrap_err(), Refused::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_its_timeout() {
        let admission = Admission::new(4, 4);
        let _slot = admission.enter(far()).await.unwrap();
        assert!(!admission.drain(Duration::from_secs(1)).await);
        assert_eq!(admission.enter(far()).await.unwrap_err(), Refused::Closed);
    }
}
