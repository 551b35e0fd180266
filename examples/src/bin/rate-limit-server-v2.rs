//! `rate-limit-server-v2`: the companion example. The host launches it; it
//! serves a token-bucket rate limiter through the plugin SDK.
//!
//! Limits come from `--rate`/`--burst` (the config's `args`) or the
//! `RATE_LIMIT_RATE`/`RATE_LIMIT_BURST` environment variables.

use clap::Parser;
use rate_limit::{Limits, RateLimiter};

#[derive(Parser)]
#[command(about = "Polaris companion plugin: token-bucket rate limiter")]
struct Args {
    #[command(flatten)]
    limits: Limits,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    polaris_plugin::sdk::serve(RateLimiter::new(args.limits))
}
