//! Watching a companion's binary (`companion.watch`, or `polaris-plugin run --watch`).
//!
//! The binary's *directory* is watched (deploy tools and editors replace a file by renaming
//! another over it, which a watch on the file itself would miss) with `notify` through
//! `notify-debouncer-mini`, which reports a path only once no event has touched it for
//! [`SETTLE`]: a file still being written is not reported yet. Events for other names in
//! the directory are ignored. A settled binary is then checked ([`check`]): still there,
//! a regular file, executable, its last change at least [`SETTLE`] ago and unchanged while
//! it was hashed, and matching `companion.sha256` when pinned. What passes is handed to the
//! owner, which upgrades blue/green; what does not is reported and waits for the next change.
//!
//! notify reports opens too (inotify `IN_OPEN`): every exec of the binary, and every hash of
//! it, is an event. So a look first compares the binary's identity (device, inode, length,
//! modification time) with the one last started (or found when the watch began): the same
//! file is [`Verdict::Unchanged`] and nothing happens. Without this, each upgrade's own exec
//! would start the next upgrade.
//!
//! The [`Watcher`] lives in the plugin's owner task (its debouncer's threads end when it is
//! dropped: when the owner ends, or when a reload changes the path or turns watching off).

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use notify_debouncer_mini::{
    DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer,
    notify::{RecommendedWatcher, RecursiveMode},
};
use supervisor::BoxFuture;
use tokio::{sync::mpsc, time::Instant};

use super::{
    owner::{poll_opt, sleep_opt},
    pin,
};
use crate::config::{CompanionConfig, Sha256Digest};

/// How long a binary must be left alone before it is started: no event for it in this long
/// (the debouncer's timeout), and its modification time at least this old.
pub(crate) const SETTLE: Duration = Duration::from_secs(1);

/// Settled changes waiting for the owner; more are dropped (one is enough to look again).
const CHANGES: usize = 4;

/// What a look at the binary found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Fit to start.
    Start,
    /// Still changing: look again after this long.
    Wait(Duration),
    /// Not to be started (why, for the log and the event).
    Skip(String),
    /// The file last started (or found when the watch began): it was only opened or read.
    Unchanged,
}

/// The binary's identity and state, to tell whether it changed while it was read, and
/// whether it is the one already started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

/// Looks at the binary at `path` (blocking: it may hash the whole file); `known` is the
/// binary last started. With [`Verdict::Start`], the started binary's identity.
pub(crate) fn check(
    path: &Path,
    pin: Option<&Sha256Digest>,
    known: Option<&Stamp>,
) -> (Verdict, Option<Stamp>) {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            let why = format!("binary {} cannot be read ({e})", path.display());
            return (Verdict::Skip(why), None);
        }
    };
    if known == Some(&Stamp::of(&meta)) {
        return (Verdict::Unchanged, None);
    }
    match look_at(path, &meta, pin) {
        Verdict::Start => (Verdict::Start, Some(Stamp::of(&meta))),
        verdict => (verdict, None),
    }
}

fn look_at(path: &Path, meta: &fs::Metadata, pin: Option<&Sha256Digest>) -> Verdict {
    let shown = path.display();
    if !meta.is_file() {
        return Verdict::Skip(format!("binary {shown} is not a regular file"));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Verdict::Skip(format!(
            "binary {shown} is not executable (mode {:o})",
            mode & 0o7777
        ));
    }
    if let Some(age) = meta.modified().ok().and_then(|m| m.elapsed().ok())
        && age < SETTLE
    {
        return Verdict::Wait(SETTLE - age);
    }
    let before = Stamp::of(meta);
    if let Some(pin) = pin {
        match pin::open_checked(path, pin) {
            Ok(_) => {}
            Err(why) => return Verdict::Skip(why),
        }
    }
    match fs::metadata(path) {
        Ok(after) if Stamp::of(&after) == before => Verdict::Start,
        _ => Verdict::Wait(SETTLE),
    }
}

/// The binary's directory under watch, and its settled changes.
struct BinaryWatch {
    path: PathBuf,
    changes: mpsc::Receiver<()>,
    /// Stops the watch (and ends its threads) when dropped.
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl BinaryWatch {
    fn start(path: &Path) -> Result<Self, String> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(format!("{} has no directory to watch", path.display()));
        };
        let name = name.to_owned();
        let (tx, changes) = mpsc::channel(CHANGES);
        let mut debouncer = new_debouncer(SETTLE, move |result: DebounceEventResult| {
            let settled = match result {
                Ok(events) => events.iter().any(|e| {
                    e.kind == DebouncedEventKind::Any && e.path.file_name() == Some(&name)
                }),
                // Missed events (an overflowing queue): look anyway.
                Err(_) => true,
            };
            if settled {
                let _ = tx.try_send(());
            }
        })
        .map_err(|e| e.to_string())?;
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        Ok(BinaryWatch {
            path: path.to_owned(),
            changes,
            _debouncer: debouncer,
        })
    }
}

/// A companion's binary watch as its owner holds it: the watch (when on), the look in
/// progress, a pending look again.
pub(crate) struct Watcher {
    name: String,
    watch: Option<BinaryWatch>,
    pin: Option<Sha256Digest>,
    looking: Option<BoxFuture<'static, (Verdict, Option<Stamp>)>>,
    again_at: Option<Instant>,
    /// The binary last started (or found when the watch began), and the one before it
    /// (restored when a start is deferred).
    known: Option<Stamp>,
    previous: Option<Stamp>,
    /// A binary passed while an upgrade was running: look again when it ends.
    deferred: bool,
}

