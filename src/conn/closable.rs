//! A stream the host can end: after [`CancellationToken::cancel`], reads see
//! end-of-file and writes fail, so the HTTP/2 connection over it ends and
//! every request still waiting on it fails at once. A peer that died does
//! not always make the connection fail by itself; this costs nothing per
//! call (the connection task alone polls it).

use std::{
    future::Future as _,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub(crate) struct Closable<S> {
    inner: S,
    token: CancellationToken,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Closable<S> {
    pub(crate) fn new(inner: S, token: CancellationToken) -> Self {
        Closable {
            inner,
            closed: Box::pin(token.clone().cancelled_owned()),
            token,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Closable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Registered once per read poll of the connection task: closing
        // wakes a connection that waits for the peer.
        if self.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Closable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "closed by the host")
}

/// The in-process test servers serve over a `Closable` (killing it is a
/// plugin process dying).
#[cfg(test)]
impl<S> tonic::transport::server::Connected for Closable<S> {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}
