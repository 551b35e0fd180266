//! Calls by outcome: written by the calls themselves (plain counters, not
//! plugin state), read by `status()`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::{Error, status::CallCounts};

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
    pub(crate) fn record<T>(&self, result: &Result<T, Error>) {
        match result {
            Ok(_) => self.ok(),
            Err(e) => self.failed(e),
        }
    }

    /// A call the plugin answered with OK.
    pub(crate) fn ok(&self) {
        self.ok.fetch_add(1, Relaxed);
    }

    /// A call the plugin answered with an error status.
    pub(crate) fn plugin_error(&self) {
        self.error.fetch_add(1, Relaxed);
    }

    /// A call that failed with `error` (a plugin's own error status included).
    pub(crate) fn failed(&self, error: &Error) {
        let counter = match error {
            Error::Timeout { .. } => &self.timeout,
            Error::Overloaded { .. } => &self.overloaded,
            _ => &self.error,
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
