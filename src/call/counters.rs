//! Calls by outcome: written by the calls themselves (plain counters, not
//! plugin state), read by `status()`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::{Error, proto::polaris::Response, status::CallCounts};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    ok: AtomicU64,
    error: AtomicU64,
    timeout: AtomicU64,
    overloaded: AtomicU64,
    fallback: AtomicU64,
}

impl Counters {
    /// Counts a call's own outcome (before any fallback).
    pub(crate) fn record(&self, result: &Result<Response, Error>) {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(Error::Timeout { .. }) => &self.timeout,
            Err(Error::Overloaded { .. }) => &self.overloaded,
            Err(_) => &self.error,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn fallback(&self) {
        self.fallback.fetch_add(1, Relaxed);
    }

    pub(crate) fn get(&self) -> CallCounts {
        CallCounts {
            ok: self.ok.load(Relaxed),
            error: self.error.load(Relaxed),
            timeout: self.timeout.load(Relaxed),
            overloaded: self.overloaded.load(Relaxed),
            fallback: self.fallback.load(Relaxed),
        }
    }
}
