//! The discovery task: the one owner of the pluggable plugins. It looks at the folder at
//! start and after every change the watch reports, probes each new socket, registers
//! the ones that answer gRPC, and takes out (and destroys) those whose socket went.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    io,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    sync::Arc,
};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    diff::{self, Changes},
    name::name_of,
    probe::{self, Probed},
    scan::{self, Stamp},
    watch::FolderWatch,
};
use crate::{
    config::PluggableConfig,
    events::{EventKind, Events},
    plugin::PluginHandle,
    registry::{self, SharedSet},
};

/// What the task knows of one socket in the folder.
enum Known {
    /// Being probed.
    Probing { stamp: Stamp, name: String },
    /// A plugin of the registry.
    Plugin { stamp: Stamp, handle: PluginHandle },
    /// Not a plugin: looked at again only when the file is replaced.
    Skipped { stamp: Stamp },
    /// Its name is taken (by a configured plugin or another socket): looked at again at
    /// every look, and taken up once the name is free.
    NameTaken { stamp: Stamp, name: String },
}

impl Known {
    fn stamp(&self) -> Stamp {
        match self {
            Known::Probing { stamp, .. }
            | Known::Plugin { stamp, .. }
            | Known::Skipped { stamp }
            | Known::NameTaken { stamp, .. } => *stamp,
        }
    }

    /// The name this socket holds (or is about to).
    fn holds(&self) -> Option<&str> {
        match self {
            Known::Probing { name, .. } => Some(name),
            Known::Plugin { handle, .. } => Some(handle.name()),
            Known::Skipped { .. } | Known::NameTaken { .. } => None,
        }
    }
}

/// Whether the folder could be read at the last look, to report each change once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FolderState {
    Unknown,
    Readable,
    Unreadable(String),
}

type ProbeResult = (OsString, Stamp, Result<Probed, String>);

pub(super) struct Finder {
    pub(super) config: PluggableConfig,
    pub(super) set: SharedSet,
    pub(super) events: Events,
    known: BTreeMap<OsString, Known>,
    probes: JoinSet<ProbeResult>,
    /// Destroys of plugins whose socket went (they drain their calls first).
    removals: JoinSet<()>,
    folder_state: FolderState,
}

impl Finder {
    pub(super) fn new(config: PluggableConfig, set: SharedSet, events: Events) -> Self {
        Finder {
            config,
            set,
            events,
            known: BTreeMap::new(),
            probes: JoinSet::new(),
            removals: JoinSet::new(),
            folder_state: FolderState::Unknown,
        }
    }

