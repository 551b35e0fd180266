//! `fixture-plugin`: a companion plugin for the host's tests, whose
//! misbehaviour is chosen on the command line. Not an example to copy.
//!
//! - `--crash-after N`: exit with code 3 on the N-th call (before answering).
//! - `--exit-at-start CODE`: write a line on stderr and exit at once.
//! - `--slow-call MS`: each call takes MS milliseconds.
//! - `--arrived PATH`: create PATH as soon as a call reaches the plugin (before
//!   `--slow-call`'s wait), so a test knows the plugin has the call.
//! - `--die-on-sigterm`: die by SIGTERM at once, as a Go plugin does, instead
//!   of the SDK's graceful stop. (A raw handler installed before the SDK's;
//!   the SDK's signal handling chains to it. It restores the default action
//!   and raises SIGTERM again.) Only `Shutdown` then ends the plugin with code 0.
//! - `--no-drain-on-shutdown`: a stop (`Shutdown`, or SIGTERM without
//!   `--die-on-sigterm`) exits 0 at once, cutting off calls in flight
//!   (`sdk::Server::stop_grace(0)`), so only the host's drain lets them finish.
//! - `--max-connection-age MS`: close each connection gracefully (GOAWAY)
//!   once it is MS milliseconds old (`sdk::Server::max_connection_age`), as
//!   grpc-go servers with keepalive `MaxConnectionAge` do.
//! - `--pid-file PATH`: write this process's pid to PATH at start.
//! - `--stopped PATH`: when the SDK's graceful stop has finished, write
//!   `exit 0 host=alive` to PATH (`exit non-zero` / `host=gone` otherwise:
//!   `host=gone` when the process that started the fixture is no longer its
//!   parent, i.e. the stop came from the host's death). With
//!   `--die-on-sigterm`, `host=alive` means the stop came from `Shutdown`.
//! - `--bad-handshake`: print a malformed handshake line, then wait.
//! - `--no-handshake`: never print the handshake (start timeout).
//! - `--handshake-unix PATH`: print a valid handshake naming the unix socket
//!   PATH (which this process does not serve), then wait.
//! - `--log-levels`: log one hclog line per level at start.
//! - `--record FILE`: append each call's request key and this process's pid
//!   to FILE, one line per call, before answering (tests count deliveries);
//!   and `STOP <pid>` when the graceful stop begins (`Server::on_stop`).
//! - `--spew-stderr N`: from a background thread, write N WARN hclog lines to
//!   stderr as fast as stderr takes them, then create the file named by
//!   `--spew-done PATH` (if given). The file shows the host kept reading.
//! - `--announce-other-cert`: AutoMTLS with a lie: runs itself (without this flag) as the
//!   real plugin, which serves TLS with its own certificate, and passes its handshake on
//!   with field 6 replaced by another certificate (the host's own, from
//!   `PLUGIN_CLIENT_CERT`). A host must refuse the connection.
//!
//! - `--allocate-mib N`: each call allocates N MiB, touches it and keeps it (memory grows
//!   call by call; under a memory limit the allocation fails and the process aborts).
//!
//! Calls answer `RateLimitPluginResponse { allow: true }`.

use std::{
    process::ExitCode,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use clap::Parser;
use polaris_plugin::{
    codec,
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, Request, Response},
    sdk,
};

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long)]
    crash_after: Option<u64>,
    #[arg(long)]
    exit_at_start: Option<u8>,
    #[arg(long)]
    slow_call: Option<u64>,
    #[arg(long)]
    bad_handshake: bool,
    #[arg(long)]
    no_handshake: bool,
    #[arg(long)]
    handshake_unix: Option<std::path::PathBuf>,
    #[arg(long)]
    log_levels: bool,
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    #[arg(long)]
    spew_stderr: Option<u64>,
    #[arg(long)]
    spew_done: Option<std::path::PathBuf>,
    #[arg(long)]
    arrived: Option<std::path::PathBuf>,
    #[arg(long)]
    die_on_sigterm: bool,
    #[arg(long)]
    no_drain_on_shutdown: bool,
    #[arg(long)]
    max_connection_age: Option<u64>,
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
    #[arg(long)]
    stopped: Option<std::path::PathBuf>,
    #[arg(long)]
    announce_other_cert: bool,
    #[arg(long)]
    allocate_mib: Option<usize>,
}

struct Fixture {
    args: Args,
    calls: AtomicU64,
}

