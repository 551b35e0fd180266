//! Run directories: the host owns a private directory per companion plugin,
//! gives it to the plugin as its socket and temp directory, empties it after
//! every run and removes it at destroy; directories left by a host that died
//! are swept by the next host.
//!
//! Why: a plugin's handshake names a unix socket path, and the plugin, not the
//! host, chose it; deleting it after the run would delete whatever the plugin
//! named (another server's socket). And a plugin killed before it removed its
//! socket (or before it was even ready) leaves the file behind. Here the host
//! deletes only inside directories it made (house style rule 13), and deletes
//! everything there, whatever the plugin printed.
//!
//! ```text
//! <base>/polaris-plugin-host.<uid>/     0700, verified ours and not a symlink
//!   .lock                               flock'd while a host creates its dir or sweeps
//!   <XXXXXX>/                           HostDir, 0700, one per host process
//!     lock                              flock'd for the process's lifetime
//!     <n>-<name[..8]>/                  PluginDir, 0700: PLUGIN_UNIX_SOCKET_DIR and TMPDIR
//!       plugin123456789                 a Go plugin's socket (go-plugin v1.0.1 and >= 1.5)
//!       polaris-plugin-AbCdEf/plugin.sock   a Rust SDK plugin's socket
//! ```
//!
//! `<base>` is `$XDG_RUNTIME_DIR` when it is set, absolute, a directory owned
//! by this user and writable, else the temp dir (`$TMPDIR` or `/tmp`).
//!
//! The kernel releases a host's `flock` when the host dies, even by SIGKILL,
//! so a new host directory's creation sweeps every sibling whose lock it can
//! take: their hosts are dead. Removal never follows a symlink and leaves
//! entries another user owns (see `tree`).
//!
//! # API and intended call sequence (wire-up in `companion.rs`, `launch.rs`, the supervisor hooks)
//!
//! ```ignore
//! // Companion::start: one PluginDir per plugin, alive as long as the plugin.
//! let dir = HostDir::shared()?.plugin_dir(&plugin.name)?;
//! // launch::spec_and_policy: into Spec.env.set, *before* companion.env, so a
//! // TMPDIR the user configured wins (see PluginDir::env).
//! set.extend(dir.env());
//! // The supervisor hook `run_ended` (synchronous, after the child is reaped,
//! // before the next spawn): empty the directory for the next run.
//! if let Err(e) = dir.clear() { tracing::warn!(error = %e, "...") }
//! // Anywhere else a file named by the plugin would be deleted:
//! if dir.owns(&socket_path) { std::fs::remove_file(&socket_path)?; }
//! // Destroy: drop the PluginDir (removes it); the last one dropped removes the HostDir.
//! drop(dir);
//! ```
//!
//! All of it is small blocking file-system work (a mkdir, a few unlinks);
//! `clear` runs once per run between runs, never on a call path.

mod tree;

