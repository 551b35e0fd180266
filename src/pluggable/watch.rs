//! Watching the folder with `notify` (inotify on Linux), without debouncing: a socket is
//! complete when its file appears (`bind` creates it), so any change is a reason to look
//! again at once, and the look (not the event) says what changed. Reads are not changes
//! (a look reads the folder: it must not wake the next one).
//!
//! While the folder does not exist, its nearest existing ancestor is watched instead, so
//! that the folder is picked up when it is created; when it is deleted, the watch goes
//! back to the ancestor. The watcher's thread ends when the [`FolderWatch`] is dropped.

use std::path::{Path, PathBuf};

use notify_debouncer_mini::notify::{self, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// The folder (or its nearest existing ancestor) under watch, and a signal per change.
pub(crate) struct FolderWatch {
    folder: PathBuf,
    /// What is watched now: the folder, an ancestor, or nothing yet.
    watching: Option<PathBuf>,
    watcher: RecommendedWatcher,
    changes: mpsc::Receiver<()>,
}

impl FolderWatch {
    /// A watch for `folder`; [`aim`](Self::aim) starts it.
    pub(crate) fn new(folder: &Path) -> Result<Self, String> {
        // One pending signal is enough: the look that follows sees every change.
        let (tx, changes) = mpsc::channel(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if is_change(&event) {
                let _ = tx.try_send(());
            }
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        Ok(FolderWatch {
            folder: folder.to_owned(),
            watching: None,
            watcher,
            changes,
        })
    }

    /// Watches the folder if it is a directory now, else its nearest existing ancestor.
    /// Returns the path watched (`None`: nothing could be).
    pub(crate) fn aim(&mut self) -> Option<&Path> {
        let target = self
            .folder
            .ancestors()
            .find(|dir| dir.is_dir())
            .map(Path::to_path_buf);
        if target != self.watching {
            if let Some(old) = self.watching.take() {
                // Fails when the folder went with its watch: nothing left to stop.
                let _ = self.watcher.unwatch(&old);
            }
            if let Some(dir) = &target {
                match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => self.watching = Some(dir.clone()),
                    Err(e) => {
                        tracing::warn!(folder = %self.folder.display(), watched = %dir.display(), error = %e, "cannot watch the pluggable folder; sockets are picked up only at the next change that is seen");
                    }
                }
            }
        }
        self.watching.as_deref()
    }

    /// Waits for the next change.
    pub(crate) async fn changed(&mut self) {
        if self.changes.recv().await.is_none() {
            // The watcher is ours and lives as long as self: never closed.
            std::future::pending::<()>().await;
        }
    }
}

/// Whether an event is a reason to look again: anything but a read. A look opens and
/// reads the folder, which inotify reports (`IN_OPEN`, `IN_CLOSE_NOWRITE`): taken as a
/// change, each look would wake the next, for ever. An error (an overflowing queue) is a
/// reason to look.
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    !matches!(
        event,
        Ok(notify::Event {
            kind: notify::EventKind::Access(_),
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use notify::{
        Event, EventKind,
        event::{AccessKind, AccessMode, CreateKind, RemoveKind},
    };

    use super::*;

    #[test]
    fn reads_of_the_folder_are_not_changes() {
        let event = |kind| Ok(Event::new(kind));
        assert!(!is_change(&event(EventKind::Access(AccessKind::Open(
            AccessMode::Any
        )))));
        assert!(!is_change(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))));
        assert!(is_change(&event(EventKind::Create(CreateKind::Any))));
        assert!(is_change(&event(EventKind::Remove(RemoveKind::Any))));
        assert!(is_change(&event(EventKind::Any)));
        assert!(is_change(&Err(notify::Error::generic("queue overflow"))));
    }
}