impl sdk::Call for Fixture {
    async fn call(&self, request: Request) -> Result<Response, tonic::Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.args.crash_after.is_some_and(|limit| n >= limit) {
            tracing::error!(call = n, "crashing as told");
            std::process::exit(3);
        }
        if let Some(path) = &self.args.arrived {
            std::fs::write(path, n.to_string())
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
        }
        if let Some(mib) = self.args.allocate_mib {
            // Zeroed pages are only reserved; writing one byte per page makes them resident.
            let mut block = vec![0u8; mib << 20];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            std::mem::forget(block);
        }
        if let Some(ms) = self.args.slow_call {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let request: RateLimitPluginRequest = codec::unmarshal_request(&request)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        if let Some(path) = &self.args.record {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            // One write per line: O_APPEND keeps lines whole across processes.
            file.write_all(format!("{} {}\n", request.key, std::process::id()).as_bytes())
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
        }
        Ok(codec::marshal_response(&RateLimitPluginResponse {
            allow: true,
        }))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.announce_other_cert {
        return announce_other_cert();
    }
    if let Some(code) = args.exit_at_start {
        eprintln!("fixture: exiting at start with code {code}");
        return ExitCode::from(code);
    }
    if let Some(path) = &args.handshake_unix {
        println!(
            "1|{}|unix|{}|grpc",
            polaris_plugin::protocol::APP_PROTOCOL_VERSION,
            path.display()
        );
        eprintln!("fixture: advertised a socket it does not serve");
        std::thread::sleep(Duration::from_secs(3600));
        return ExitCode::SUCCESS;
    }
    if args.bad_handshake || args.no_handshake {
        if args.bad_handshake {
            println!("this is not a handshake");
        }
        eprintln!("fixture: waiting without a valid handshake");
        std::thread::sleep(Duration::from_secs(3600));
        return ExitCode::SUCCESS;
    }
    if args.log_levels {
        // hclog JSON lines, as a Go plugin writes them.
        for level in ["trace", "debug", "info", "warn", "error"] {
            eprintln!(
                r#"{{"@level":"{level}","@message":"fixture says {level}","@timestamp":"2026-01-01T00:00:00.000000Z","@module":"fixture"}}"#
            );
        }
    }
    if let Some(lines) = args.spew_stderr {
        let done = args.spew_done.clone();
        std::thread::spawn(move || spew(lines, done));
    }
    if let Some(path) = &args.pid_file
        && let Err(e) = std::fs::write(path, std::process::id().to_string())
    {
        eprintln!("fixture: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    if args.die_on_sigterm {
        die_on_sigterm();
    }
    let host = std::os::unix::process::parent_id();
    let stopped = args.stopped.clone();
    let grace = args.no_drain_on_shutdown.then_some(Duration::ZERO);
    let age = args.max_connection_age.map(Duration::from_millis);
    let record = args.record.clone();
    let mut server = sdk::Server::new(Fixture {
        args,
        calls: AtomicU64::new(0),
    });
    if let Some(grace) = grace {
        server = server.stop_grace(grace);
    }
    if let Some(age) = age {
        server = server.max_connection_age(age);
    }
    if let Some(path) = record {
        server = server.on_stop(move || {
            use std::io::Write as _;
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                let _ = file.write_all(format!("STOP {}\n", std::process::id()).as_bytes());
            }
        });
    }
    let code = server.serve();
    if let Some(path) = stopped {
        let exit = if code == ExitCode::SUCCESS {
            "exit 0"
        } else {
            "exit non-zero"
        };
        let host = if std::os::unix::process::parent_id() == host {
            "alive"
        } else {
            "gone"
        };
        let _ = std::fs::write(path, format!("{exit} host={host}"));
    }
    code
}

/// `--announce-other-cert`: see the module docs.
fn announce_other_cert() -> ExitCode {
    use base64::Engine as _;
    use std::io::{BufRead as _, Write as _};
    let Some(pem) = std::env::var_os("PLUGIN_CLIENT_CERT") else {
        eprintln!("fixture: --announce-other-cert needs the host's PLUGIN_CLIENT_CERT");
        return ExitCode::from(1);
    };
    let body: String = pem
        .to_string_lossy()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let Ok(other) = base64::engine::general_purpose::STANDARD.decode(body.trim()) else {
        eprintln!("fixture: PLUGIN_CLIENT_CERT is not PEM");
        return ExitCode::from(1);
    };
    let Ok(exe) = std::env::current_exe() else {
        return ExitCode::from(1);
    };
    let args = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--announce-other-cert");
    let mut child = match std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("fixture: cannot run the real plugin: {e}");
            return ExitCode::from(1);
        }
    };
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    }
    let mut fields: Vec<String> = line.trim().split('|').map(str::to_owned).collect();
    if fields.len() < 6 {
        eprintln!("fixture: the real plugin's handshake has no certificate: {line:?}");
        return ExitCode::from(1);
    }
    fields[5] = base64::engine::general_purpose::STANDARD_NO_PAD.encode(other);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", fields.join("|")).and_then(|()| out.flush());
    drop(out);
    eprintln!("fixture: announced another certificate than the one served");
    match child.wait() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// Makes SIGTERM kill the process with no graceful stop. Installed before
/// `sdk::serve`: the SDK's handler (tokio's, through signal-hook-registry)
/// calls the handler it replaced before its own work, so `die` runs on every
/// SIGTERM. It restores the default action and raises SIGTERM again; the
/// signal is blocked while handlers run, and kills the process as soon as
/// they return.
fn die_on_sigterm() {
    use nix::sys::signal::{SigHandler, Signal, raise, signal};

    extern "C" fn die(_: nix::libc::c_int) {
        // Only async-signal-safe calls here: signal(2) and raise(3).
        // SAFETY: the default action is a valid disposition for SIGTERM.
        let _ = unsafe { signal(Signal::SIGTERM, SigHandler::SigDfl) };
        let _ = raise(Signal::SIGTERM);
    }
    // SAFETY: `die` makes only async-signal-safe calls.
    if let Err(e) = unsafe { signal(Signal::SIGTERM, SigHandler::Handler(die)) } {
        eprintln!("fixture: cannot install the SIGTERM handler: {e}");
        std::process::exit(1);
    }
}

/// Writes `lines` WARN hclog lines to stderr (blocking when the host stops
/// reading), then creates `done`.
fn spew(lines: u64, done: Option<std::path::PathBuf>) {
    use std::io::Write as _;
    for n in 0..lines {
        // One write per line, so the SDK's own lines never interleave.
        let mut line = format!(
            r#"{{"@level":"warn","@message":"fixture spews line {n}","@timestamp":"2026-01-01T00:00:00.000000Z","@module":"fixture"}}"#
        );
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    if let Some(done) = done {
        let _ = std::fs::write(done, lines.to_string());
    }
}
