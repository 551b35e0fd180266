//! `rate-limit-typed`: the companion example with its own proto. It serves the typed
//! `api.RateLimiter` service (`examples/proto/rate_limiter.proto`) instead of
//! `proto.Plugin`, and describes it through gRPC reflection; the host calls it with
//! `PluginHandle::channel()` and a generated client, or `polaris-plugin call NAME
//! api.RateLimiter/Allow --json '{...}'`.

use std::sync::Arc;

use clap::Parser;
use polaris_plugin::sdk;
use rate_limit::{
    Limits, RateLimiter,
    typed::{TypedRateLimiter, api},
};

#[derive(Parser)]
#[command(about = "Polaris companion plugin: token-bucket rate limiter as api.RateLimiter")]
struct Args {
    #[command(flatten)]
    limits: Limits,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let limiter = TypedRateLimiter(Arc::new(RateLimiter::new(args.limits)));
    sdk::Server::typed()
        .service(api::rate_limiter_server::RateLimiterServer::new(limiter))
        .descriptors(api::FILE_DESCRIPTOR_SET)
        .serve()
}
