//! The rate limiter behind the example plugins: a token bucket per
//! (limit type, key), served as a Polaris plugin.

pub mod typed;

use std::{collections::HashMap, time::Instant};

use parking_lot::Mutex;
use polaris_plugin::{
    codec,
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, Request, Response},
    sdk::Call,
};

/// Token-bucket settings: `rate` tokens per second refill a bucket of
/// `burst` tokens; each call takes one.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct Limits {
    /// Tokens added per second to each bucket.
    #[arg(long, env = "RATE_LIMIT_RATE", default_value_t = 1000.0)]
    pub rate: f64,
    /// Bucket capacity (the largest burst allowed at once).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 1000.0)]
    pub burst: f64,
}

/// At most this many buckets are kept; beyond it, full (idle) buckets are dropped.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per `(RatelimitType, key)`.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    buckets: Mutex<HashMap<(i32, String), Bucket>>,
}

impl RateLimiter {
    /// A limiter with empty (full) buckets.
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from the bucket of `(kind, key)` at time `now`; true if there was one.
    pub fn allow_at(&self, kind: i32, key: &str, now: Instant) -> bool {
        let Limits { rate, burst } = self.limits;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&(kind, key.to_owned())) {
            buckets.retain(|_, b| {
                b.tokens + rate * now.saturating_duration_since(b.last).as_secs_f64() < burst
            });
        }
        let bucket = buckets.entry((kind, key.to_owned())).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Call for RateLimiter {
    async fn call(&self, request: Request) -> Result<Response, tonic::Status> {
        let req: RateLimitPluginRequest = codec::unmarshal_request(&request)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let allow = self.allow_at(req.r#type, &req.key, Instant::now());
        tracing::trace!(kind = req.r#type, key = %req.key, allow, "rate-limit check");
        Ok(codec::marshal_response(&RateLimitPluginResponse { allow }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_limits_and_refills_per_key() {
        let rl = RateLimiter::new(Limits {
            rate: 2.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        assert!((0..3).all(|_| rl.allow_at(0, "a", t0)));
        assert!(!rl.allow_at(0, "a", t0), "burst exhausted");
        // Other keys and other types have their own buckets.
        assert!(rl.allow_at(0, "b", t0));
        assert!(rl.allow_at(1, "a", t0));
        // Half a second at 2/s refills one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(rl.allow_at(0, "a", t1));
        assert!(!rl.allow_at(0, "a", t1));
        // Refill is capped at the burst size.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| rl.allow_at(0, "a", t2)).count(), 3);
    }
}
