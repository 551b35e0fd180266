//! One task per connection: the HTTP/2 connection's frame I/O and the pipes sending
//! streaming request bodies run inside it instead of as tasks of their own.
//!
//! On a multi-thread runtime every spawned task and every wake between tasks may move work
//! to the other worker, and wake it from sleep to do so. hyper's client spawned its frame
//! I/O, a task per request waiting for the response and often one sending the body; here
//! the caller's task queues its request and waits for the response itself, and the
//! connection's own task ([`Driver`]) polls the rest together: a call involves two tasks,
//! the caller's and the connection's.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{StreamExt as _, stream::FuturesUnordered, task::AtomicWaker};

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What was spawned on the connection, waiting for the driver to take it.
#[derive(Default)]
struct Inbox {
    spawned: parking_lot::Mutex<Vec<Boxed>>,
    /// The driver's task.
    waker: AtomicWaker,
}

/// Spawns futures on the connection's task: queues them for the [`Driver`].
#[derive(Clone, Default)]
pub(crate) struct Local(Arc<Inbox>);

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Local")
    }
}

impl Local {
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.0.spawned.lock().push(Box::pin(future));
        self.0.waker.wake();
    }
}

/// The connection's task: polls the connection and every future spawned on it;
/// ends with the connection's result once the connection and those futures are done.
pub(crate) struct Driver<C, E> {
    connection: Option<Pin<Box<C>>>,
    result: Option<Result<(), E>>,
    tasks: FuturesUnordered<Boxed>,
    inbox: Arc<Inbox>,
}

impl<C, E> Driver<C, E> {
    pub(crate) fn new(connection: C, executor: &Local) -> Self {
        Driver {
            connection: Some(Box::pin(connection)),
            result: None,
            tasks: FuturesUnordered::new(),
            inbox: executor.0.clone(),
        }
    }
}

impl<C: Future<Output = Result<(), E>>, E: Unpin> Future for Driver<C, E> {
    type Output = Result<(), E>;

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
            // Polling may have spawned more.
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
