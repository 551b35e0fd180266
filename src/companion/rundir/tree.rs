//! Removing directory trees the host made, without following symlinks and
//! without touching anything another user owns; and the `flock` helpers.
//!
//! Everything goes through directory file descriptors (`openat`, `fstatat`,
//! `unlinkat` relative to an open directory, `O_NOFOLLOW` on every open), so a
//! plugin that swaps a directory for a symlink while the host empties it
//! cannot send the removal outside the tree.

use std::{
    ffi::{CStr, CString, OsStr},
    fs::{File, OpenOptions},
    io,
    os::{
        fd::OwnedFd,
        unix::{
            ffi::OsStrExt as _,
            fs::{OpenOptionsExt as _, PermissionsExt as _},
        },
    },
    path::{Path, PathBuf},
};

use nix::{
    dir::Dir,
    errno::Errno,
    fcntl::{AtFlags, Flock, FlockArg, OFlag},
    sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat},
    unistd::{Uid, UnlinkatFlags, unlinkat},
};

/// How deep a tree may nest before removal gives up (each level holds a
/// file descriptor open; nothing a plugin legitimately makes comes close).
const MAX_DEPTH: usize = 64;

/// Opens the directory at `path` itself, failing with `ELOOP` if it is a
/// symlink and `ENOTDIR` if it is not a directory.
pub(super) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(path, dir_flags(), Mode::empty()).map_err(io::Error::from)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Removes the entry `path` (a file, a symlink itself, or a directory tree)
/// if it is owned by `uid`. The directory containing it is trusted (one of
/// the host's own); nothing below it is.
pub(super) fn remove_tree(path: &Path, uid: Uid) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no entry to remove", path.display()),
        ));
    };
    let parent_dir = Dir::from_fd(open_dir(parent)?)?;
    remove_at(&parent_dir, parent, &c_name(name)?, uid, 0)
}

/// Removes everything inside the open directory `dir` (at `at`, for
/// messages), not `dir` itself. Tries every entry; returns the first error.
pub(super) fn empty(dir: OwnedFd, at: &Path, uid: Uid) -> io::Result<()> {
    empty_at(dir, at, uid, 0)
}

fn empty_at(dir: OwnedFd, at: &Path, uid: Uid, depth: usize) -> io::Result<()> {
    // A directory of ours made read-only (Go's module cache does that) must be
    // listable and writable to be emptied.
    if fstat(&dir)?.st_mode & 0o700 != 0o700 {
        fchmod(&dir, Mode::S_IRWXU).map_err(|e| with_path(e.into(), "cannot chmod", at))?;
    }
    let mut dir = Dir::from_fd(dir)?;
    let names: Vec<CString> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| !matches!(n.to_bytes(), b"." | b".."))
        .collect();
    let mut result = Ok(());
    for name in names {
        if let Err(e) = remove_at(&dir, at, &name, uid, depth)
            && result.is_ok()
        {
            result = Err(e);
        }
    }
    result
}

/// Removes `name` in the open directory `parent` (at `at`).
fn remove_at(parent: &Dir, at: &Path, name: &CStr, uid: Uid, depth: usize) -> io::Result<()> {
    let path = at.join(OsStr::from_bytes(name.to_bytes()));
    let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(with_path(e.into(), "cannot inspect", &path)),
    };
    check_owner(&st, uid, &path)?;
    let unlinked = if is_dir(&st) {
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!(
                "{} nests deeper than {MAX_DEPTH} directories; left in place",
                path.display()
            )));
        }
        // O_NOFOLLOW: if the entry was swapped for a symlink since fstatat, this fails.
        let fd = nix::fcntl::openat(parent, name, dir_flags(), Mode::empty())
            .map_err(|e| with_path(e.into(), "cannot open", &path))?;
        check_owner(&fstat(&fd)?, uid, &path)?;
        empty_at(fd, &path, uid, depth + 1)?;
        unlinkat(parent, name, UnlinkatFlags::RemoveDir)
    } else {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
    };
    match unlinked {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(with_path(e.into(), "cannot remove", &path)),
    }
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn check_owner(st: &FileStat, uid: Uid, path: &Path) -> io::Result<()> {
    if st.st_uid == uid.as_raw() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is owned by uid {}, not by this host (uid {uid}); left in place",
            path.display(),
            st.st_uid
        ),
    ))
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// `e` with what was being done to which path.
pub(super) fn with_path(e: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

/// Creates (0600) or opens the lock file `path`, never through a symlink,
/// and locks it with `flock`: blocking, or failing with `EWOULDBLOCK`.
pub(super) fn lock(path: &Path, wait: bool) -> io::Result<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| with_path(e, "cannot open lock file", path))?;
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    Flock::lock(file, arg).map_err(|(_, e)| io::Error::from(e))
}

/// Whether a sibling host directory's host still runs.
pub(super) enum HostLiveness {
    /// Its lock is held: the host runs.
    Live,
    /// Its lock could be taken (the kernel released it when the host died,
    /// however it died), held here while the caller removes the directory;
    /// `None` when it has no lock file: its host died while creating it.
    Dead(Option<Flock<File>>),
}

/// Whether the host that made the host directory `dir` is dead. The caller
/// must hold the per-uid parent's lock, under which every host creates its
/// directory and lock file, so a missing lock file means a dead host.
pub(super) fn liveness(dir: &Path) -> io::Result<HostLiveness> {
    let path = dir.join(super::LOCK_FILE);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HostLiveness::Dead(None)),
        Err(e) => return Err(with_path(e, "cannot open", &path)),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(HostLiveness::Dead(Some(lock))),
        Err((_, Errno::EWOULDBLOCK)) => Ok(HostLiveness::Live),
        Err((_, e)) => Err(with_path(e.into(), "cannot lock", &path)),
    }
}

/// Makes `path` mode 0700 whatever the umask.
pub(super) fn make_private(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Creates the directory `path` with mode 0700 (not through a symlink: mkdir
/// never follows one in its last component).
pub(super) fn create_private_dir(path: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| with_path(e, "cannot create", path))?;
    make_private(path)?;
    Ok(path.to_path_buf())
}
