//! Child output as bounded lines. The readers always drain the pipe, so a flood never blocks the
//! child, and no buffer grows past `max_line_len`.

use std::sync::Arc;

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::mpsc::{self, error::TrySendError},
};

use crate::{hooks::Hooks, stats::Shared};

/// Capacity of the stdout channel handed to the readiness hook.
pub(crate) const READY_BUFFER: usize = 64;

/// Splits a byte stream that arrives in arbitrary chunks into lines of at most `max` bytes.
///
/// Partial lines are carried across [`push`](Self::push) calls, so how the stream is chunked
/// does not matter: pipe reads, or go-plugin's `GRPCStdio` messages (up to 1 KiB each, cut
/// anywhere) give the same lines as the whole stream at once. A line ends at `\n` or `\r\n`;
/// neither is part of the line. A line longer than `max` bytes is cut into pieces of at most
/// `max` bytes, at a UTF-8 character boundary when the cut would fall inside a character, so
/// the pieces of valid UTF-8 concatenate to the line. Invalid UTF-8 is replaced with U+FFFD
/// (which can make a line of invalid bytes longer than `max`, as can a character cut because
/// `max` is below 4). Memory is bounded: at most `max + 1` bytes are buffered.
///
/// ```
/// use supervisor::LineSplitter;
///
/// let mut lines = LineSplitter::new(1024);
/// assert_eq!(lines.push(b"hel"), Vec::<String>::new());
/// assert_eq!(lines.push(b"lo\r\nwor"), ["hello"]);
/// assert_eq!(lines.push(b"ld\npartial"), ["world"]);
/// assert_eq!(lines.finish(), ["partial"]);
/// ```
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max: usize,
    /// At most `max` bytes, or `max + 1` when the last is a `\r` that may start a `\r\n`.
    buf: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes (`max` 0 is taken as 1).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            buf: Vec::new(),
        }
    }

    /// The longest line (or piece of one) this splitter emits, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Feeds a chunk; returns the lines it completed (pieces of long lines included), in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        self.push_with(data, &mut |line, _| lines.push(line));
        lines
    }

    /// At the end of the stream: the last line if it had no line end (two pieces if it was
    /// one byte too long), and resets the splitter.
    pub fn finish(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        self.finish_with(&mut |line, _| lines.push(line));
        lines
    }

    /// Like [`push`](Self::push), calling `emit(line, was_split)` for each line or piece.
    pub(crate) fn push_with(&mut self, mut data: &[u8], emit: &mut impl FnMut(String, bool)) {
        while let Some(&next) = data.first() {
            let len = self.buf.len();
            if len >= self.max {
                // Full: only a line end, or a `\r` that may begin one, can join this line.
                match next {
                    b'\n' => {
                        data = &data[1..];
                        self.end_line(emit);
                    }
                    b'\r' if len == self.max => {
                        self.buf.push(b'\r');
                        data = &data[1..];
                    }
                    _ => self.emit_piece(emit),
                }
                continue;
            }
            let room = self.max - len;
            match data.iter().position(|&b| b == b'\n') {
                Some(end) if end <= room => {
                    self.buf.extend_from_slice(&data[..end]);
                    data = &data[end + 1..];
                    self.end_line(emit);
                }
                _ => {
                    let n = room.min(data.len());
                    self.buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                }
            }
        }
    }

    /// Like [`finish`](Self::finish), calling `emit(line, was_split)`.
    pub(crate) fn finish_with(&mut self, emit: &mut impl FnMut(String, bool)) {
        if self.buf.len() > self.max {
            self.emit_piece(emit);
        }
        if !self.buf.is_empty() {
            emit(to_string(std::mem::take(&mut self.buf)), false);
        }
    }

    /// Emits the buffer as a whole line, without a trailing `\r`.
    fn end_line(&mut self, emit: &mut impl FnMut(String, bool)) {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        emit(to_string(std::mem::take(&mut self.buf)), false);
    }

    /// Emits the first `max` bytes as a piece of a longer line, keeping an incomplete UTF-8
    /// sequence at their end (or a pending `\r` after them) for the next piece.
    fn emit_piece(&mut self, emit: &mut impl FnMut(String, bool)) {
        let keep_from = if self.buf.len() > self.max {
            self.max
        } else {
            match std::str::from_utf8(&self.buf) {
                Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
                _ => self.buf.len(),
            }
        };
        let rest = self.buf.split_off(keep_from);
        emit(to_string(std::mem::replace(&mut self.buf, rest)), true);
    }
}

