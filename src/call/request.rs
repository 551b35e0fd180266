//! A request the call path may send more than once: its head, and its body either read
//! whole before the first send (any request whose body is complete at once, which is every
//! unary and server-streaming call tonic makes) or a stream that is sent again only if no
//! attempt ever read from it.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use parking_lot::Mutex;
use tonic::{Status, body::Body};

use super::grpc;

/// A request, ready for as many attempts as its body allows.
#[derive(Debug)]
pub(crate) struct Outgoing {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    payload: Payload,
}

#[derive(Debug)]
enum Payload {
    /// The whole body: sent again as often as needed.
    Whole {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// A body still being written by the caller: the first attempt that reads it takes it.
    Stream(Arc<Mutex<Option<Body>>>),
}

impl Outgoing {
    /// A unary gRPC request to `uri` (origin and path) with one framed message.
    pub(crate) fn unary(uri: Uri, framed: Bytes) -> Self {
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        Outgoing {
            method: Method::POST,
            uri,
            version: Version::HTTP_2,
            headers,
            payload: Payload::Whole {
                data: framed,
                trailers: None,
            },
        }
    }

    /// `request` with its URI's path under `origin`; its body read now as far as it is
    /// ready without waiting. A body that fails as it is read is the caller's error.
    pub(crate) fn new(request: http::Request<Body>, origin: &Uri) -> Result<Self, Status> {
        let (head, mut body) = request.into_parts();
        let uri = match head.uri.path_and_query() {
            Some(path) => {
                let mut parts = origin.clone().into_parts();
                parts.path_and_query = Some(path.clone());
                Uri::from_parts(parts).map_err(|e| Status::internal(e.to_string()))?
            }
            None => origin.clone(),
        };
        let mut data = Chunks::default();
        let mut trailers = None;
        let mut cx = Context::from_waker(Waker::noop());
        let payload = loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(None) => {
                    break Payload::Whole {
                        data: data.into_bytes(),
                        trailers,
                    };
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) => data.push(chunk),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Poll::Ready(Some(Err(status))) => return Err(status),
                Poll::Pending => {
                    let data = data.into_bytes();
                    let body = Body::new(Prefixed {
                        prefix: (!data.is_empty()).then_some(data),
                        rest: body,
                    });
                    break Payload::Stream(Arc::new(Mutex::new(Some(body))));
                }
            }
        };
        Ok(Outgoing {
            method: head.method,
            uri,
            version: head.version,
            headers: head.headers,
            payload,
        })
    }

    /// The path called (`/package.Service/Method`).
    pub(crate) fn path(&self) -> &str {
        self.uri.path()
    }

    /// Whether the body is a stream the caller is still writing.
    #[cfg(test)]
    pub(crate) fn streaming(&self) -> bool {
        matches!(self.payload, Payload::Stream(_))
    }

    /// The request for one attempt, with `remaining` as its `grpc-timeout`; `None` when its
    /// body was read by an earlier attempt and cannot be sent again.
    pub(crate) fn attempt(&self, remaining: Duration) -> Option<http::Request<Body>> {
        let body = match &self.payload {
            Payload::Whole { data, trailers } => {
                Body::new(Whole::new(data.clone(), trailers.clone()))
            }
            Payload::Stream(cell) => {
                if cell.lock().is_none() {
                    return None;
                }
                Body::new(TakeOnRead {
                    cell: cell.clone(),
                    taken: None,
                })
            }
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        headers.insert(grpc::TIMEOUT, grpc::encode_timeout(remaining));
        Some(request)
    }
}

/// The bytes of a body as read: one chunk kept as it is (a unary request's one frame is
/// not copied), more joined.
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(chunk),
            (Some(first), None) => {
                let mut joined = BytesMut::with_capacity(first.len() + chunk.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&chunk);
                self.more = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&chunk),
        }
    }

    fn into_bytes(self) -> Bytes {
        match (self.first, self.more) {
            (_, Some(joined)) => joined.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

/// A body read whole: its bytes, then its trailers.
#[derive(Debug)]
pub(crate) struct Whole {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Whole {
    pub(crate) fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Whole {
            data: (!data.is_empty()).then_some(data),
            trailers,
        }
    }
}

impl http_body::Body for Whole {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// What was read of a streaming body before it had to wait, then the rest of it.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A streaming body shared by the attempts: the first one that reads takes it, so a
/// request that was never read can still go out on another connection.
struct TakeOnRead {
    cell: Arc<Mutex<Option<Body>>>,
    taken: Option<Body>,
}

impl http_body::Body for TakeOnRead {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.taken.is_none() {
            let taken = self.cell.lock().take();
            self.taken = taken;
        }
        match &mut self.taken {
            Some(body) => Pin::new(body).poll_frame(cx),
            // Another attempt took it: this one has nothing to send.
            None => Poll::Ready(Some(Err(Status::aborted(
                "the request's stream was taken by another attempt",
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn origin() -> Uri {
        Uri::from_static("http://plugin")
    }

    async fn read(request: http::Request<Body>) -> Bytes {
        request.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_complete_body_goes_out_on_every_attempt_with_its_deadline() {
        let mut request = http::Request::new(Body::new(http_body_util::Full::new(
            Bytes::from_static(b"hello"),
        )));
        *request.uri_mut() = Uri::from_static("/api.RateLimiter/Allow");
        let outgoing = Outgoing::new(request, &origin()).unwrap();
        assert!(!outgoing.streaming());
        assert_eq!(outgoing.path(), "/api.RateLimiter/Allow");
        for _ in 0..3 {
            let attempt = outgoing.attempt(Duration::from_millis(5)).unwrap();
            assert_eq!(attempt.uri(), "http://plugin/api.RateLimiter/Allow");
            assert_eq!(attempt.headers()[grpc::TIMEOUT], "5000000n");
            assert_eq!(read(attempt).await, "hello");
        }
    }

    #[tokio::test]
    async fn a_body_of_several_ready_frames_is_whole_and_joined() {
        let frames =
            [&b"ab"[..], b"cd", b"e"].map(|d| Ok::<_, Status>(Frame::data(Bytes::from_static(d))));
        let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )));
        let outgoing = Outgoing::new(http::Request::new(body), &origin()).unwrap();
        assert!(!outgoing.streaming());
        for _ in 0..2 {
            assert_eq!(
                read(outgoing.attempt(Duration::from_secs(1)).unwrap()).await,
                "abcde"
            );
        }
    }

    #[tokio::test]
    async fn a_stream_goes_out_once_it_has_been_read() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(1);
        let body = Body::new(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let outgoing = Outgoing::new(http::Request::new(body), &origin()).unwrap();
        assert!(outgoing.streaming());
        // An attempt that was never read leaves the stream for the next one.
        drop(outgoing.attempt(Duration::from_secs(1)).unwrap());
        let attempt = outgoing.attempt(Duration::from_secs(1)).unwrap();
        tx.send(Ok(Frame::data(Bytes::from_static(b"one"))))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(read(attempt).await, "one");
        assert!(outgoing.attempt(Duration::from_secs(1)).is_none());
    }
}
