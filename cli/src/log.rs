//! The command line's own log output, which must never block the host.
//!
//! Events are formatted on the thread that logs them and handed to one writer
//! thread through a bounded, lossy queue (`tracing-appender`'s non-blocking
//! writer). If stderr stops taking lines (a full pipe nobody reads), only that
//! thread blocks; the queue fills and further lines are dropped and counted. A
//! plugin's stderr is forwarded here line by line from the supervisor's reader
//! task, so a blocking writer would also stop the reader, then the plugin, and
//! (on the CLI's single-threaded runtime) signal handling with them.
//!
//! Drops are reported in the stream, where the gap is: before the next line it
//! writes, the writer thread writes `polaris-plugin: N log lines dropped
//! (stderr was not being read)`. At exit, [`Logging::finish`] gives stderr a
//! bounded time to take what is queued, then leaves.
//!
//! The format is text (coloured only when stderr is a terminal and `NO_COLOR`
//! is unset or empty) or one JSON object per line. The filter is `RUST_LOG`;
//! without it, `info` for the long-running `run` and `warn` for one-shot
//! commands, whose output is their result, not the host's progress.

use std::{
    ffi::OsStr,
    fmt,
    io::{self, IsTerminal, Write},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter, Layer as _, fmt::MakeWriter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

/// Lines the queue holds before dropping. Host lines are a few hundred bytes;
/// a plugin's line is cut at the supervisor's `max_line_len`.
const QUEUE_LINES: usize = 1024;

/// How long [`Logging::finish`] waits for stderr to take the queued lines.
const FLUSH_BUDGET: Duration = Duration::from_secs(1);

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// `time LEVEL target: message field=value …`, for people.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`,
    /// `span`), for log shippers.
    Json,
}

/// The filter when `RUST_LOG` is unset (or invalid): `info` for a
/// long-running host, `warn` for a one-shot command.
fn default_filter(long_running: bool) -> &'static str {
    if long_running { "info" } else { "warn" }
}