    /// Starts the watch and looks at the folder once, now: when this returns, the sockets
    /// already there are being probed, and a missing folder is watched for.
    pub(super) fn first_look(&mut self) -> Option<FolderWatch> {
        let folder = &self.config.folder;
        tracing::info!(folder = %folder.display(), "watching the pluggable folder for plugins' unix sockets");
        let mut watch = match FolderWatch::new(folder) {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::warn!(folder = %folder.display(), %error, "cannot watch the pluggable folder; it is looked at once");
                None
            }
        };
        if let Some(watch) = &mut watch {
            watch.aim();
        }
        self.look();
        watch
    }

    /// Runs until `stop`, then lets the destroys in progress finish. The watch (and its
    /// thread) and any probe in progress end with it.
    pub(super) async fn run(
        mut self,
        mut watch: Option<FolderWatch>,
        asked: Arc<tokio::sync::Notify>,
        stop: CancellationToken,
    ) {
        let mut look = false;
        loop {
            if look {
                look = false;
                if let Some(watch) = &mut watch {
                    watch.aim();
                }
                self.look();
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = changed(&mut watch) => look = true,
                () = asked.notified() => look = true,
                Some(result) = self.probes.join_next() => {
                    if let Ok((file, stamp, result)) = result {
                        self.probed(file, stamp, result);
                        // A socket skipped for its name may have it now.
                        look = true;
                    }
                }
                Some(_) = self.removals.join_next() => {}
            }
        }
        drop(watch);
        self.probes.abort_all();
        while self.removals.join_next().await.is_some() {}
    }

    /// One look at the folder: registers nothing itself, but starts probes and removals.
    fn look(&mut self) {
        let found = match scan::sockets(&self.config.folder) {
            Ok(found) => {
                self.folder_is(FolderState::Readable);
                found
            }
            Err(e) => {
                self.folder_is(FolderState::Unreadable(unreadable(&e)));
                if !gone(&e) {
                    // Cannot be read now (permissions, out of file descriptors): what is
                    // known stays; the next change looks again.
                    return;
                }
                BTreeMap::new()
            }
        };
        let known: BTreeMap<OsString, Stamp> = self
            .known
            .iter()
            .map(|(k, v)| (k.clone(), v.stamp()))
            .collect();
        let Changes {
            added,
            removed,
            replaced,
        } = diff::diff(&known, &found);
        for file in removed.iter().chain(&replaced) {
            self.forget(file);
        }
        for file in added.iter().chain(&replaced) {
            self.consider(file.clone(), found[file]);
        }
        // Sockets waiting for their name.
        let waiting: Vec<(OsString, Stamp)> = self
            .known
            .iter()
            .filter(|(_, k)| matches!(k, Known::NameTaken { .. }))
            .map(|(file, k)| (file.clone(), k.stamp()))
            .collect();
        for (file, stamp) in waiting {
            if let Some(Known::NameTaken { name, .. }) = self.known.get(&file)
                && self.name_free(name, &file)
            {
                self.known.remove(&file);
                self.consider(file, stamp);
            }
        }
    }

    /// A socket that is gone (or replaced): its plugin leaves the registry and is destroyed.
    fn forget(&mut self, file: &OsString) {
        let Some(Known::Plugin { handle, .. }) = self.known.remove(file) else {
            // A probe in progress finds its entry gone and is dropped.
            return;
        };
        let socket = self.config.folder.join(file);
        if registry::remove_discovered(&self.set, &handle) {
            tracing::info!(plugin = %handle.name(), socket = %socket.display(), "pluggable socket went: the plugin is removed and destroyed");
            self.events
                .emit(&Arc::from(handle.name()), EventKind::Removed, |e| {
                    e.state = handle.status().state.to_string();
                    e.reason = Some(format!("socket {} went", socket.display()));
                });
        }
        self.removals.spawn(async move { handle.destroy().await });
    }

    /// A new (or replaced) socket: probed, unless its name is unusable or taken.
    fn consider(&mut self, file: OsString, stamp: Stamp) {
        let name = match name_of(&file) {
            Ok(name) => name,
            Err(why) => {
                self.skip(&file.to_string_lossy(), &file, &why);
                self.known.insert(file, Known::Skipped { stamp });
                return;
            }
        };
        if !self.name_free(&name, &file) {
            let why = format!(
                "the plugin name {name:?} is taken (by a configured plugin or another socket); it is taken up when the name is free"
            );
            self.skip(&name, &file, &why);
            self.known.insert(file, Known::NameTaken { stamp, name });
            return;
        }
        let socket = self.config.folder.join(&file);
        let settings = self.config.plugin_at(&name, &socket);
        self.known
            .insert(file.clone(), Known::Probing { stamp, name });
        self.probes.spawn(async move {
            let result = probe::probe(&socket, &settings).await;
            (file, stamp, result)
        });
    }

    /// A probe's answer, for the socket as it was when the probe began.
    fn probed(&mut self, file: OsString, stamp: Stamp, result: Result<Probed, String>) {
        let name = match self.known.get(&file) {
            Some(Known::Probing { stamp: s, name }) if *s == stamp => name.clone(),
            // Gone or replaced meanwhile: the next look deals with the new file.
            _ => return,
        };
        let socket = self.config.folder.join(&file);
        let probed = match result {
            Ok(probed) => probed,
            Err(why) => {
                self.skip(&name, &file, &why);
                self.known.insert(file, Known::Skipped { stamp });
                return;
            }
        };
        let config = self.config.plugin_at(&name, &socket);
        let Some(handle) =
            registry::start_pluggable(&config, &self.events, probed.services.clone())
        else {
            return;
        };
        if let Err(why) = registry::add_discovered(&self.set, handle.clone(), config) {
            // A reload gave the name to a configured plugin meanwhile.
            self.removals.spawn(async move { handle.destroy().await });
            self.skip(&name, &file, &why);
            self.known.insert(file, Known::NameTaken { stamp, name });
            return;
        }
        let services = match &probed.services {
            Some(list) if list.is_empty() => "no services".to_owned(),
            Some(list) => list.join(", "),
            None => "services not listed (it serves no gRPC reflection)".to_owned(),
        };
        tracing::info!(plugin = %name, socket = %socket.display(), %services, "pluggable plugin found");
        self.events
            .emit(&Arc::from(name.as_str()), EventKind::Discovered, |e| {
                e.state = handle.status().state.to_string();
                e.reason = Some(format!("socket {}: {services}", socket.display()));
            });
        self.known.insert(file, Known::Plugin { stamp, handle });
    }

    /// Whether `name` is free for the socket `file`: no plugin of the registry and no
    /// other socket holds it.
    fn name_free(&self, name: &str, file: &OsString) -> bool {
        let held = self
            .known
            .iter()
            .any(|(f, k)| f != file && k.holds() == Some(name));
        !held && !registry::has_name(&self.set, name)
    }

    fn skip(&self, name: &str, file: &OsString, why: &str) {
        let socket = self.config.folder.join(file);
        tracing::warn!(plugin = %name, socket = %socket.display(), reason = %why, "pluggable socket skipped; it is looked at again when the file is replaced");
        self.events
            .emit(&Arc::from(name), EventKind::SocketSkipped, |e| {
                e.state = "skipped".to_owned();
                e.reason = Some(format!("socket {}: {why}", socket.display()));
            });
    }

    /// Reports a change of the folder's state once, and a folder others may write to.
    fn folder_is(&mut self, state: FolderState) {
        if self.folder_state == state {
            return;
        }
        let folder = self.config.folder.display();
        match &state {
            FolderState::Readable => {
                tracing::info!(folder = %folder, "pluggable folder found");
                if let Some(why) = too_open(&self.config.folder) {
                    tracing::warn!(folder = %folder, "{why}");
                }
            }
            FolderState::Unreadable(why) => {
                tracing::warn!(folder = %folder, "pluggable folder {why}; the host does not create it, and picks it up when it appears");
            }
            FolderState::Unknown => {}
        }
        self.folder_state = state;
    }
}

