//! Spawning children: the command (env, CPU affinity, parent-death signal, process group), the
//! dedicated spawner thread, and the process-group guard.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. Tokio
//! worker and blocking threads come and go, so every child is forked by one process-wide,
//! long-lived std thread ("supervisor-spawn"), started on first use. A request carries the
//! caller's runtime handle; the thread enters it so the child's pipes and exit notification are
//! registered with that runtime.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsRawFd as _, BorrowedFd, RawFd},
        unix::{ffi::OsStrExt, fs::FileExt as _},
    },
    panic::AssertUnwindSafe,
    process::Stdio,
    sync::mpsc as std_mpsc,
    thread,
};

use nix::{
    errno::Errno,
    fcntl::{FcntlArg, FdFlag, fcntl},
    sched::sched_setaffinity,
    sys::{
        prctl,
        resource::{Resource, setrlimit},
        signal::{Signal, killpg},
    },
    unistd::{Pid, getpid, getppid},
};
use parking_lot::Mutex;
use tokio::{
    process::{Child, Command},
    runtime::Handle,
    sync::oneshot,
};

use crate::{cpu, spec::Spec};

/// Builds the command for `spec`, pinned to `cpus` if given. With `opened` (the program as
/// [`Hooks::before_spawn`](crate::Hooks::before_spawn) opened it; it must stay open until the
/// spawn returns), the child executes that open file rather than the path.
pub(crate) fn command(spec: &Spec, cpus: Option<&[usize]>, opened: Option<&File>) -> Command {
    let mut cmd = match opened {
        Some(file) => exec_opened(spec, file),
        None => Command::new(&spec.program),
    };
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if spec.env.inherit {
        for (name, _) in std::env::vars_os() {
            if spec.env.remove.iter().any(|f| f.matches(&name)) {
                cmd.env_remove(&name);
            }
        }
    } else {
        cmd.env_clear();
    }
    if let Some(cpus) = cpus {
        cmd.env("GOMAXPROCS", cpus.len().to_string());
    }
    for (name, value) in &spec.env.set {
        cmd.env(name, value);
    }

    let parent = getpid();
    let set = cpus.map(cpu::cpu_set);
    let limits = spec.limits;
    let pre_exec = move || -> io::Result<()> {
        // Runs in the forked child before exec: only async-signal-safe calls, no allocation.
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        // The parent may have died before the prctl: then nobody will send the signal.
        if getppid() != parent {
            return Err(io::Error::from_raw_os_error(Errno::ESRCH as i32));
        }
        if let Some(set) = &set {
            sched_setaffinity(Pid::from_raw(0), set)?;
        }
        for (resource, limit) in [
            (Resource::RLIMIT_AS, limits.address_space),
            (Resource::RLIMIT_NOFILE, limits.open_files),
            (Resource::RLIMIT_NPROC, limits.processes),
        ] {
            if let Some(limit) = limit {
                setrlimit(resource, limit, limit)?;
            }
        }
        Ok(())
    };
    // SAFETY: the closure only makes the prctl, getppid, sched_setaffinity and setrlimit
    // syscalls, which are async-signal-safe, and builds errors from raw codes without allocating.
    unsafe {
        cmd.pre_exec(pre_exec);
    }
    cmd
}

/// A command that executes the open `file` through its `/proc/self/fd` link, so the kernel
/// runs exactly the file that was checked even if the path has been replaced since; `argv[0]`
/// stays the program's path. The descriptor is close-on-exec in this process (other children
/// forked meanwhile do not keep it); a script's child clears that flag just before the exec,
/// because the kernel hands the interpreter the `/proc/self/fd/N` path to open.
fn exec_opened(spec: &Spec, file: &File) -> Command {
    let fd = file.as_raw_fd();
    let mut cmd = Command::new(format!("/proc/self/fd/{fd}"));
    cmd.arg0(&spec.program);
    if is_script(file) {
        let keep_open = move || -> io::Result<()> {
            // SAFETY: `fd` is open in the forked child: the parent keeps the file open until
            // the spawn returns, and fork copies its descriptors.
            let fd: BorrowedFd<'_> = unsafe { BorrowedFd::borrow_raw(fd as RawFd) };
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        };
        // SAFETY: the closure makes one fcntl syscall, which is async-signal-safe, and
        // allocates nothing.
        unsafe {
            cmd.pre_exec(keep_open);
        }
    }
    cmd
}

