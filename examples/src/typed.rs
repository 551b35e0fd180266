//! The same rate limiter as a typed service, `api.RateLimiter` (`proto/rate_limiter.proto`,
//! compiled by this crate's build.rs): the plugin side of "your own proto".

use std::{sync::Arc, time::Instant};

use tonic::{Request, Response, Status};

use crate::RateLimiter;

/// The generated code of `proto/rate_limiter.proto` (package `api`), and its descriptors.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod api {
    tonic::include_proto!("api");

    /// The encoded `FileDescriptorSet` of `rate_limiter.proto`, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/api_descriptor.bin"));
}

/// `api.RateLimiter` over a [`RateLimiter`].
#[derive(Clone)]
pub struct TypedRateLimiter(pub Arc<RateLimiter>);

#[tonic::async_trait]
impl api::rate_limiter_server::RateLimiter for TypedRateLimiter {
    async fn ping(
        &self,
        _request: Request<api::PingRequest>,
    ) -> Result<Response<api::PongResponse>, Status> {
        Ok(Response::new(api::PongResponse {}))
    }

    async fn allow(
        &self,
        request: Request<api::RateLimitRequest>,
    ) -> Result<Response<api::RateLimitResponse>, Status> {
        let req = request.into_inner();
        let allow = self.0.allow_at(req.r#type, &req.key, Instant::now());
        Ok(Response::new(api::RateLimitResponse { allow }))
    }
}
