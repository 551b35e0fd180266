//! The bound on a plugin's calls: at most `max_concurrent` in flight (sent,
//! or waiting for the plugin to be ready), at most `max_queued` waiting for a
//! slot; past that a call is refused at once (load shedding). Destroy drains
//! it: closes it for good (queued calls fail, new ones too), then waits for
//! every slot to come back.

use std::{
    sync::Arc,
    sync::atomic::{
        AtomicBool, AtomicUsize,
        Ordering::{Relaxed, SeqCst},
    },
    time::Duration,
};

use tokio::{
    sync::Notify,
    time::{Instant, timeout_at},
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

/// Slots are an atomic count: taking and giving one back is one atomic
/// operation, with no lock on the common path. Only callers who wait (and a
/// drain) are woken, through `freed`.
#[derive(Debug)]
pub(crate) struct Admission {
    in_flight: AtomicUsize,
    /// The limits: a reload may change them while calls run.
    max_concurrent: AtomicUsize,
    max_queued: AtomicUsize,
    queued: AtomicUsize,
    /// Queued callers and a drain waiting for a slot to come back.
    waiting: AtomicUsize,
    freed: Notify,
    closed: AtomicBool,
}

/// One admitted call; its slot returns when it is dropped.
#[derive(Debug)]
pub(crate) struct Slot<'a>(&'a Admission);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Slot<'_> {
    /// The same slot, held by a value that may outlive the borrow (a streaming response
    /// holds its call's slot until its body ends). `admission` is the one it came from.
    pub(crate) fn detach(self, admission: &Arc<Admission>) -> OwnedSlot {
        debug_assert!(std::ptr::eq(self.0, &**admission));
        std::mem::forget(self);
        OwnedSlot(admission.clone())
    }
}

/// An admitted call's slot, owned; returned when dropped.
#[derive(Debug)]
pub(crate) struct OwnedSlot(Arc<Admission>);

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Admission {
    pub(crate) fn new(max_concurrent: usize, max_queued: usize) -> Self {
        Admission {
            in_flight: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(max_concurrent.max(1)),
            max_queued: AtomicUsize::new(max_queued),
            queued: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn max_concurrent(&self) -> usize {
        self.max_concurrent.load(Relaxed)
    }

    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued.load(Relaxed)
    }

    /// New limits (a reload): calls already admitted keep their slots; a higher limit
    /// lets queued callers in at once.
    pub(crate) fn set_limits(&self, max_concurrent: usize, max_queued: usize) {
        self.max_concurrent.store(max_concurrent.max(1), Relaxed);
        self.max_queued.store(max_queued, Relaxed);
        self.freed.notify_waiters();
    }

    /// Gives a slot back.
    fn release(&self) {
        self.in_flight.fetch_sub(1, SeqCst);
        // A waiter counts itself before it looks at the slots, so either it
        // sees this one free or it is counted here and woken.
        if self.waiting.load(SeqCst) > 0 {
            self.freed.notify_waiters();
        }
    }

    /// Calls holding a slot now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    fn try_take(&self) -> Result<Option<Slot<'_>>, Refused> {
        if self.closed.load(SeqCst) {
            return Err(Refused::Closed);
        }
        let max = self.max_concurrent();
        let taken = self
            .in_flight
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1))
            .is_ok();
        Ok(taken.then(|| Slot(self)))
    }

    /// Takes a slot: at once when one is free, else by queueing (when the
    /// queue has room) until one frees up or `deadline` passes.
    pub(crate) async fn enter(&self, deadline: Instant) -> Result<Slot<'_>, Refused> {
        if let Some(slot) = self.try_take()? {
            return Ok(slot);
        }
        let _queued = Counted::join(&self.queued, self.max_queued()).ok_or(Refused::Overloaded)?;
        let _waiting = Counted::join(&self.waiting, usize::MAX).ok_or(Refused::Overloaded)?;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_take()? {
                return Ok(slot);
            }
            if timeout_at(deadline, freed).await.is_err() {
                return Err(Refused::TimedOut);
            }
        }
    }

    /// Refuses every later call for good, then waits (at most `within`)
    /// until no call holds a slot. `false` if calls were still in flight at
    /// the end.
    pub(crate) async fn drain(&self, within: Duration) -> bool {
        self.closed.store(true, SeqCst);
        // Queued callers wake and find it closed.
        self.freed.notify_waiters();
        let deadline = supervisor::deadline(Instant::now(), within);
        let _waiting = Counted::join(&self.waiting, usize::MAX);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.in_flight.load(SeqCst) == 0 {
                return true;
            }
            if timeout_at(deadline, freed).await.is_err() {
                return self.in_flight.load(SeqCst) == 0;
            }
        }
    }
}

/// A place counted in `counter` (at most `max`), given back on drop.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn join(counter: &'a AtomicUsize, max: usize) -> Option<Self> {
        counter
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Counted(counter))
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
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
        let first = (&mut waiting).now_or_never();
        assert!(first.is_none(), "{first:?}");
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

    #[test]
    fn under_contention_the_bound_holds_and_no_waiter_is_forgotten() {
        // 64 tasks on 2 threads take and give back 4 slots (queue 64) 200
        // times each: never more than 4 held, and every waiter is served
        // (a lost wake-up would leave a task waiting for its 1 h deadline).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let admission = std::sync::Arc::new(Admission::new(4, 64));
            let peak = std::sync::Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let admission = admission.clone();
                    let peak = peak.clone();
                    tokio::spawn(async move {
                        for _ in 0..200 {
                            let _slot = admission.enter(far()).await.unwrap();
                            peak.fetch_max(admission.in_flight(), SeqCst);
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let all = futures_util::future::join_all(tasks);
            let done = tokio::time::timeout(Duration::from_secs(60), all)
                .await
                .expect("every waiter was served");
            assert!(done.iter().all(Result::is_ok));
            assert!(peak.load(SeqCst) <= 4, "{}", peak.load(SeqCst));
            assert_eq!(admission.in_flight(), 0);
        });
    }
}
