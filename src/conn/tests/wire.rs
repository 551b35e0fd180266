//! What the host puts on the wire, read frame by frame from the plugin's end of an
//! in-process connection (RFC 9113 §4.1 frame headers), and the keepalive against a peer
//! that never answers (paused time).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use tokio::{
    io::{AsyncReadExt as _, DuplexStream},
    sync::mpsc,
};

use super::super::*;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// The plugin's end of the connection, read as frames (it never answers).
struct Wire(DuplexStream);

impl Wire {
    async fn open(mut io: DuplexStream) -> Wire {
        let mut preface = [0; 24];
        io.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        Wire(io)
    }

    async fn next(&mut self) -> Frame {
        let mut head = [0; 9];
        self.0.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        self.0.read_exact(&mut payload).await.unwrap();
        Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        }
    }

    /// The frames of stream 1 up to and including the one that ends it (END_STREAM or
    /// RST_STREAM).
    async fn first_stream(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            if frame.stream != 1 {
                continue;
            }
            let last =
                frame.flags & END_STREAM != 0 && frame.kind != HEADERS || frame.kind == RST_STREAM;
            frames.push(frame);
            if last {
                return frames;
            }
        }
    }
}

fn request(body: tonic::body::Body) -> http::Request<tonic::body::Body> {
    http::Request::post("http://plugin/proto.Plugin/Call")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap()
}

fn kinds(frames: &[Frame]) -> Vec<(u8, u8)> {
    frames
        .iter()
        .map(|f| (f.kind, f.flags & END_STREAM))
        .collect()
}

/// A body complete at once goes as HEADERS and one DATA frame that ends the stream,
/// both queued before the connection writes: a generated client's unary request (tonic's
/// encoder knows it has ended only when polled once more) and a whole body alike.
#[tokio::test]
async fn a_complete_body_is_one_data_frame_that_ends_the_stream() {
    for (what, body) in [
        (
            "whole",
            tonic::body::Body::new(http_body_util::Full::new(Bytes::from_static(b"abc"))),
        ),
        (
            "tonic's encoder",
            tonic::body::Body::new(StreamBody::new(futures_util::stream::iter([Ok::<
                _,
                tonic::Status,
            >(
                http_body::Frame::data(Bytes::from_static(b"abc")),
            )]))),
        ),
    ] {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let conn = over(client, None).await.unwrap();
        let call = tokio::spawn(tower::Service::call(&mut conn.clone(), request(body)));
        let mut wire = Wire::open(server).await;
        let frames = wire.first_stream().await;
        assert_eq!(
            kinds(&frames),
            [(HEADERS, 0), (DATA, END_STREAM)],
            "{what}: {frames:?}"
        );
        assert_eq!(frames[1].payload, b"abc", "{what}");
        call.abort();
    }
}

/// An in-process stream that records what each write carried.
struct Recorded {
    inner: DuplexStream,
    writes: std::sync::Arc<parking_lot::Mutex<Vec<Vec<u8>>>>,
}

impl tokio::io::AsyncRead for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Recorded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.writes.lock().push(buf[..written].to_vec());
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A unary request leaves in one write: the plugin reads it whole, once (hyper's client
/// wrote HEADERS and DATA apart).
#[tokio::test]
async fn a_unary_request_leaves_in_one_write() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let writes = std::sync::Arc::default();
    let recorded = Recorded {
        inner: client,
        writes: std::sync::Arc::clone(&writes),
    };
    let conn = over(recorded, None).await.unwrap();
    let mut wire = Wire::open(server).await;
    // The handshake's own writes first.
    let settings = wire.next().await;
    assert_eq!(settings.kind, 0x4);
    let before = writes.lock().len();
    let body = tonic::body::Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
    let call = tokio::spawn(tower::Service::call(&mut conn.clone(), request(body)));
    let frames = wire.first_stream().await;
    assert_eq!(kinds(&frames), [(HEADERS, 0), (DATA, END_STREAM)]);
    let writes = writes.lock()[before..].to_vec();
    let request: Vec<_> = writes
        .iter()
        .filter(|w| w.windows(3).any(|b| b == b"abc"))
        .collect();
    assert_eq!(request.len(), 1, "{writes:?}");
    assert_eq!(
        request[0].len(),
        9 + frames[0].payload.len() + 9 + 3,
        "HEADERS and DATA in the one write: {writes:?}"
    );
    call.abort();
}

/// A body that is not ready at once (a client stream) is sent as it comes: the first
/// message reaches the plugin before the second exists, and the stream ends with the body.
#[tokio::test]
async fn a_streaming_body_is_sent_as_it_comes() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = over(client, None).await.unwrap();
    let (tx, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, tonic::Status>>(1);
    let body = tonic::body::Body::new(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let call = tokio::spawn(tower::Service::call(&mut conn.clone(), request(body)));
    let mut wire = Wire::open(server).await;
    let mut frame = wire.next().await;
    while frame.stream != 1 {
        frame = wire.next().await;
    }
    assert_eq!((frame.kind, frame.flags & END_STREAM), (HEADERS, 0));
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"one"))))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while frames.is_empty() {
        let frame = wire.next().await;
        if frame.stream == 1 {
            frames.push(frame);
        }
    }
    assert_eq!(kinds(&frames), [(DATA, 0)]);
    assert_eq!(frames[0].payload, b"one");
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"two"))))
        .await
        .unwrap();
    drop(tx);
    let rest = wire.first_stream().await;
    let payload: Vec<u8> = rest.iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(payload, b"two");
    assert!(rest.iter().all(|f| f.kind == DATA), "{rest:?}");
    assert_eq!(rest.last().unwrap().flags & END_STREAM, END_STREAM);
    call.abort();
}

