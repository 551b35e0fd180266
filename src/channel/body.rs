//! The body of a response through a [`PluginChannel`](super::PluginChannel): the plugin's,
//! holding its call's admission slot and deadline until it ends, and counting the call's
//! outcome then; or a fallback reply.

use std::{
    future::Future as _,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::{Code, Status};

use crate::{
    Error,
    call::{admission::OwnedSlot, grpc, request::Whole},
    conn::GuardedBody,
    error::TransportError,
    plugin::Shared,
};

/// A response body from a [`PluginChannel`](super::PluginChannel).
#[derive(Debug)]
pub struct ChannelBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Plugin(Streamed),
    Whole(Whole),
}

/// The plugin's body while the call is open.
#[derive(Debug)]
struct Streamed {
    /// `None` once the deadline passed (dropping it resets the stream).
    body: Option<GuardedBody>,
    /// Armed the first time the body has to wait: a body that is all there (most
    /// unary replies) never starts a timer.
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    timeout: Duration,
    open: Option<Open>,
}

/// What the call holds until its body ends: the admission slot and what is counted then.
#[derive(Debug)]
struct Open {
    shared: Arc<Shared>,
    _slot: OwnedSlot,
    started: std::time::Instant,
}

impl ChannelBody {
    pub(crate) fn plugin(
        body: GuardedBody,
        shared: Arc<Shared>,
        slot: OwnedSlot,
        started: std::time::Instant,
        deadline: Instant,
        timeout: Duration,
    ) -> Self {
        ChannelBody {
            kind: Kind::Plugin(Streamed {
                body: Some(body),
                timer: None,
                deadline,
                timeout,
                open: Some(Open {
                    shared,
                    _slot: slot,
                    started,
                }),
            }),
        }
    }

    pub(crate) fn whole(data: Bytes, trailers: HeaderMap) -> Self {
        ChannelBody {
            kind: Kind::Whole(Whole::new(data, Some(trailers))),
        }
    }

    /// A trailers-only response (its status in its head: no message follows) ends the
    /// call now; a client reads no further.
    pub(crate) fn with_head(mut self, head: &http::HeaderMap) -> Self {
        if let Kind::Plugin(streamed) = &mut self.kind
            && let Some(code) = grpc::code(head)
        {
            streamed.close(Ok(code));
        }
        self
    }
}

impl Streamed {
    /// Ends the call: counts `outcome` (`Ok(code)` for the plugin's status), records the
    /// latency, gives the slot back. Once.
    fn close(&mut self, outcome: Result<Code, &Error>) {
        let Some(open) = self.open.take() else { return };
        open.shared.latency.record(open.started.elapsed());
        match outcome {
            Ok(Code::Ok) => open.shared.counters.ok(),
            Ok(_) => open.shared.counters.plugin_error(),
            Err(error) => open.shared.counters.failed(error),
        }
    }

    fn plugin_name(&self) -> String {
        self.open
            .as_ref()
            .map(|o| o.shared.name.clone())
            .unwrap_or_default()
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let s = match &mut self.kind {
            Kind::Whole(whole) => return Pin::new(whole).poll_frame(cx),
            Kind::Plugin(streamed) => streamed,
        };
        let Some(body) = &mut s.body else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    s.close(Ok(grpc::code(trailers).unwrap_or(Code::Internal)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                // Ended without trailers: a trailers-only answer was counted at its head
                // (closing again does nothing); anything else broke the protocol.
                s.close(Ok(Code::Internal));
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let error = Error::Transport {
                    plugin: s.plugin_name(),
                    attempts: 1,
                    delivery: crate::config::Delivery::AtMostOnce,
                    last_exit: None,
                    source: TransportError::of(e),
                };
                s.close(Err(&error));
                s.body = None;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Pending => {
                let deadline = s.deadline;
                let timer = s
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let error = Error::Timeout {
                    plugin: s.plugin_name(),
                    timeout: s.timeout,
                };
                s.close(Err(&error));
                // Dropping the plugin's body resets its stream: the plugin is told.
                s.body = None;
                Poll::Ready(Some(Err(error.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Whole(whole) => whole.is_end_stream(),
            // Open until polled to its end, where the call is counted.
            Kind::Plugin(s) => {
                s.open.is_none() && s.body.as_ref().is_none_or(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Whole(whole) => whole.size_hint(),
            Kind::Plugin(s) => s
                .body
                .as_ref()
                .map_or(SizeHint::with_exact(0), |b| b.size_hint()),
        }
    }
}