use std::{
    ffi::OsString,
    fs::File,
    io,
    os::unix::fs::MetadataExt as _,
    path::{Component, Path, PathBuf},
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use nix::{
    fcntl::Flock,
    unistd::{AccessFlags, Uid, access, geteuid},
};
use parking_lot::Mutex;

use crate::protocol::env;

/// The per-uid parent's name prefix: `polaris-plugin-host.<uid>`.
const UID_DIR_PREFIX: &str = "polaris-plugin-host.";
/// The per-uid parent's lock: held while a host creates its directory and
/// sweeps, so a sweeper never mistakes a directory being created for a dead one.
const PARENT_LOCK: &str = ".lock";
/// A host directory's lock file, held for the host process's lifetime.
const LOCK_FILE: &str = "lock";
/// `sun_path` holds 108 bytes on Linux, including the NUL.
const MAX_SOCKET_PATH: usize = 107;
/// The most a plugin appends to its socket directory: the Rust SDK's
/// `/polaris-plugin-XXXXXX/plugin.sock`. (Go: `/plugin` and 9 digits with
/// go-plugin v1.0.1's `ioutil.TempFile`, up to 10 with v1.5+'s `os.CreateTemp`.)
const SOCKET_NAME_ROOM: usize = "/polaris-plugin-XXXXXX/plugin.sock".len();
/// At most this many bytes of the plugin's name go into its directory's name.
const NAME_TAG_LEN: usize = 8;

/// This process's host directory while any [`PluginDir`] uses it.
static SHARED: Mutex<Weak<HostDir>> = Mutex::new(Weak::new());

/// The host process's directory, `<base>/polaris-plugin-host.<uid>/<XXXXXX>/`,
/// locked for its lifetime; removed when the last [`PluginDir`] using it goes.
#[derive(Debug)]
pub(crate) struct HostDir {
    path: PathBuf,
    uid: Uid,
    next_id: AtomicU64,
    _lock: Flock<File>,
}

impl HostDir {
    /// The process-wide host directory, created (and the dead hosts' swept)
    /// on first use. Every registry and plugin of the process shares it while
    /// any holds it; after the last [`PluginDir`] is dropped it is removed, and
    /// the next call creates a fresh one.
    pub(crate) fn shared() -> io::Result<Arc<HostDir>> {
        let mut slot = SHARED.lock();
        if let Some(dir) = slot.upgrade() {
            return Ok(dir);
        }
        let dir = Arc::new(HostDir::create_in(&base_dir())?);
        *slot = Arc::downgrade(&dir);
        Ok(dir)
    }

    /// A new host directory under `<base>/polaris-plugin-host.<uid>/`, after
    /// sweeping the directories of dead hosts there.
    fn create_in(base: &Path) -> io::Result<HostDir> {
        let uid = geteuid();
        let parent = uid_parent(base, uid)?;
        let (path, lock) = {
            let _creating = tree::lock(&parent.join(PARENT_LOCK), true)?;
            let path = nix::unistd::mkdtemp(&parent.join("XXXXXX"))
                .map_err(|e| tree::with_path(e.into(), "cannot create a directory in", &parent))?;
            let lock =
                tree::make_private(&path).and_then(|()| tree::lock(&path.join(LOCK_FILE), false));
            match lock {
                Ok(lock) => {
                    sweep(&parent, &path, uid);
                    (path, lock)
                }
                Err(e) => {
                    let _ = tree::remove_tree(&path, uid);
                    return Err(e);
                }
            }
        };
        // Built only now: its Drop takes the parent's lock, released above.
        tracing::debug!(dir = %path.display(), "host run directory created");
        Ok(HostDir {
            path,
            uid,
            next_id: AtomicU64::new(1),
            _lock: lock,
        })
    }

    /// The directory's path.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new private directory for the plugin `name`:
    /// `<host dir>/<n>-<name's first 8 safe characters>`, mode 0700. Fails if
    /// the sockets plugins make in it would not fit a unix socket path.
    pub(crate) fn plugin_dir(self: &Arc<Self>, name: &str) -> io::Result<PluginDir> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tag: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .take(NAME_TAG_LEN)
            .collect();
        let leaf = if tag.is_empty() {
            id.to_string()
        } else {
            format!("{id}-{tag}")
        };
        let path = self.path.join(leaf);
        fits_socket(&path)?;
        tree::create_private_dir(&path)?;
        let canonical = path.canonicalize()?;
        Ok(PluginDir {
            path,
            canonical,
            host: self.clone(),
        })
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        // Under the parent's lock, so a sweeper never races the removal; our
        // own lock is released after this, when `_lock` drops.
        let _sweeping = self
            .path
            .parent()
            .map(|parent| tree::lock(&parent.join(PARENT_LOCK), true));
        if let Err(e) = tree::remove_tree(&self.path, self.uid) {
            tracing::warn!(error = %e, "cannot remove the host run directory");
        }
    }
}

/// A plugin's private directory, given to every run of the plugin as its
/// socket and temp directory. Emptied by [`clear`](Self::clear) between runs;
/// removed when dropped.
#[derive(Debug)]
pub(crate) struct PluginDir {
    path: PathBuf,
    /// `path` with symlinks resolved, for [`owns`](Self::owns).
    #[cfg_attr(not(test), allow(dead_code))]
    canonical: PathBuf,
    host: Arc<HostDir>,
}

impl PluginDir {
    /// The directory's path.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's environment: `PLUGIN_UNIX_SOCKET_DIR` (go-plugin >= 1.5,
    /// the Rust SDK) and `TMPDIR` (go-plugin v1.0.1 ignores
    /// `PLUGIN_UNIX_SOCKET_DIR` and makes its socket with
    /// `ioutil.TempFile("", "plugin")`, in `os.TempDir()`, which is `$TMPDIR`;
    /// the plugin's own temp files land here too and are cleared with it).
    ///
    /// Put these before the user's `companion.env`: a `TMPDIR` set there wins,
    /// and then what a plugin creates in it is not the host's, never deleted by
    /// it (a go-plugin v1.0.1 plugin's socket left there by a killed run stays;
    /// [`owns`](Self::owns) says no). `PLUGIN_UNIX_SOCKET_DIR` is meant to be
    /// the host's alone: config rejects it in `companion.env`.
    pub(crate) fn env(&self) -> Vec<(OsString, OsString)> {
        let dir = OsString::from(self.path.as_os_str());
        vec![
            (env::UNIX_SOCKET_DIR.into(), dir.clone()),
            ("TMPDIR".into(), dir),
        ]
    }

