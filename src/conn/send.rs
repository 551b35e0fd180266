//! Sending a request on the HTTP/2 connection (h2's client, driven by the connection's
//! task).
//!
//! A request whose body is complete at once (every unary and server-streaming gRPC call)
//! is queued whole — HEADERS, then DATA with END_STREAM — from the caller's task before the
//! connection's task next writes, so the plugin gets it in one write and one read. hyper's
//! client instead hands the body to a pipe that waits for send capacity, which h2 grants
//! only once it has opened the stream and flushed its HEADERS: a request then left in two
//! writes (`docs/benchmarks.md`, issue 15). A body that is not ready at once (a client
//! stream) is sent as it comes by a pipe on the connection's task, within HTTP/2 flow
//! control, and stops when the plugin resets the stream.

use std::{
    future::poll_fn,
    task::{Context, Poll},
};

use bytes::Bytes;
use h2::{SendStream, client::SendRequest};
use http_body::Body as _;
use tonic::body::Body;

use super::driver::Local;

/// Why a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The connection refused a new stream (it is closing, failed, or got a GOAWAY):
    /// nothing was sent.
    #[error(transparent)]
    Connection(h2::Error),
    /// The request's own body failed before anything was sent.
    #[error("the request's body failed: {0}")]
    Body(tonic::Status),
}

/// How much of a body that is ready at once is queued from the caller's task; beyond it
/// the pipe sends the rest within the stream's flow-control window.
const QUEUE_AT_ONCE: usize = 64 * 1024;

/// Queues `request` on the connection: the head and as much of the body as is ready now;
/// the rest goes through a pipe spawned on `spawn` (the connection's task).
///
/// The body is polled until it is pending or ends, one frame behind, so that its last
/// DATA frame carries END_STREAM (tonic's encoder knows it has ended only when polled once
/// more after its one message).
pub(super) async fn send(
    send: &mut SendRequest<Bytes>,
    spawn: &Local,
    request: http::Request<Body>,
) -> Result<h2::client::ResponseFuture, SendError> {
    let (mut head, mut body) = request.into_parts();
    strip_connection_headers(&mut head.headers);
    let mut opening = Opening {
        head: Some(http::Request::from_parts(head, ())),
        opened: None,
    };
    if body.is_end_stream() {
        return opening.finish(send, None);
    }
    let mut held: Option<Bytes> = None;
    let mut queued = 0;
    loop {
        let polled = poll_fn(|cx| Poll::Ready(poll_body(&mut body, cx))).await;
        match polled {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    queued += data.len();
                    if let Some(earlier) = held.replace(data) {
                        opening.data(send, earlier)?;
                    }
                    if body.is_end_stream() {
                        return opening.finish(send, held);
                    }
                    if queued >= QUEUE_AT_ONCE {
                        break;
                    }
                }
                Err(frame) => {
                    if let Some(earlier) = held.take() {
                        opening.data(send, earlier)?;
                    }
                    opening.open(send)?;
                    let (response, mut stream) = opening.opened.take().expect("opened");
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = stream.send_trailers(trailers);
                    }
                    return Ok(response);
                }
            },
            Poll::Ready(None) => return opening.finish(send, held),
            Poll::Ready(Some(Err(status))) => {
                if let Some((_, stream)) = &mut opening.opened {
                    stream.send_reset(h2::Reason::CANCEL);
                }
                return Err(SendError::Body(status));
            }
            Poll::Pending => break,
        }
    }
    if let Some(earlier) = held.take() {
        opening.data(send, earlier)?;
    }
    opening.open(send)?;
    let (response, stream) = opening.opened.take().expect("opened");
    spawn.spawn(pipe(body, stream));
    Ok(response)
}

/// A request's stream, opened (HEADERS queued) at its first DATA frame, or at its end
/// with END_STREAM on the HEADERS when the body is empty.
struct Opening {
    head: Option<http::Request<()>>,
    opened: Option<(h2::client::ResponseFuture, SendStream<Bytes>)>,
}