fn to_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reads `reader` to its end, passing lines to `sink`.
async fn read_lines(
    mut reader: impl AsyncRead + Unpin,
    max: usize,
    shared: &Shared,
    mut sink: impl FnMut(String),
) {
    let mut splitter = LineSplitter::new(max);
    let mut buf = vec![0u8; 8192];
    let mut emit = |line: String, split: bool| {
        if split {
            shared.count_split();
        }
        sink(line);
    };
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => splitter.push_with(&buf[..n], &mut emit),
            Err(error) => {
                tracing::debug!(%error, "reading child output failed");
                break;
            }
        }
    }
    splitter.finish_with(&mut emit);
}

/// Stdout: into the readiness channel while it is open (dropping and counting when it is full),
/// then to [`Hooks::stdout_line`].
pub(crate) async fn pump_stdout(
    reader: impl AsyncRead + Unpin,
    max: usize,
    shared: Arc<Shared>,
    hooks: Arc<dyn Hooks>,
    ready: mpsc::Sender<String>,
) {
    let mut ready = Some(ready);
    let sink = |line: String| {
        let Some(tx) = &ready else {
            guarded("stdout_line", || hooks.stdout_line(&line));
            return;
        };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if shared.count_stdout_dropped() == 1 {
                    tracing::warn!(
                        capacity = READY_BUFFER,
                        "readiness hook is not reading stdout; dropping lines"
                    );
                }
            }
            Err(TrySendError::Closed(line)) => {
                ready = None;
                guarded("stdout_line", || hooks.stdout_line(&line));
            }
        }
    };
    read_lines(reader, max, &shared, sink).await;
}

/// Stderr: to [`Hooks::stderr_line`] and into the kept tail.
pub(crate) async fn pump_stderr(
    reader: impl AsyncRead + Unpin,
    max: usize,
    shared: Arc<Shared>,
    hooks: Arc<dyn Hooks>,
) {
    let sink = |line: String| {
        guarded("stderr_line", || hooks.stderr_line(&line));
        shared.push_stderr(line);
    };
    read_lines(reader, max, &shared, sink).await;
}

/// Calls a line hook; a panicking hook is logged and must not stop the reader (the child would
/// then block on, or die writing to, a pipe nobody reads).
pub(crate) fn guarded(hook: &str, call: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::error!(hook, "output hook panicked; line dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(max);
        let mut emit = |line, split| out.push((line, split));
        for chunk in chunks {
            s.push_with(chunk, &mut emit);
        }
        s.finish_with(&mut emit);
        out
    }

    fn whole(lines: &[&str]) -> Vec<(String, bool)> {
        lines.iter().map(|l| (l.to_string(), false)).collect()
    }

    #[test]
    fn lines_across_chunks() {
        assert_eq!(
            split(16, &[b"ab", b"c\nde\r\n", b"\nf"]),
            whole(&["abc", "de", "", "f"])
        );
    }

    #[test]
    fn exact_fit_is_not_split() {
        assert_eq!(split(3, &[b"abc\nabcd\n"]), {
            let mut v = whole(&["abc"]);
            v.push(("abc".into(), true));
            v.push(("d".into(), false));
            v
        });
    }

    #[test]
    fn long_lines_are_split_into_bounded_pieces() {
        let data = vec![b'x'; 10_000];
        let out = split(1000, &[&data, b"\n"]);
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|(l, _)| l.len() <= 1000));
        assert!(out[..9].iter().all(|(_, s)| *s));
    }

    #[test]
    fn utf8_is_not_cut_mid_character() {
        // "é" is two bytes; with max 3, "aé" fits, "aaé" must not be cut inside "é".
        let out = split(3, &["aaé\n".as_bytes()]);
        assert_eq!(out, vec![("aa".into(), true), ("é".into(), false)]);
        let out = split(4, &[b"a\xffb\n"]);
        assert_eq!(out, whole(&["a\u{fffd}b"]));
    }
}
