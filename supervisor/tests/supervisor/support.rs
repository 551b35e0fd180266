//! Helpers: bounded waits on the state channels, test hooks, /proc readers, and re-running one
//! test alone in a fresh process of this binary.

use std::{
    future::Future,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use supervisor::{
    Backoff, BoxFuture, Exit, HookError, Hooks, Job, Policy, ReadyContext, Spec, State,
};
use tokio::sync::{broadcast, watch};

/// Upper bound for any single wait in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// How a child killed by SIGKILL ended.
pub(crate) const SIGKILL: Exit = Exit::Signaled {
    signal: 9,
    core_dumped: false,
};
/// How a child killed by SIGTERM ended.
pub(crate) const SIGTERM: Exit = Exit::Signaled {
    signal: 15,
    core_dumped: false,
};

pub(crate) fn sh(script: &str) -> Spec {
    Spec::new("sh").args(["-c", script])
}

pub(crate) fn sleeper() -> Spec {
    Spec::new("sleep").args(["1000"])
}

/// A policy with short, exact (jitter-free) backoff.
pub(crate) fn quick_policy() -> Policy {
    Policy {
        backoff: Backoff::new(
            Duration::from_millis(20),
            2.0,
            Duration::from_millis(200),
            0.0,
        )
        .unwrap(),
        ..Policy::default()
    }
}

/// Waits (bounded) until the current state matches.
pub(crate) async fn wait_for(job: &Job, what: &str, pred: impl FnMut(&State) -> bool) -> State {
    let mut rx = job.state();
    match tokio::time::timeout(WAIT, rx.wait_for(pred)).await {
        Ok(Ok(state)) => state.clone(),
        Ok(Err(_)) => panic!("job {} ended while waiting for {what}", job.name()),
        Err(_) => panic!("timed out waiting for {what}; state is {:?}", job.current()),
    }
}

/// Collects transitions (bounded) up to and including the first that matches.
pub(crate) async fn events_until(
    events: &mut broadcast::Receiver<State>,
    what: &str,
    mut pred: impl FnMut(&State) -> bool,
) -> Vec<State> {
    let mut seen = Vec::new();
    let collect = async {
        loop {
            let state = events.recv().await.expect("event stream lagged or closed");
            let done = pred(&state);
            seen.push(state);
            if done {
                break;
            }
        }
    };
    if tokio::time::timeout(WAIT, collect).await.is_err() {
        panic!("timed out waiting for {what}; saw {seen:#?}");
    }
    seen
}

pub(crate) fn is_running(state: &State) -> bool {
    matches!(state, State::Running { .. })
}

/// Variant names, for comparing sequences.
pub(crate) fn kinds(states: &[State]) -> Vec<&'static str> {
    states
        .iter()
        .map(|s| match s {
            State::Starting { .. } => "Starting",
            State::Running { .. } => "Running",
            State::BackingOff { .. } => "BackingOff",
            State::Stopping { .. } => "Stopping",
            State::Stopped => "Stopped",
            State::Disabled => "Disabled",
            State::Failed { .. } => "Failed",
            State::Destroyed => "Destroyed",
            _ => "other",
        })
        .collect()
}

/// How [`TestHooks::ready`] behaves.
#[derive(Debug, Clone, Default)]
pub(crate) enum ReadyMode {
    /// Ok at once.
    #[default]
    Immediate,
    /// Ok after the first stdout line (kept in `first_lines`).
    FirstLine,
    /// Never finishes.
    Hang,
    /// Returns this error.
    Fail(String),
    /// Ok once this stderr line has been seen; never reads stdout.
    AfterStderr(String),
}

/// A run's start (the readiness hook was called) or end (`run_ended`), in the order seen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunEvent {
    Ready {
        run: u64,
        pid: u32,
    },
    Ended {
        run: u64,
        pid: u32,
        exit: Exit,
        /// Whether the pid was already dead when the hook ran.
        gone: bool,
    },
}

