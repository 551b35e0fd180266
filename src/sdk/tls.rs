//! The plugin side of TLS: accepted connections go through a TLS handshake before the
//! gRPC server sees them. Handshakes run concurrently (a slow or silent client holds up
//! no other), each bounded; failed ones are logged and dropped.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{Stream, StreamExt as _};
use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::mpsc,
    task::JoinSet,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::task::AbortOnDropHandle;
use tonic::transport::server::Connected;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_BUFFER: usize = 64;

/// A TLS connection as the gRPC server takes it.
pub(crate) struct TlsIo<IO>(TlsStream<IO>);

impl<IO> Connected for TlsIo<IO> {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections of `incoming` that completed a TLS handshake under `config`. The
/// accepting task (and the handshakes in progress) end when the stream is dropped.
pub(crate) fn incoming<I, IO, E>(
    incoming: I,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = io::Result<TlsIo<IO>>> + Send + 'static
where
    I: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display + Send,
{
    let (ready_tx, ready_rx) = mpsc::channel(READY_BUFFER);
    let acceptor = TlsAcceptor::from(config);
    let accepting = AbortOnDropHandle::new(tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        let mut handshakes = JoinSet::new();
        loop {
            tokio::select! {
                next = incoming.next() => match next {
                    Some(Ok(io)) => {
                        let acceptor = acceptor.clone();
                        let ready_tx = ready_tx.clone();
                        handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                                Ok(Ok(tls)) => {
                                    let _ = ready_tx.send(TlsIo(tls)).await;
                                }
                                Ok(Err(error)) => tracing::warn!(%error, "TLS handshake with a client failed"),
                                Err(_) => tracing::warn!("a client did not finish its TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
                            }
                        });
                    }
                    Some(Err(error)) => tracing::warn!(%error, "accepting a connection failed"),
                    None => break,
                },
                Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            }
        }
        while handshakes.join_next().await.is_some() {}
    }));
    futures_util::stream::unfold((ready_rx, accepting), |(mut rx, accepting)| async move {
        rx.recv().await.map(|io| (Ok(io), (rx, accepting)))
    })
}