impl Watcher {
    pub(crate) fn new(name: &str) -> Self {
        Watcher {
            name: name.to_owned(),
            watch: None,
            pin: None,
            looking: None,
            again_at: None,
            known: None,
            previous: None,
            deferred: false,
        }
    }

    /// Watches `companion.path` when `companion.watch` is on (and nothing otherwise),
    /// keeping a watch on the same path.
    pub(crate) fn follow(&mut self, companion: &CompanionConfig) {
        self.pin = companion.sha256;
        let want = companion.watch.then_some(&companion.path);
        if self.watch.as_ref().map(|w| &w.path) == want {
            return;
        }
        self.watch = None;
        self.looking = None;
        self.again_at = None;
        self.deferred = false;
        let Some(path) = want else { return };
        self.known = fs::metadata(path).ok().map(|m| Stamp::of(&m));
        self.previous = None;
        match BinaryWatch::start(path) {
            Ok(watch) => {
                tracing::info!(plugin = %self.name, binary = %path.display(), "watching the binary; a settled replacement upgrades the plugin");
                self.watch = Some(watch);
            }
            Err(error) => {
                tracing::warn!(plugin = %self.name, binary = %path.display(), %error, "cannot watch the binary; it is not upgraded when replaced");
            }
        }
    }

    /// The binary being watched.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.watch.as_ref().map(|w| w.path.as_path())
    }

    /// A binary passed while an upgrade was running: look again once it has ended.
    pub(crate) fn defer(&mut self) {
        self.deferred = true;
        // Not started yet: the next look must not find it "unchanged".
        self.known = self.previous.take();
    }

    /// An upgrade ended: look again if a change came meanwhile.
    pub(crate) fn upgrade_ended(&mut self) {
        if std::mem::take(&mut self.deferred) {
            self.look();
        }
    }

    fn look(&mut self) {
        let (Some(watch), pin) = (&self.watch, self.pin) else {
            return;
        };
        let path = watch.path.clone();
        let known = self.known.clone();
        self.again_at = None;
        self.looking = Some(Box::pin(async move {
            tokio::task::spawn_blocking(move || check(&path, pin.as_ref(), known.as_ref()))
                .await
                .unwrap_or_else(|_| {
                    let why = "checking the binary panicked".to_owned();
                    (Verdict::Skip(why), None)
                })
        }));
    }

    /// The next verdict on a settled binary: [`Verdict::Start`] or [`Verdict::Skip`] (a
    /// binary still changing is looked at again by itself). Never resolves without a
    /// watch. Cancel-safe: what is in progress stays in `self`.
    pub(crate) async fn next(&mut self) -> Verdict {
        loop {
            let Some(watch) = self.watch.as_mut() else {
                return std::future::pending().await;
            };
            tokio::select! {
                Some(()) = watch.changes.recv() => self.look(),
                (verdict, stamp) = poll_opt(&mut self.looking) => {
                    self.looking = None;
                    match verdict {
                        Verdict::Wait(after) => {
                            self.again_at = Some(supervisor::deadline(Instant::now(), after));
                        }
                        Verdict::Unchanged => {}
                        Verdict::Start => {
                            self.previous = std::mem::replace(&mut self.known, stamp);
                            return Verdict::Start;
                        }
                        verdict => return verdict,
                    }
                }
                () = sleep_opt(self.again_at) => self.look(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "polaris-watch-unit-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn put(path: &Path, bytes: &[u8], mode: u32, age: Duration) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn only_a_settled_executable_regular_file_matching_its_pin_starts() {
        let dir = scratch();
        let bin = dir.join("bin");
        let old = Duration::from_secs(60);
        put(&bin, b"abc", 0o755, old);
        let (verdict, started) = check(&bin, None, None);
        assert_eq!(verdict, Verdict::Start);
        // The same file, only opened or read since: nothing to do.
        assert_eq!(check(&bin, None, started.as_ref()).0, Verdict::Unchanged);
        let check = |bin: &Path, pin: Option<&Sha256Digest>| check(bin, pin, None).0;
        let abc: Sha256Digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            .parse()
            .unwrap();
        assert_eq!(check(&bin, Some(&abc)), Verdict::Start);
        let other = Sha256Digest::from_bytes([1; 32]);
        assert_eq!(
            check(&bin, Some(&other)),
            Verdict::Skip(pin::mismatch(&bin, &abc, &other))
        );

        put(&bin, b"abc", 0o644, old);
        assert_eq!(
            check(&bin, None),
            Verdict::Skip(format!(
                "binary {} is not executable (mode 644)",
                bin.display()
            ))
        );

        put(&bin, b"abc", 0o755, Duration::ZERO);
        assert!(
            matches!(check(&bin, None), Verdict::Wait(d) if d <= SETTLE),
            "a file changed just now is not started yet"
        );

        fs::remove_file(&bin).unwrap();
        fs::create_dir(&bin).unwrap();
        assert_eq!(
            check(&bin, None),
            Verdict::Skip(format!("binary {} is not a regular file", bin.display()))
        );
        fs::remove_dir(&bin).unwrap();
        assert!(matches!(check(&bin, None), Verdict::Skip(why) if why.contains("cannot be read")));
        fs::remove_dir_all(&dir).unwrap();
    }
}
