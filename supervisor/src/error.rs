//! Errors: bad input is reported here, never by a panic.

use std::{ffi::OsString, time::Duration};

use nix::errno::Errno;

/// Why a job could not be created ([`Job::try_spawn`](crate::Job::try_spawn)).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`Spec`](crate::Spec) is invalid.
    #[error("job `{job}`: invalid spec: {source}")]
    InvalidSpec {
        /// The job's name.
        job: String,
        /// What is wrong.
        #[source]
        source: SpecError,
    },
    /// The [`Policy`](crate::Policy) is invalid.
    #[error("job `{job}`: invalid policy: {source}")]
    InvalidPolicy {
        /// The job's name.
        job: String,
        /// What is wrong.
        #[source]
        source: PolicyError,
    },
    /// `Job::spawn` was called outside a tokio runtime.
    #[error("job `{job}`: must be spawned from within a tokio runtime")]
    NoRuntime {
        /// The job's name.
        job: String,
    },
}

/// What is wrong with a [`Spec`](crate::Spec).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// `program` is empty.
    #[error("`program` is empty; give a path or a name to look up in PATH")]
    EmptyProgram,
    /// A string passed to the OS contains a NUL byte.
    #[error("{what} contains a NUL byte: {value:?}")]
    NulByte {
        /// Which field (`program`, `args[2]`, `env.set[0]` …).
        what: String,
        /// The offending value.
        value: OsString,
    },
    /// An environment variable name is empty or contains `=`.
    #[error("environment variable name {name:?} in `env.set` is empty or contains `=`")]
    EnvName {
        /// The offending name.
        name: OsString,
    },
    /// `max_line_len` is zero.
    #[error("`max_line_len` must be at least 1 byte")]
    ZeroMaxLineLen,
    /// `cpu` is `Cpus(vec![])`.
    #[error("`cpu` lists no CPUs; list at least one of the allowed CPUs {allowed:?}")]
    EmptyCpuList {
        /// The CPUs this process may use.
        allowed: Vec<usize>,
    },
    /// `cpu` lists a CPU outside the host's allowed set.
    #[error("`cpu` lists CPU {cpu}, which this process may not use; allowed CPUs: {allowed:?}")]
    CpuNotAllowed {
        /// The offending CPU.
        cpu: usize,
        /// The CPUs this process may use.
        allowed: Vec<usize>,
    },
    /// The host's own CPU affinity could not be read.
    #[error("cannot read this process's CPU affinity: {0}")]
    Affinity(#[source] Errno),
}

/// What is wrong with a [`Policy`](crate::Policy).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `start_timeout` is zero.
    #[error("`start_timeout` must be greater than zero")]
    ZeroStartTimeout,
    /// A liveness duration is zero.
    #[error("`liveness.{field}` must be greater than zero")]
    ZeroLivenessDuration {
        /// `interval` or `timeout`.
        field: &'static str,
    },
    /// `liveness.failure_threshold` is zero.
    #[error("`liveness.failure_threshold` must be at least 1")]
    ZeroFailureThreshold,
    /// `intensity.window` is zero.
    #[error("`intensity.window` must be greater than zero")]
    ZeroIntensityWindow,
}

/// Why [`Backoff::new`](crate::Backoff::new) rejected its parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// `initial` is zero.
    #[error("backoff `initial` must be greater than zero")]
    ZeroInitial,
    /// `initial` is above `max`.
    #[error("backoff `initial` ({initial:?}) is above `max` ({max:?})")]
    InitialAboveMax {
        /// The given initial delay.
        initial: Duration,
        /// The given cap.
        max: Duration,
    },
    /// `factor` is below 1 or not finite.
    #[error("backoff `factor` must be a finite number >= 1, got {0}")]
    Factor(f64),
    /// `jitter` is outside `[0, 1)`.
    #[error("backoff `jitter` must be in [0, 1), got {0}")]
    Jitter(f64),
}
