//! Counters and figures about a job, readable from any handle.

use std::{
    collections::VecDeque,
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::state::Exit;

/// A snapshot of a job's counters ([`Job::stats`](crate::Job::stats)).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Children spawned (successfully or not).
    pub starts: u64,
    /// Automatic restarts after an exit (explicit restarts not included).
    pub restarts: u64,
    /// The current child's pid, while one exists.
    pub pid: Option<u32>,
    /// When the current child was spawned (wall clock).
    pub started_at: Option<SystemTime>,
    /// How the last run ended.
    pub last_exit: Option<Exit>,
    /// The last stderr lines (at most [`Policy::stderr_tail`](crate::Policy::stderr_tail)),
    /// across runs.
    pub stderr_tail: Vec<String>,
    /// The CPUs the child is pinned to, when the spec has a CPU limit.
    pub cpus: Option<Vec<usize>>,
    /// Stdout lines dropped because the readiness hook did not read them fast enough.
    pub stdout_dropped: u64,
    /// Output pieces emitted because a line was longer than `max_line_len`.
    pub lines_split: u64,
}

/// Resource figures for the running child's pid (not its descendants), from `sysinfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    /// The pid measured.
    pub pid: u32,
    /// CPU use since the previous call, in percent of one CPU; `None` on the first call for this
    /// pid (a rate needs two samples at least 200 ms apart; closer calls return the previous
    /// rate).
    pub cpu_percent: Option<f32>,
    /// Total CPU time used so far.
    pub cpu_time: Duration,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
}

/// State shared by the owner task, the output readers and the handles. Locks are held only for a
/// few field updates, never across an `.await`.
#[derive(Debug)]
pub(crate) struct Shared {
    stats: Mutex<Stats>,
    tail: Mutex<VecDeque<String>>,
    tail_len: usize,
    sampler: Mutex<Sampler>,
}

impl Shared {
    pub(crate) fn new(tail_len: usize, cpus: Option<Vec<usize>>) -> Self {
        Self {
            stats: Mutex::new(Stats {
                cpus,
                ..Stats::default()
            }),
            tail: Mutex::new(VecDeque::with_capacity(tail_len)),
            tail_len,
            sampler: Mutex::new(Sampler::default()),
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = self.stats.lock().clone();
        stats.stderr_tail = self.stderr_tail();
        stats
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock());
    }

    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        self.tail.lock().iter().cloned().collect()
    }

    pub(crate) fn push_stderr(&self, line: String) {
        if self.tail_len == 0 {
            return;
        }
        let mut tail = self.tail.lock();
        if tail.len() == self.tail_len {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// Counts a dropped stdout line; returns the new total.
    pub(crate) fn count_stdout_dropped(&self) -> u64 {
        let mut stats = self.stats.lock();
        stats.stdout_dropped += 1;
        stats.stdout_dropped
    }

    pub(crate) fn count_split(&self) {
        self.stats.lock().lines_split += 1;
    }

    pub(crate) fn resources(&self) -> Option<Resources> {
        let pid = self.stats.lock().pid?;
        self.sampler.lock().sample(pid)
    }
}

/// A `sysinfo::System` kept between calls, and the previous sample, so CPU % can be a rate.
///
/// The rate is computed here from the accumulated CPU time rather than taken from sysinfo's
/// `cpu_usage`, which stays 0 when the first sample saw no CPU time yet (a fresh child).
#[derive(Debug, Default)]
struct Sampler {
    system: Option<System>,
    last: Option<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    pid: u32,
    at: Instant,
    cpu_time: Duration,
    rate: Option<f32>,
}

impl Sampler {
    fn sample(&mut self, pid: u32) -> Option<Resources> {
        if self.system.is_none() {
            self.system = System::new().ok();
        }
        let system = self.system.as_mut()?;
        let spid = Pid::from_u32(pid);
        let kind = ProcessRefreshKind::nothing().with_memory().with_cpu();
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[spid]), true, kind);
        let process = system.process(spid)?;
        let now = Instant::now();
        let cpu_time = Duration::from_millis(process.accumulated_cpu_time());
        let cpu_percent = match self.last {
            Some(last) if last.pid == pid => {
                let wall = now.duration_since(last.at);
                if wall >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
                    let used = cpu_time.saturating_sub(last.cpu_time);
                    let rate = (used.as_secs_f64() / wall.as_secs_f64() * 100.0) as f32;
                    self.last = Some(Sample {
                        pid,
                        at: now,
                        cpu_time,
                        rate: Some(rate),
                    });
                    Some(rate)
                } else {
                    last.rate
                }
            }
            _ => {
                self.last = Some(Sample {
                    pid,
                    at: now,
                    cpu_time,
                    rate: None,
                });
                None
            }
        };
        Some(Resources {
            pid,
            cpu_percent,
            cpu_time,
            rss_bytes: process.memory(),
            virtual_bytes: process.virtual_memory(),
        })
    }
}