/// Waits for the watch's next change (never, without a watch).
async fn changed(watch: &mut Option<FolderWatch>) {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// Whether the error says the folder is not there (so neither are its sockets).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn unreadable(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "does not exist".to_owned(),
        io::ErrorKind::NotADirectory => "is not a directory".to_owned(),
        _ => format!("cannot be read ({e})"),
    }
}

/// Why the folder lets others register plugins, if it does: whoever can create a socket
/// in it can.
pub(super) fn too_open(folder: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(folder).ok()?;
    let mode = meta.permissions().mode() & 0o7777;
    let me = nix::unistd::geteuid().as_raw();
    if mode & 0o002 != 0 {
        Some(format!(
            "the pluggable folder is writable by every user (mode {mode:o}): anyone on this machine can register a plugin by placing a socket there; make it private to the host's user or group (chmod 0750)"
        ))
    } else if meta.uid() != me && meta.uid() != 0 {
        Some(format!(
            "the pluggable folder belongs to uid {}, not to the host's user ({me}) or root: that user decides who can register plugins",
            meta.uid()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_folder_every_user_can_write_to_is_reported() {
        let dir = std::env::temp_dir().join(format!("polaris-open-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let chmod = |mode| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
        chmod(0o777).unwrap();
        let why = too_open(&dir).expect("world-writable");
        assert!(
            why.contains("anyone on this machine can register a plugin"),
            "{why}"
        );
        chmod(0o750).unwrap();
        assert_eq!(too_open(&dir), None);
        std::fs::remove_dir(&dir).unwrap();
    }
}