impl Opening {
    fn open(
        &mut self,
        send: &mut SendRequest<Bytes>,
    ) -> Result<&mut (h2::client::ResponseFuture, SendStream<Bytes>), SendError> {
        if let Some(head) = self.head.take() {
            let opened = send
                .send_request(head, false)
                .map_err(SendError::Connection)?;
            self.opened = Some(opened);
        }
        Ok(self.opened.as_mut().expect("opened with the head"))
    }

    /// Queues a DATA frame that is not the last (h2 sends it as the window allows).
    fn data(&mut self, send: &mut SendRequest<Bytes>, data: Bytes) -> Result<(), SendError> {
        let (_, stream) = self.open(send)?;
        // A failure here is the stream's (reset, connection gone): its response says so.
        let _ = stream.send_data(data, false);
        Ok(())
    }

    /// Ends the request: `last` with END_STREAM, or END_STREAM on the HEADERS.
    fn finish(
        mut self,
        send: &mut SendRequest<Bytes>,
        last: Option<Bytes>,
    ) -> Result<h2::client::ResponseFuture, SendError> {
        match (self.head.take(), last) {
            (Some(head), None) => {
                let (response, _) = send
                    .send_request(head, true)
                    .map_err(SendError::Connection)?;
                Ok(response)
            }
            (head, last) => {
                self.head = head;
                let (_, stream) = self.open(send)?;
                let _ = stream.send_data(last.unwrap_or_default(), true);
                let (response, _) = self.opened.take().expect("opened");
                Ok(response)
            }
        }
    }
}

type Polled = Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>>;

fn poll_body(body: &mut Body, cx: &mut Context<'_>) -> Polled {
    std::pin::Pin::new(body).poll_frame(cx)
}

/// Sends the rest of a body as it comes, within the stream's flow-control window; ends the
/// stream after the last frame, resets it (`CANCEL`) when the body fails, and stops when the
/// plugin resets the stream (it answered without reading the rest, or gave up).
async fn pipe(mut body: Body, mut stream: SendStream<Bytes>) {
    loop {
        let next = poll_fn(|cx| {
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(Err(reset));
            }
            poll_body(&mut body, cx).map(Ok)
        })
        .await;
        let frame = match next {
            Err(_reset) => return,
            Ok(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Ok(Some(Err(status))) => {
                tracing::debug!(%status, "a request body failed; the stream is reset");
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let end = body.is_end_stream();
                if send_within_window(&mut stream, data, end).await.is_err() || end {
                    return;
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = stream.send_trailers(trailers);
                }
                return;
            }
        }
    }
}

/// Sends `data` as send capacity comes (a slow plugin slows the stream instead of the host
/// buffering it).
async fn send_within_window(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return stream.send_data(data, end);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = poll_fn(|cx| {
            if stream.capacity() > 0 {
                return Poll::Ready(Ok(stream.capacity()));
            }
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(reset.map(|reason| {
                    tracing::debug!(%reason, "the plugin reset a request stream");
                    0
                }));
            }
            match stream.poll_capacity(cx) {
                Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(n)),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(None) => Poll::Ready(Ok(0)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        if granted == 0 {
            // Reset by the plugin, or the stream's send side closed: nothing more goes.
            return Ok(());
        }
        let chunk = data.split_to(granted.min(data.len()));
        stream.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

/// HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2) and h2 refuses a request
/// carrying them; like hyper, drop them (`te` stays only as `trailers`, which gRPC sends).
fn strip_connection_headers(headers: &mut http::HeaderMap) {
    use http::header;
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_headers_are_dropped_and_te_trailers_kept() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "close".parse().unwrap());
        headers.insert("keep-alive", "5".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        strip_connection_headers(&mut headers);
        let mut names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-kept"]);
        headers.insert("te", "gzip".parse().unwrap());
        strip_connection_headers(&mut headers);
        assert!(headers.get("te").is_none());
    }
}