    /// Removes everything inside the directory (a run's socket, the SDK's
    /// socket directory, temp files), never following a symlink and leaving
    /// entries another user owns (reported in the error); then makes sure the
    /// directory exists, mode 0700, for the next run. Call it after a run's
    /// process is reaped and before the next spawn.
    pub(crate) fn clear(&self) -> io::Result<()> {
        let uid = self.host.uid;
        let emptied = match tree::open_dir(&self.path) {
            Ok(fd) => tree::empty(fd, &self.path, uid),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // The plugin replaced it with a symlink or a file: remove that.
            Err(_) => tree::remove_tree(&self.path, uid),
        };
        match tree::create_private_dir(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tree::make_private(&self.path)?,
            other => drop(other?),
        }
        emptied
    }

    /// Whether `path` (a unix socket a plugin's handshake named) lies inside
    /// this directory, so the host may delete it: `path` is absolute, has no
    /// `..`, and its parent directory, with symlinks resolved, is this
    /// directory or below it. Never a string-prefix test: a plugin naming
    /// `<dir>/../other.sock` or `<dir>/link/x.sock` with `link` pointing
    /// elsewhere gets `false`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn owns(&self, path: &Path) -> bool {
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        let (Some(parent), Some(_)) = (path.parent(), path.file_name()) else {
            return false;
        };
        parent
            .canonicalize()
            .is_ok_and(|p| p.starts_with(&self.canonical))
    }
}

impl Drop for PluginDir {
    fn drop(&mut self) {
        if let Err(e) = tree::remove_tree(&self.path, self.host.uid) {
            tracing::warn!(error = %e, "cannot remove a plugin's run directory");
        }
    }
}

/// Removes the directories of dead hosts in `parent` but `own`. The caller
/// holds the parent's lock.
fn sweep(parent: &Path, own: &Path, uid: Uid) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // DirEntry::metadata does not follow a symlink.
        let ours = entry
            .metadata()
            .is_ok_and(|m| m.is_dir() && m.uid() == uid.as_raw());
        if path == own || !ours {
            continue;
        }
        match tree::liveness(&path) {
            Ok(tree::HostLiveness::Live) => {}
            Ok(tree::HostLiveness::Dead(_lock)) => match tree::remove_tree(&path, uid) {
                Ok(()) => {
                    tracing::debug!(dir = %path.display(), "removed a dead host's run directory")
                }
                Err(e) => tracing::warn!(error = %e, "cannot remove a dead host's run directory"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether a host directory's host runs")
            }
        }
    }
}

/// `$XDG_RUNTIME_DIR` if usable, else the temp dir.
fn base_dir() -> PathBuf {
    runtime_dir(std::env::var_os("XDG_RUNTIME_DIR")).unwrap_or_else(std::env::temp_dir)
}

/// `var` if it names an absolute directory this user owns and may write.
fn runtime_dir(var: Option<OsString>) -> Option<PathBuf> {
    let dir = PathBuf::from(var?);
    let meta = std::fs::metadata(&dir).ok()?;
    let usable = dir.is_absolute()
        && meta.is_dir()
        && meta.uid() == geteuid().as_raw()
        && access(&dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
    usable.then_some(dir)
}

/// `<base>/polaris-plugin-host.<uid>`, created 0700 if missing; refused if it
/// is a symlink, not a directory or owned by another user; made 0700 if looser.
fn uid_parent(base: &Path, uid: Uid) -> io::Result<PathBuf> {
    let parent = base.join(format!("{UID_DIR_PREFIX}{uid}"));
    match tree::create_private_dir(&parent) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let refuse = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to use {} for plugin sockets: {why}; remove it, or set \
                 XDG_RUNTIME_DIR or TMPDIR to a directory only you can write",
                parent.display()
            ),
        )
    };
    let fd = match tree::open_dir(&parent) {
        Ok(fd) => fd,
        // Linux says ENOTDIR for a symlink opened with O_DIRECTORY | O_NOFOLLOW.
        Err(_) if parent.is_symlink() => return Err(refuse("it is a symlink".into())),
        Err(_) if !parent.is_dir() => return Err(refuse("it is not a directory".into())),
        Err(e) => return Err(tree::with_path(e, "cannot open", &parent)),
    };
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_uid != uid.as_raw() {
        return Err(refuse(format!(
            "it is owned by uid {}, not by this user (uid {uid})",
            st.st_uid
        )));
    }
    if st.st_mode & 0o777 != 0o700 {
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::S_IRWXU)?;
    }
    Ok(parent)
}

/// Fails if a socket a plugin makes in `dir` could exceed [`MAX_SOCKET_PATH`].
fn fits_socket(dir: &Path) -> io::Result<()> {
    let longest = dir.as_os_str().len() + SOCKET_NAME_ROOM;
    if longest <= MAX_SOCKET_PATH {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "plugin socket directory {} is too long: a socket path in it may take {longest} \
             bytes, over the {MAX_SOCKET_PATH} a unix socket path can hold; set \
             XDG_RUNTIME_DIR or TMPDIR to a shorter directory",
            dir.display()
        ),
    ))
}

#[cfg(test)]
mod tests;