/// Asserts `events` are `Ready(1), Ended(1), Ready(2), Ended(2), …` with matching pids and
/// every child dead at its end; returns the exits. A trailing `Ready` (a run still going) is
/// allowed.
pub(crate) fn assert_runs(events: &[RunEvent]) -> Vec<Exit> {
    let mut exits = Vec::new();
    for (i, pair) in events.chunks(2).enumerate() {
        let want = i as u64 + 1;
        let RunEvent::Ready { run, pid } = pair[0] else {
            panic!("event {} is not a start: {events:#?}", 2 * i)
        };
        assert_eq!(run, want, "run ids: {events:#?}");
        let Some(end) = pair.get(1) else { break };
        let RunEvent::Ended {
            run: ended,
            pid: ended_pid,
            exit,
            gone,
        } = end
        else {
            panic!(
                "run {run} started before run {} ended: {events:#?}",
                run - 1
            )
        };
        assert_eq!((*ended, *ended_pid), (run, pid), "{events:#?}");
        assert!(gone, "run {run}'s child was alive in run_ended");
        exits.push(exit.clone());
    }
    exits
}

/// Hooks that record what they see.
pub(crate) struct TestHooks {
    pub(crate) runs: watch::Sender<Vec<RunEvent>>,
    pub(crate) mode: ReadyMode,
    pub(crate) pids: Mutex<Vec<u32>>,
    pub(crate) first_lines: Mutex<Vec<String>>,
    pub(crate) stdout: watch::Sender<Vec<String>>,
    pub(crate) stderr: watch::Sender<Vec<String>>,
    pub(crate) healthy: AtomicBool,
    pub(crate) probe_hangs: AtomicBool,
    pub(crate) probes: watch::Sender<u32>,
    pub(crate) pre_stops: AtomicU32,
}

impl TestHooks {
    pub(crate) fn new(mode: ReadyMode) -> Arc<Self> {
        Arc::new(Self {
            runs: watch::channel(Vec::new()).0,
            mode,
            pids: Mutex::new(Vec::new()),
            first_lines: Mutex::new(Vec::new()),
            stdout: watch::channel(Vec::new()).0,
            stderr: watch::channel(Vec::new()).0,
            healthy: AtomicBool::new(true),
            probe_hangs: AtomicBool::new(false),
            probes: watch::channel(0).0,
            pre_stops: AtomicU32::new(0),
        })
    }

    pub(crate) fn run_events(&self) -> Vec<RunEvent> {
        self.runs.borrow().clone()
    }

    /// Waits (bounded) until `n` runs have ended.
    pub(crate) async fn wait_ended(&self, n: usize) -> Vec<RunEvent> {
        let ended = |events: &Vec<RunEvent>| {
            events
                .iter()
                .filter(|e| matches!(e, RunEvent::Ended { .. }))
                .count()
        };
        let mut rx = self.runs.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|events| ended(events) >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {n} ended runs: {:#?}",
                    self.run_events()
                )
            })
            .expect("hooks dropped")
            .clone()
    }

    /// Waits (bounded) until the first run has reached the readiness hook.
    pub(crate) async fn wait_first_run(&self) {
        let mut rx = self.runs.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|events| !events.is_empty()))
            .await
            .expect("timed out waiting for the first run")
            .expect("hooks dropped");
    }

    pub(crate) fn probe_count(&self) -> u32 {
        *self.probes.borrow()
    }

    /// Waits (bounded) until at least `n` probes have been made.
    pub(crate) async fn wait_probes(&self, n: u32) {
        let mut rx = self.probes.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|&count| count >= n))
            .await
            .expect("timed out waiting for probes")
            .expect("hooks dropped");
    }

    /// Waits (bounded) until a stdout line passed to the hook matches.
    pub(crate) async fn wait_stdout(&self, pred: impl Fn(&str) -> bool) {
        let mut rx = self.stdout.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|lines| lines.iter().any(|l| pred(l))))
            .await
            .expect("timed out waiting for a stdout line")
            .expect("hooks dropped");
    }
}

