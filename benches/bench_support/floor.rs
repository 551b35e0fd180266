//! The floor: a raw round trip over a unix socket between two processes (this one and an
//! echo child, blocking reads and writes, 100-byte messages), measured beside the calls so
//! every latency can be read as a multiple of what the wire itself costs at that moment.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::percentile;

/// The environment variable that makes the bench binary an echo child.
const ECHO: &str = "POLARIS_BENCH_ECHO";
/// Bytes per message, each way.
const MESSAGE: usize = 100;
/// Round trips per sample.
const ROUND_TRIPS: usize = 5_000;

/// When the bench binary runs as the echo child: echoes stdin (a unix socket) until EOF,
/// then exits. Call first thing in `main`.
pub fn echo_child_if_asked() {
    if std::env::var_os(ECHO).is_none() {
        return;
    }
    let mut stream = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; MESSAGE];
    while stream.read_exact(&mut buf).is_ok() {
        if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    std::process::exit(0);
}

/// The echo child and our end of its socket.
pub struct Floor {
    child: Child,
    ours: UnixStream,
}

/// One sample of the floor.
#[derive(Clone, Copy, Debug)]
pub struct FloorSample {
    pub p50: Duration,
    pub p99: Duration,
}

impl Floor {
    pub fn start() -> Self {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let out = theirs.try_clone().expect("dup");
        let child = Command::new(std::env::current_exe().expect("bench binary"))
            .env(ECHO, "1")
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(out)))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the echo child");
        Floor { child, ours }
    }

    /// [`ROUND_TRIPS`] round trips on a blocking thread: their p50 and p99.
    pub async fn sample(&mut self) -> FloorSample {
        let mut stream = self.ours.try_clone().expect("dup");
        tokio::task::spawn_blocking(move || {
            let msg = [7u8; MESSAGE];
            let mut back = [0u8; MESSAGE];
            let mut samples = Vec::with_capacity(ROUND_TRIPS);
            for _ in 0..ROUND_TRIPS {
                let t = Instant::now();
                stream.write_all(&msg).expect("write to the echo child");
                stream
                    .read_exact(&mut back)
                    .expect("read from the echo child");
                samples.push(t.elapsed());
            }
            samples.sort_unstable();
            FloorSample {
                p50: percentile(&samples, 0.5),
                p99: percentile(&samples, 0.99),
            }
        })
        .await
        .expect("floor thread")
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.ours.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}
