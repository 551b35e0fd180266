//! What to run: [`Spec`], its environment and its CPU limit.

use std::{
    ffi::{OsStr, OsString},
    num::NonZeroUsize,
    os::unix::ffi::OsStrExt,
    path::PathBuf,
};

use crate::error::SpecError;

/// Default for [`Spec::max_line_len`]: 64 KiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;

/// What to run. Plain data with a [`Default`]; checked once when the job is created.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Arguments, without the program name.
    pub args: Vec<OsString>,
    /// Working directory; `None` keeps the host's.
    pub cwd: Option<PathBuf>,
    /// The child's environment.
    pub env: Env,
    /// CPU placement; `None` leaves the child on the host's CPUs.
    pub cpu: Option<CpuLimit>,
    /// Longest stdout/stderr line passed on, in bytes; longer lines are split into pieces of at
    /// most this length. Bounds the memory a child's output can take.
    pub max_line_len: usize,
    /// Resource limits set in the child before it runs (`setrlimit`, soft and hard).
    pub limits: Limits,
}

/// Resource limits for the child; `None` leaves the host's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `RLIMIT_AS`: the address space, in bytes. Allocations past it fail (the program
    /// usually aborts); note that runtimes reserve address space beyond what they use.
    pub address_space: Option<u64>,
    /// `RLIMIT_NOFILE`: open files.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC`: processes and threads of the child's user (counted across the user,
    /// not only this child).
    pub processes: Option<u64>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            program: PathBuf::new(),
            args: Vec::new(),
            cwd: None,
            env: Env::default(),
            cpu: None,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            limits: Limits::default(),
        }
    }
}

impl Spec {
    /// A spec running `program` with default settings.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    /// Adds arguments (builder style).
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Checks everything that can be checked before spawning, except the CPU list (checked
    /// against the host's allowed set when the job is created).
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.program.as_os_str().is_empty() {
            return Err(SpecError::EmptyProgram);
        }
        no_nul("program", self.program.as_os_str())?;
        for (i, arg) in self.args.iter().enumerate() {
            no_nul(&format!("args[{i}]"), arg)?;
        }
        if let Some(cwd) = &self.cwd {
            no_nul("cwd", cwd.as_os_str())?;
        }
        for (i, (name, value)) in self.env.set.iter().enumerate() {
            if name.is_empty() || name.as_bytes().contains(&b'=') {
                return Err(SpecError::EnvName { name: name.clone() });
            }
            no_nul(&format!("env.set[{i}] name"), name)?;
            no_nul(&format!("env.set[{i}] value"), value)?;
        }
        if self.max_line_len == 0 {
            return Err(SpecError::ZeroMaxLineLen);
        }
        Ok(())
    }
}

fn no_nul(what: &str, value: &OsStr) -> Result<(), SpecError> {
    if value.as_bytes().contains(&0) {
        return Err(SpecError::NulByte {
            what: what.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// The child's environment: start from the host's (`inherit`) or from nothing, remove what
/// `remove` matches, then apply `set` (which wins over everything, including `GOMAXPROCS`).
#[derive(Debug, Clone, PartialEq)]
pub struct Env {
    /// Start from the host's environment (`true`, the default) or an empty one.
    pub inherit: bool,
    /// Inherited variables to drop.
    pub remove: Vec<EnvFilter>,
    /// Variables to set, in order.
    pub set: Vec<(OsString, OsString)>,
}

impl Default for Env {
    fn default() -> Self {
        Self {
            inherit: true,
            remove: Vec::new(),
            set: Vec::new(),
        }
    }
}

/// Matches inherited environment variable names, for [`Env::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFilter {
    /// This exact name.
    Exact(OsString),
    /// Every name starting with this prefix, such as `PLUGIN_`.
    Prefix(OsString),
}

impl EnvFilter {
    /// Whether `name` is matched.
    pub fn matches(&self, name: &OsStr) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Prefix(prefix) => name.as_bytes().starts_with(prefix.as_bytes()),
        }
    }
}

/// CPU placement for the child, applied with `sched_setaffinity` before the program runs (so all
/// its threads inherit it), plus `GOMAXPROCS` set to the number of CPUs. This is placement, not a
/// quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuLimit {
    /// N CPUs out of the host's allowed set. Consecutive jobs get different CPUs (a process-wide
    /// rotating offset); N above the allowed count is clamped with a warning.
    MaxProcs(NonZeroUsize),
    /// Exactly these CPUs; each must be in the host's allowed set.
    Cpus(Vec<usize>),
}
