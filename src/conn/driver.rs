//! One task per connection: hyper's futures run inside it instead of as tasks of their own.
//!
//! hyper's HTTP/2 client spawns the connection's frame I/O as one task, and for each
//! request one more (waiting for the response) and often another (sending the body). On a
//! multi-thread runtime every spawn and every wake between them may move work to the
//! other worker, and wake it from sleep to do so. Here hyper gets an executor that hands
//! its futures to the connection's own task ([`Driver`]), which polls them together with
//! the connection: a call then involves two tasks, the caller's and the connection's.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{StreamExt as _, stream::FuturesUnordered, task::AtomicWaker};

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What hyper spawns, waiting for the driver to take it.
#[derive(Default)]
struct Inbox {
    spawned: parking_lot::Mutex<Vec<Boxed>>,
    /// The driver's task.
    waker: AtomicWaker,
}

/// hyper's executor: queues futures for the [`Driver`].
#[derive(Clone, Default)]
pub(crate) struct Local(Arc<Inbox>);

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Local")
    }
}

impl<F> hyper::rt::Executor<F> for Local
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawned.lock().push(Box::pin(future));
        self.0.waker.wake();
    }
}

/// The connection's task: polls the connection and every future hyper spawned for it;
/// ends with the connection's result once the connection and those futures are done.
pub(crate) struct Driver<C> {
    connection: Option<Pin<Box<C>>>,
    result: Option<hyper::Result<()>>,
    tasks: FuturesUnordered<Boxed>,
    inbox: Arc<Inbox>,
}

impl<C> Driver<C> {
    pub(crate) fn new(connection: C, executor: &Local) -> Self {
        Driver {
            connection: Some(Box::pin(connection)),
            result: None,
            tasks: FuturesUnordered::new(),
            inbox: executor.0.clone(),
        }
    }
}

impl<C: Future<Output = hyper::Result<()>>> Future for Driver<C> {
    type Output = hyper::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.inbox.waker.register(cx.waker());
        loop {
            if let Some(connection) = &mut this.connection
                && let Poll::Ready(result) = connection.as_mut().poll(cx)
            {
                this.connection = None;
                this.result = Some(result);
            }
            let spawned = std::mem::take(&mut *this.inbox.spawned.lock());
            let more = !spawned.is_empty();
            this.tasks.extend(spawned);
            while let Poll::Ready(Some(())) = this.tasks.poll_next_unpin(cx) {}
            // Polling may have spawned more (a request's response future, its body's pipe).
            if !more && this.inbox.spawned.lock().is_empty() {
                break;
            }
        }
        if this.connection.is_none() && this.tasks.is_empty() {
            return Poll::Ready(this.result.take().unwrap_or(Ok(())));
        }
        Poll::Pending
    }
}