/// Whether the file starts with `#!` (read without moving its offset).
fn is_script(file: &File) -> bool {
    let mut magic = [0u8; 2];
    matches!(file.read_at(&mut magic, 0), Ok(2)) && magic == *b"#!"
}

/// A one-line description of a spawn failure, naming the program (and working directory).
pub(crate) fn describe_failure(spec: &Spec, error: &io::Error) -> String {
    let program = spec.program.display();
    match &spec.cwd {
        Some(cwd) => format!(
            "cannot spawn `{program}` in working directory `{}`: {error}",
            cwd.display()
        ),
        None if error.kind() == io::ErrorKind::NotFound
            && !spec.program.as_os_str().as_bytes().contains(&b'/') =>
        {
            format!("cannot spawn `{program}`: {error} (not found in PATH)")
        }
        None => format!("cannot spawn `{program}`: {error}"),
    }
}

struct Request {
    command: Command,
    runtime: Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

static SPAWNER: Mutex<Option<std_mpsc::Sender<Request>>> = Mutex::new(None);

/// Spawns `command` from the spawner thread, registered with the current runtime.
pub(crate) async fn spawn(command: Command) -> io::Result<Child> {
    let (reply, response) = oneshot::channel();
    let request = Request {
        command,
        runtime: Handle::current(),
        reply,
    };
    let sender = spawner()?;
    if sender.send(request).is_err() {
        // The thread is gone (it never exits normally); let the next call start a new one.
        *SPAWNER.lock() = None;
        return Err(io::Error::other("the supervisor's spawner thread is gone"));
    }
    response
        .await
        .map_err(|_| io::Error::other("the supervisor's spawner thread dropped the request"))?
}

fn spawner() -> io::Result<std_mpsc::Sender<Request>> {
    let mut slot = SPAWNER.lock();
    if let Some(sender) = &*slot {
        return Ok(sender.clone());
    }
    let (sender, requests) = std_mpsc::channel::<Request>();
    thread::Builder::new()
        .name("supervisor-spawn".into())
        .spawn(move || serve(requests))?;
    *slot = Some(sender.clone());
    Ok(sender)
}

/// The spawner thread's loop. It holds no state of its own and lives as long as the process
/// (the sender sits in a static).
fn serve(requests: std_mpsc::Receiver<Request>) {
    while let Ok(mut request) = requests.recv() {
        let _runtime = request.runtime.enter();
        // This thread must not die: its children would get their parent-death signal.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| request.command.spawn()))
            .unwrap_or_else(|_| Err(io::Error::other("spawning panicked")));
        // If the requester is gone, the child is dropped here and killed (`kill_on_drop`).
        drop(request.reply.send(result));
    }
}

/// A child's process group. Signals go to the whole group; if dropped before the leader has
/// been reaped (the owner task was cancelled), the group is SIGKILLed.
#[derive(Debug)]
pub(crate) struct Group {
    pgid: Pid,
    armed: bool,
}

impl Group {
    pub(crate) fn new(pid: u32) -> Self {
        Self {
            pgid: Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
            armed: true,
        }
    }

    /// Sends `signal` to every process in the group. A group that is already empty is fine.
    pub(crate) fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => tracing::warn!(pgid = %self.pgid, %signal, %error, "killpg failed"),
        }
    }

    /// After the leader was reaped: SIGKILLs whatever is left of the group (grandchildren), then
    /// disarms the drop guard. The group id cannot be reused while any member is alive.
    pub(crate) fn reaped(&mut self) {
        self.signal(Signal::SIGKILL);
        self.armed = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}