impl Hooks for TestHooks {
    fn ready<'a>(&'a self, ctx: ReadyContext<'a>) -> BoxFuture<'a, Result<(), HookError>> {
        self.pids.lock().push(ctx.pid);
        let (run, pid) = (ctx.run, ctx.pid);
        self.runs
            .send_modify(|events| events.push(RunEvent::Ready { run, pid }));
        Box::pin(async move {
            match &self.mode {
                ReadyMode::Immediate => Ok(()),
                ReadyMode::FirstLine => match ctx.stdout.recv().await {
                    Some(line) => {
                        self.first_lines.lock().push(line);
                        Ok(())
                    }
                    None => Err(HookError::msg("stdout closed before the first line")),
                },
                ReadyMode::Hang => std::future::pending().await,
                ReadyMode::Fail(message) => Err(HookError::msg(message)),
                ReadyMode::AfterStderr(wanted) => {
                    let mut rx = self.stderr.subscribe();
                    let _ = rx.wait_for(|lines| lines.iter().any(|l| l == wanted)).await;
                    Ok(())
                }
            }
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), HookError>> {
        self.probes.send_modify(|n| *n += 1);
        Box::pin(async move {
            if self.probe_hangs.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if self.healthy.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(HookError::msg("unhealthy"))
            }
        })
    }

    fn pre_stop(&self) -> BoxFuture<'_, ()> {
        self.pre_stops.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn run_ended(&self, run: u64, pid: u32, exit: &Exit) {
        let gone = is_gone(pid);
        self.runs.send_modify(|events| {
            events.push(RunEvent::Ended {
                run,
                pid,
                exit: exit.clone(),
                gone,
            })
        });
    }

    fn stderr_line(&self, line: &str) {
        self.stderr.send_modify(|lines| lines.push(line.to_owned()));
    }

    fn stdout_line(&self, line: &str) {
        self.stdout.send_modify(|lines| lines.push(line.to_owned()));
    }
}

// ---- /proc ----

/// State letter and ppid of `pid`, from /proc/PID/stat; `None` if it does not exist.
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is dead: gone, or a zombie (reparented children may wait for PID 1 to reap).
pub(crate) fn is_gone(pid: u32) -> bool {
    !matches!(proc_stat(pid), Some((state, _)) if state != 'Z')
}

/// Polls (bounded) until `pid` is dead. A process exit has no event to wait on here.
pub(crate) fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if is_gone(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Async variant of [`wait_gone`], yielding to the runtime between polls.
pub(crate) async fn wait_gone_async(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if is_gone(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Our children that are zombies.
pub(crate) fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid) == Some(('Z', me)))
        .collect()
}

pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's user + system CPU time (/proc reports it in USER_HZ = 100 ticks/s).
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm field: state is field 3, utime 14, stime 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// A /proc/PID/status field.
pub(crate) fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Parses a CPU list like `0-2,5`.
pub(crate) fn parse_cpu_list(list: &str) -> Vec<usize> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

pub(crate) fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

// ---- running one test alone in a fresh process ----

const ROLE: &str = "SUPERVISOR_TEST_ROLE";

/// The role this process was re-executed for, if any.
pub(crate) fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Starts this test binary running only `test` (full path), with the role set.
pub(crate) fn reexec(test: &str, role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// For tests that measure the whole process (CPU time, fds, zombies): returns `true` inside the
/// re-executed process, where the body should run; otherwise runs the test there, asserts that
/// it passed, and returns `false`.
pub(crate) fn isolated(test: &str) -> bool {
    if role().as_deref() == Some("isolated") {
        return true;
    }
    let child = reexec(test, "isolated");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "isolated run of {test} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    print!("{stdout}");
    false
}

/// Reads `child`'s stdout until a line containing `marker`; returns what follows it.
pub(crate) fn read_marker(child: &mut Child, marker: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest may print "test name ... " on the same line first.
        if let Some((_, value)) = line.split_once(marker) {
            return value.trim().to_owned();
        }
    }
    panic!("child's stdout ended without a `{marker}` line");
}

/// Runs a future on a fresh current-thread runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Waits (bounded by [`WAIT`]) until `cond` holds, for conditions with no event to wait on
/// (a file another process writes).
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The whole first line of a file another process writes, once it is there.
pub(crate) async fn first_line(path: &std::path::Path) -> String {
    eventually(|| std::fs::read_to_string(path).is_ok_and(|t| t.ends_with('\n'))).await;
    std::fs::read_to_string(path).unwrap().trim_end().to_owned()
}