/// A body that fails before anything was sent fails the request (not sent, not retried as
/// unsent: it would fail again); one that fails midway resets the stream (`CANCEL`).
#[tokio::test]
async fn a_failing_body_fails_the_request_or_resets_its_stream() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = over(client, None).await.unwrap();
    let failing = tonic::body::Body::new(StreamBody::new(futures_util::stream::iter([Err::<
        http_body::Frame<Bytes>,
        _,
    >(
        tonic::Status::internal("encoder broke"),
    )])));
    let error = tower::Service::call(&mut conn.clone(), request(failing))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnError::Request(_)), "{error:?}");
    assert!(!error.not_processed());
    assert!(error.to_string().contains("encoder broke"), "{error}");

    let (tx, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, tonic::Status>>(1);
    let body = tonic::body::Body::new(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let call = tokio::spawn(tower::Service::call(&mut conn.clone(), request(body)));
    let mut wire = Wire::open(server).await;
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"one"))))
        .await
        .unwrap();
    tx.send(Err(tonic::Status::internal("broke midway")))
        .await
        .unwrap();
    let frames = wire.first_stream().await;
    assert_eq!(frames.first().map(|f| f.kind), Some(HEADERS));
    let reset = frames.last().unwrap();
    assert_eq!(reset.kind, RST_STREAM, "{frames:?}");
    assert_eq!(reset.payload, 8u32.to_be_bytes(), "CANCEL");
    call.abort();
}

/// With calls in flight and a peer that answers nothing, the keepalive ends the connection
/// after the interval and the timeout: the call fails at once, and the connection says why.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_fails_the_calls_in_flight_at_the_keepalive_timeout() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = over(client, Some(Duration::from_secs(10))).await.unwrap();
    let body = tonic::body::Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
    let started = tokio::time::Instant::now();
    let error = tower::Service::call(&mut conn.clone(), request(body))
        .await
        .unwrap_err();
    // Sent, perhaps processed: not resent under at-most-once.
    assert!(
        matches!(error, ConnError::Closed | ConnError::MaybeProcessed(_)),
        "{error:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10) + KEEPALIVE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert!(conn.is_closed());
    let why = conn.failure(Duration::from_secs(1)).await.unwrap();
    assert!(why.contains("did not answer a keepalive ping"), "{why}");
    drop(server);
}

/// No pings while idle (grpc-go servers answer them with GOAWAY): an idle connection to a
/// silent peer stays open.
#[tokio::test(start_paused = true)]
async fn an_idle_connection_sends_no_pings() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = over(client, Some(Duration::from_secs(10))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!conn.is_closed());
    // Only the preface and the host's SETTINGS (and its connection WINDOW_UPDATE) were
    // written: no PING.
    let mut written = vec![0; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), server.read(&mut written))
        .await
        .unwrap()
        .unwrap();
    let mut wire = &written[24..n];
    while !wire.is_empty() {
        let len = u32::from_be_bytes([0, wire[0], wire[1], wire[2]]) as usize;
        assert_ne!(wire[3], 0x6, "a PING went out on an idle connection");
        wire = &wire[9 + len..];
    }
}

/// A response body is read to its trailers; the body ends after them.
#[tokio::test]
async fn a_response_body_ends_with_its_trailers() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = over(client, None).await.unwrap();
    let plugin = tokio::spawn(async move {
        let mut connection = h2::server::handshake(server).await.unwrap();
        let (request, mut respond) = connection.accept().await.unwrap().unwrap();
        let served = tokio::spawn(async move { while connection.accept().await.is_some() {} });
        let served = served.abort_handle();
        let mut body = request.into_body();
        while let Some(data) = body.data().await {
            data.unwrap();
        }
        let mut stream = respond
            .send_response(http::Response::new(()), false)
            .unwrap();
        stream
            .send_data(Bytes::from_static(b"reply"), false)
            .unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        stream.send_trailers(trailers).unwrap();
        served
    });
    let body = tonic::body::Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
    let response = tower::Service::call(&mut conn.clone(), request(body))
        .await
        .unwrap();
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(
        collected.trailers().unwrap().get("grpc-status").unwrap(),
        "0"
    );
    assert_eq!(collected.to_bytes(), "reply");
    plugin.await.unwrap().abort();
}

/// A request h2 will not send (HTTP/2, no scheme and authority in its URI) fails as malformed:
/// not "not processed", which the call path would send again until the deadline.
#[tokio::test]
async fn a_request_h2_refuses_is_malformed_not_unsent() {
    let (client, _server) = tokio::io::duplex(64 * 1024);
    let conn = over(client, None).await.unwrap();
    let request = http::Request::post("/proto.Plugin/Call")
        .version(http::Version::HTTP_2)
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from_static(b"abc"),
        )))
        .unwrap();
    let error = tower::Service::call(&mut conn.clone(), request)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnError::Malformed(_)), "{error:?}");
    assert!(!error.not_processed());
}
