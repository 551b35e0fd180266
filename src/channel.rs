//! [`PluginChannel`]: any gRPC service of a plugin, under the call contract.
//!
//! A generated tonic client works on it (`RateLimiterClient::new(plugin.channel())`):
//! each request goes through the same [`exchange`](crate::plugin::Shared::exchange) as
//! [`PluginHandle::call`](crate::PluginHandle::call) — admission within the plugin's
//! bounds, waiting while it (re)starts, the deadline (the caller's `grpc-timeout` when it
//! is shorter than `call-timeout`) sent along and enforced, a request that provably never
//! reached the plugin sent again, the call counted and timed. The response comes back as
//! soon as its head does; its body streams, holding the call's admission slot until it
//! ends, and fails with `DEADLINE_EXCEEDED` if the deadline passes first.

mod body;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::HeaderValue;
use tokio::time::Instant;
use tonic::{Status, body::Body};

pub use self::body::ChannelBody;
use crate::{
    Error,
    call::{grpc, request::Outgoing},
    conn::origin,
    plugin::Shared,
    proto::polaris::Response,
};

/// The path of `proto.Plugin/Call`, the one method a configured `fallback` answers.
const CALL_PATH: &str = "/proto.Plugin/Call";

/// The trailer that says a reply is the configured fallback, and why the plugin did not
/// answer.
pub const FALLBACK_TRAILER: &str = "polaris-plugin-fallback";

/// A gRPC channel to one plugin, for any of its services: cheap to clone, and every
/// clone is the same plugin (it keeps the plugin's handle alive). See the
/// [module docs](self) for what a request through it obeys.
///
/// A failure in the host (the plugin not ready in time, overloaded, its connection lost)
/// reaches the client as a [`Status`] made by `From<Error> for Status`, with the
/// [`Error`] as its source. With a `fallback` configured, a `proto.Plugin/Call` that fails
/// that way is answered by the fallback, its trailers carrying
/// [`FALLBACK_TRAILER`].
///
/// A request whose body the client is still writing (client or bidirectional streaming)
/// is sent again only if no attempt read from it; a response is returned once its head
/// arrives, so a connection that fails while a response body streams fails that call,
/// whatever the plugin's `retry` (use [`PluginHandle::call`](crate::PluginHandle::call)
/// for `proto.Plugin/Call` to have `at-least-once` cover that too).
#[derive(Debug, Clone)]
pub struct PluginChannel {
    shared: Arc<Shared>,
}

impl PluginChannel {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        PluginChannel { shared }
    }
}

impl tower::Service<http::Request<Body>> for PluginChannel {
    type Response = http::Response<ChannelBody>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Status>> + Send>>;

    /// Always ready: the plugin's bounds apply per call, in `call` (a request beyond
    /// them fails with `RESOURCE_EXHAUSTED` rather than waiting here).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    /// A `plugin_call` span (plugin, method) at DEBUG covers the request until its
    /// response head.
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        let span = tracing::debug_span!("plugin_call", plugin = %shared.name, method = %request.uri().path());
        if span.is_disabled() {
            Box::pin(shared.channel_call(request))
        } else {
            Box::pin(tracing::Instrument::instrument(
                shared.channel_call(request),
                span,
            ))
        }
    }
}

impl Shared {
    async fn channel_call(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<ChannelBody>, Status> {
        let started = std::time::Instant::now();
        let asked = request
            .headers()
            .get(grpc::TIMEOUT)
            .and_then(|v| grpc::parse_timeout(v.as_bytes()));
        let (configured, delivery) = {
            let s = self.snapshot.borrow();
            (s.settings.timeout, s.settings.policy.delivery)
        };
        let timeout = asked.map_or(configured, |asked| asked.min(configured));
        let deadline = supervisor::deadline(Instant::now(), timeout);
        let outgoing = Outgoing::new(request, &origin())?;
        // The head only: the body streams to the caller.
        let head = |response| std::future::ready(Ok(response));
        let result = self
            .exchange(&outgoing, timeout, deadline, delivery, head)
            .await;
        let error = match result {
            Ok((response, slot)) => {
                let slot = slot.detach(&self.admission);
                let (head, body) = response.into_parts();
                let body =
                    ChannelBody::plugin(body, self.clone(), slot, started, deadline, timeout)
                        .with_head(&head.headers);
                return Ok(http::Response::from_parts(head, body));
            }
            Err(error) => error,
        };
        self.latency.record(started.elapsed());
        self.counters.failed(&error);
        if error.allows_fallback()
            && outgoing.path() == CALL_PATH
            && let Some(fallback) = self.fallback()
        {
            tracing::debug!(plugin = %self.name, cause = %error, "answering with the fallback");
            self.counters.fallback();
            return Ok(fallback_response(&fallback, &error));
        }
        Err(error.into())
    }
}

/// A `proto.Plugin/Call` reply carrying `fallback`, its trailers saying why.
fn fallback_response(fallback: &Response, cause: &Error) -> http::Response<ChannelBody> {
    let mut trailers = http::HeaderMap::with_capacity(2);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert(FALLBACK_TRAILER, header_text(&cause.to_string()));
    let mut response = http::Response::new(ChannelBody::whole(grpc::frame(fallback), trailers));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// `text` as a header value: visible ASCII kept, anything else as `?`, at most 1 KiB.
fn header_text(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .take(1024)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("fallback"))
}

#[cfg(test)]
mod tests;