/// Colour only for a person at a terminal who has not opted out (no-color.org:
/// `NO_COLOR` set to anything but the empty string).
fn colour(format: Format, terminal: bool, no_color: Option<&OsStr>) -> bool {
    format == Format::Text && terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The CLI's log output; call [`Logging::finish`] before exiting.
pub(crate) struct Logging {
    writer: Writer,
    dropped: ErrorCounter,
    written: Arc<Written>,
    guard: WorkerGuard,
}

impl Logging {
    /// Installs the global `tracing` subscriber writing to stderr in `format`
    /// (filter from `RUST_LOG`, default `info` when `long_running`, else `warn`).
    pub(crate) fn init(format: Format, long_running: bool) -> Self {
        let log = Self::new(io::stderr(), QUEUE_LINES);
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(default_filter(long_running)));
        let ansi = colour(
            format,
            io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        let layer = tracing_subscriber::fmt::layer().with_writer(log.writer.clone());
        let layer = match format {
            Format::Text => layer.with_ansi(ansi).boxed(),
            Format::Json => layer.json().boxed(),
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init();
        log
    }

    /// Log output to `sink` through a queue of `lines` lines.
    fn new(sink: impl Write + Send + 'static, lines: usize) -> Self {
        let counter = Arc::new(OnceLock::new());
        let written = Arc::new(Written::default());
        let sink = Sink {
            inner: sink,
            dropped: counter.clone(),
            reported: 0,
            written: written.clone(),
        };
        let (inner, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(lines)
            .thread_name("polaris-plugin-log")
            .finish(sink);
        let dropped = inner.error_counter();
        let _ = counter.set(dropped.clone());
        Self {
            writer: Writer {
                inner,
                submitted: Arc::new(AtomicU64::new(0)),
            },
            dropped,
            written,
            guard,
        }
    }

    /// Queues one plain line for stderr (such as `error: ...`); lossy like
    /// every log line.
    pub(crate) fn line(&self, args: fmt::Arguments<'_>) {
        let _ = self
            .writer
            .clone()
            .write_all(format!("{args}\n").as_bytes());
    }

    /// Lines dropped so far because the queue was full.
    fn dropped(&self) -> u64 {
        self.dropped.dropped_lines() as u64
    }

    /// Waits at most [`FLUSH_BUDGET`] for the queued lines to be written. If
    /// they were, the writer thread is shut down (dropping the guard); if not,
    /// the guard is forgotten and the thread ends with the process: its drop
    /// would wait 100 ms for room in the full queue and then `println!` a
    /// complaint to stdout, which is `call`'s output and may block too.
    pub(crate) fn finish(self) {
        let submitted = self.writer.submitted.load(Ordering::Acquire);
        let accepted = submitted.saturating_sub(self.dropped());
        if self.written.wait_for(accepted, FLUSH_BUDGET) {
            drop(self.guard);
        } else {
            std::mem::forget(self.guard);
        }
    }
}

/// The writer handed to the subscriber: counts lines submitted, so
/// [`Logging::finish`] knows how many to wait for.
#[derive(Clone)]
struct Writer {
    inner: NonBlocking,
    submitted: Arc<AtomicU64>,
}

impl Write for Writer {
    /// One call per event (the fmt layer writes each formatted event at once).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.submitted.fetch_add(1, Ordering::AcqRel);
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Writer;

    fn make_writer(&'a self) -> Writer {
        self.clone()
    }
}

/// Lines the writer thread has finished with (written or failed).
#[derive(Default)]
struct Written {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Written {
    fn advance(&self) {
        *self.count.lock() += 1;
        self.changed.notify_all();
    }

    /// Waits until `n` lines are done or `budget` has passed; true if done.
    fn wait_for(&self, n: u64, budget: Duration) -> bool {
        let deadline = Instant::now() + budget;
        let mut count = self.count.lock();
        while *count < n {
            if self.changed.wait_until(&mut count, deadline).timed_out() {
                return *count >= n;
            }
        }
        true
    }
}

/// The writer thread's end: reports drops before the next line, counts lines.
struct Sink<W> {
    inner: W,
    dropped: Arc<OnceLock<ErrorCounter>>,
    reported: usize,
    written: Arc<Written>,
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// The worker writes each queued line with one `write_all`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let dropped = self.dropped.get().map_or(0, ErrorCounter::dropped_lines);
        if dropped > self.reported {
            let _ = writeln!(
                self.inner,
                "polaris-plugin: {} log lines dropped (stderr was not being read)",
                dropped - self.reported
            );
            self.reported = dropped;
        }
        let result = self.inner.write_all(buf);
        self.written.advance();
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A stderr that blocks its first write until released, then collects.
    struct Gate {
        entered: Option<mpsc::Sender<()>>,
        release: mpsc::Receiver<()>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(entered) = self.entered.take() {
                entered.send(()).unwrap();
                let _ = self.release.recv();
            }
            self.out.lock().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Log output through a 4-line queue into a gate that is blocked in its
    /// first write (as in write(2) on a full pipe) once this returns.
    fn blocked() -> (Logging, mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate {
            entered: Some(entered_tx),
            release: release_rx,
            out: out.clone(),
        };
        let log = Logging::new(gate, 4);
        log.line(format_args!("first"));
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        (log, release, out)
    }

    #[test]
    fn colour_only_for_text_at_a_terminal_without_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(colour(Format::Text, true, None));
        assert!(colour(Format::Text, true, empty));
        assert!(!colour(Format::Text, true, set));
        assert!(!colour(Format::Text, false, None));
        assert!(!colour(Format::Json, true, None));
    }

    #[test]
    fn drops_are_counted_and_reported_where_the_gap_is() {
        let (log, release, out) = blocked();
        for i in 0..7 {
            log.line(format_args!("line {i}"));
        }
        assert_eq!(log.dropped(), 3);
        release.send(()).unwrap();
        log.finish();
        let out = String::from_utf8(out.lock().clone()).unwrap();
        assert_eq!(
            out,
            "first\n\
             polaris-plugin: 3 log lines dropped (stderr was not being read)\n\
             line 0\nline 1\nline 2\nline 3\n"
        );
    }

    #[test]
    fn finish_does_not_wait_for_a_blocked_stderr() {
        let (log, _release, _out) = blocked();
        for i in 0..10 {
            log.line(format_args!("line {i}"));
        }
        let start = Instant::now();
        log.finish();
        // A failure bound, not a timing claim: finish waits FLUSH_BUDGET.
        assert!(start.elapsed() < FLUSH_BUDGET * 5, "{:?}", start.elapsed());
    }
}
