//! [`Registry`]: named plugins loaded from YAML, calls by name, reload, Destroy.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures_util::future::join_all;
use parking_lot::RwLock;

use crate::{
    Error,
    call::admission::Admission,
    companion,
    config::{Config, PluggableConfig, PluginConfig, PluginKind},
    events::Events,
    pluggable::Discovery,
    plugin::PluginHandle,
    proto::polaris::{Request, Response},
    remote,
};

/// The host's plugins by name. Companion plugins are launched and supervised
/// from the moment the registry is built; remote plugins connect in the
/// background. Calls wait for a plugin that is still starting, up to its
/// call timeout. [`reload`](Self::reload) changes the set while calls go on.
/// With a `pluggable:` section, the plugins whose unix sockets appear in its folder join
/// the set (mode `pluggable`) and leave it when their sockets go (`docs/pluggable.md`).
///
/// Dropping the registry (and every [`PluginHandle`]) without
/// [`destroy`](Self::destroy) still kills every companion process; `destroy`
/// is the graceful path.
#[derive(Debug)]
pub struct Registry {
    /// The plugins now; a reload publishes a new set, and so does the pluggable
    /// discovery (which holds the other reference) when a socket comes or goes.
    set: SharedSet,
    events: Events,
    /// The pluggable folder's discovery task and the section it runs with; stopped by
    /// destroy, by a reload that changes or drops the section, and with the registry.
    discovery: parking_lot::Mutex<Option<(PluggableConfig, Discovery)>>,
    /// The file the configuration came from, for [`reload_file`](Self::reload_file).
    source: Option<PathBuf>,
    /// Every companion's binary is watched (`run --watch`), reloads included.
    watch_all: bool,
    /// One reload at a time; destroy waits for a reload in progress.
    reloading: tokio::sync::Mutex<()>,
    /// Set by destroy: no reload starts a plugin afterwards.
    destroyed: std::sync::atomic::AtomicBool,
    /// What the reloads did.
    reloads: RwLock<Reloads>,
}

/// The plugin set, shared by the registry and its pluggable discovery; each swaps in a
/// new set under the write lock, built from the set it finds there, so neither loses the
/// other's change.
pub(crate) type SharedSet = Arc<RwLock<Arc<PluginSet>>>;

#[derive(Debug, Default)]
pub(crate) struct PluginSet {
    /// The configured plugins in configuration order, then the discovered ones in the
    /// order they were found.
    plugins: Vec<PluginHandle>,
    /// Each plugin's configuration, in the same order.
    configs: Vec<PluginConfig>,
    /// How many of them (the first) the configuration names.
    configured: usize,
    by_name: HashMap<String, usize>,
}

type Entries = Vec<(PluginHandle, PluginConfig)>;

impl PluginSet {
    fn new(configured: Entries, discovered: Entries) -> Self {
        let count = configured.len();
        let entries: Entries = configured.into_iter().chain(discovered).collect();
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, (_, c))| (c.name.clone(), i))
            .collect();
        let (plugins, configs) = entries.into_iter().unzip();
        PluginSet {
            plugins,
            configs,
            configured: count,
            by_name,
        }
    }

    fn get(&self, name: &str) -> Option<&PluginHandle> {
        self.by_name.get(name).map(|&i| &self.plugins[i])
    }

    /// A configured plugin (not a discovered one) and its configuration.
    fn configured(&self, name: &str) -> Option<(&PluginHandle, &PluginConfig)> {
        self.by_name
            .get(name)
            .filter(|&&i| i < self.configured)
            .map(|&i| (&self.plugins[i], &self.configs[i]))
    }

    /// The configured entries, or the discovered ones.
    fn part(&self, discovered: bool) -> Entries {
        let range = if discovered {
            self.configured..self.plugins.len()
        } else {
            0..self.configured
        };
        self.plugins[range.clone()]
            .iter()
            .cloned()
            .zip(self.configs[range].iter().cloned())
            .collect()
    }
}

/// Adds a discovered plugin unless its name is taken (then says by what).
pub(crate) fn add_discovered(
    set: &SharedSet,
    handle: PluginHandle,
    config: PluginConfig,
) -> Result<(), String> {
    let mut set = set.write();
    if let Some(&i) = set.by_name.get(&config.name) {
        let by = if i < set.configured {
            "a configured plugin"
        } else {
            "another pluggable plugin"
        };
        return Err(format!("the name {:?} is taken by {by}", config.name));
    }
    let mut discovered = set.part(true);
    discovered.push((handle, config));
    *set = Arc::new(PluginSet::new(set.part(false), discovered));
    Ok(())
}

/// Takes a discovered plugin out of the set, if it (this very plugin, not another of the
/// same name) is still in it.
pub(crate) fn remove_discovered(set: &SharedSet, handle: &PluginHandle) -> bool {
    let mut set = set.write();
    let mut discovered = set.part(true);
    let before = discovered.len();
    discovered.retain(|(h, _)| !h.same(handle));
    if discovered.len() == before {
        return false;
    }
    *set = Arc::new(PluginSet::new(set.part(false), discovered));
    true
}

/// Whether `name` is a plugin of the set now.
pub(crate) fn has_name(set: &SharedSet, name: &str) -> bool {
    set.read().by_name.contains_key(name)
}

/// Reloads so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reloads {
    /// Reloads carried out (some plugins may have failed to change; see `last`).
    pub done: u64,
    /// Reloads refused whole (an invalid configuration): nothing changed.
    pub refused: u64,
    /// When the last one ended and what it did (`Err`: refused, with why).
    pub last: Option<(SystemTime, Result<ReloadReport, String>)>,
}

/// What a reload did, plugin by plugin.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// New plugins, started.
    pub added: Vec<String>,
    /// Plugins no longer configured, destroyed (their calls drained first).
    pub removed: Vec<String>,
    /// Plugins whose configuration changed, upgraded without a gap (blue/green).
    pub changed: Vec<String>,
    /// Plugins whose mode changed (companion ↔ remote), replaced: destroyed, then
    /// started anew.
    pub replaced: Vec<String>,
    /// Plugins left as they were.
    pub unchanged: Vec<String>,
    /// Plugins whose change failed, and why; each goes on as before, with its old
    /// configuration.
    pub failed: Vec<(String, String)>,
}

impl Registry {
    /// Loads the YAML file at `path` (the Polaris host config, or the native
    /// `plugins:` list; see `docs/configuration.md`), validates it and starts
    /// every plugin. Must be called inside a tokio runtime.
    /// [`reload_file`](Self::reload_file) reads the file again.
    pub async fn from_yaml(path: impl AsRef<Path>) -> Result<Self, Error> {
        let config = Config::from_file(path.as_ref())?;
        Ok(Self::from_config(config)?.with_source(path.as_ref()))
    }

    /// Like [`from_yaml`](Self::from_yaml) from a string; relative paths are
    /// relative to the current directory.
    pub async fn from_yaml_str(yaml: &str) -> Result<Self, Error> {
        let base = std::env::current_dir().unwrap_or_else(|_| ".".into());
        let config = Config::from_yaml_str(yaml, &base)?;
        Self::from_config(config)
    }

    /// Validates `config` ([`Config::validate`]: a hand-built one may break
    /// rules the YAML loader enforces) and starts every plugin. Must be called
    /// inside a tokio runtime.
    pub fn from_config(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let events = Events::default();
        let entries = config
            .plugins
            .into_iter()
            .map(|plugin| (start(&plugin, &events), plugin))
            .collect();
        let set: SharedSet = Arc::new(RwLock::new(Arc::new(PluginSet::new(entries, Vec::new()))));
        let discovery = config
            .pluggable
            .map(|p| (p.clone(), Discovery::start(p, set.clone(), events.clone())));
        Ok(Registry {
            set,
            discovery: parking_lot::Mutex::new(discovery),
            events,
            source: None,
            watch_all: false,
            reloading: tokio::sync::Mutex::default(),
            destroyed: std::sync::atomic::AtomicBool::new(false),
            reloads: RwLock::default(),
        })
    }

    /// The file [`reload_file`](Self::reload_file) reads (`from_yaml` sets it).
    pub fn with_source(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(path.into());
        self
    }

    /// Turns `companion.watch` on for every companion of the configurations
    /// [`reload`](Self::reload) is given from now on (`polaris-plugin run --watch`; the
    /// configuration this registry started with is the caller's: see
    /// [`Config::watch_companions`]).
    pub fn watching_all(mut self) -> Self {
        self.watch_all = true;
        self
    }

    /// The file the configuration is reloaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    fn set(&self) -> Arc<PluginSet> {
        self.set.read().clone()
    }

    /// Calls plugin `name` (see [`PluginHandle::call`]).
    pub async fn call(&self, name: &str, request: Request) -> Result<Response, Error> {
        let plugin = self.set.read().get(name).cloned();
        match plugin {
            Some(plugin) => plugin.call(request).await,
            None => Err(self.unknown(name)),
        }
    }

    /// The handle of plugin `name`.
    pub fn get(&self, name: &str) -> Option<PluginHandle> {
        self.set.read().get(name).cloned()
    }

    /// The handle of plugin `name`, or an error listing the configured names.
    pub fn plugin(&self, name: &str) -> Result<PluginHandle, Error> {
        self.get(name).ok_or_else(|| self.unknown(name))
    }

    /// Every plugin now, in configuration order, then the pluggable ones in the order
    /// they were found.
    pub fn plugins(&self) -> Vec<PluginHandle> {
        self.set().plugins.clone()
    }

    /// The names of [`plugins`](Self::plugins), in that order.
    pub fn names(&self) -> Vec<String> {
        self.set().configs.iter().map(|c| c.name.clone()).collect()
    }

    /// The lifecycle event log of every plugin: state changes and exits, in order
    /// ([`Events::subscribe`] to follow it).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Waits until every plugin is ready, at most `timeout` in all.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let plugins = self.plugins();
        let waits = plugins.iter().map(|p| p.wait_ready(timeout));
        for result in join_all(waits).await {
            result?;
        }
        Ok(())
    }

    /// Reads the source file again and [`reload`](Self::reload)s it.
    pub async fn reload_file(&self) -> Result<ReloadReport, Error> {
        let Some(path) = &self.source else {
            return Err(Error::NoSource);
        };
        match Config::from_file(path) {
            Ok(config) => self.reload(config).await,
            Err(e) => {
                self.refused(e.to_string());
                Err(e.into())
            }
        }
    }

    /// Makes the running set match `config`, without dropping a call: plugins added are
    /// started; removed ones are destroyed gracefully (their calls drained); changed ones
    /// are upgraded blue/green ([`PluginHandle::upgrade`]: a companion's new process
    /// takes over once ready, a remote plugin's new connection once connected), and keep
    /// their handles; unchanged ones are left alone (same process, same connection). A
    /// plugin whose mode changes is replaced (destroyed, then started anew).
    ///
    /// Pluggable plugins stay (their sockets decide), except one whose name the new
    /// configuration gives a configured plugin (destroyed; the configured one wins), and
    /// all of them when the `pluggable:` section changes: the folder is then discovered
    /// anew with the new settings.
    ///
    /// An invalid `config` is refused whole ([`Config::validate`]) and nothing changes.
    /// A changed plugin whose new process (or connection) does not become ready goes on
    /// as before; the report says why. One reload runs at a time.
    pub async fn reload(&self, mut config: Config) -> Result<ReloadReport, Error> {
        let _one_at_a_time = self.reloading.lock().await;
        if self.destroyed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::RegistryDestroyed);
        }
        if self.watch_all {
            config.watch_companions();
        }
        if let Err(e) = config.validate() {
            self.refused(e.to_string());
            return Err(e.into());
        }
        let old = self.set();
        let mut report = ReloadReport::default();
        let mut upgrades = Vec::new();
        let mut entries = Vec::with_capacity(config.plugins.len());
        let mut retired = Vec::new();
        for plugin in config.plugins {
            let name = plugin.name.clone();
            let Some((handle, was)) = old.configured(&name) else {
                report.added.push(name);
                entries.push((start(&plugin, &self.events), plugin));
                continue;
            };
            if *was == plugin {
                report.unchanged.push(name);
                entries.push((handle.clone(), plugin));
            } else if same_mode(was, &plugin) {
                upgrades.push((entries.len(), handle.clone(), was.clone(), plugin.clone()));
                entries.push((handle.clone(), plugin));
            } else {
                report.replaced.push(name);
                retired.push(handle.clone());
                entries.push((start(&plugin, &self.events), plugin));
            }
        }
        let results = join_all(
            upgrades
                .iter()
                .map(|(_, handle, _, plugin)| handle.upgrade_to(plugin.clone())),
        )
        .await;
        for ((i, _, was, plugin), result) in upgrades.into_iter().zip(results) {
            match result {
                Ok(()) => report.changed.push(plugin.name),
                Err(e) => {
                    // It goes on with its old configuration; the next reload tries again.
                    entries[i].1 = was;
                    report.failed.push((plugin.name, e.to_string()));
                }
            }
        }
        let kept: HashMap<String, ()> = entries.iter().map(|(_, c)| (c.name.clone(), ())).collect();
        for (handle, config) in old.part(false) {
            if !kept.contains_key(config.name.as_str()) {
                report.removed.push(config.name);
                retired.push(handle);
            }
        }
        // A changed pluggable section: the old discovery ends and its plugins go.
        let rediscover =
            self.discovery.lock().as_ref().map(|(p, _)| p) != config.pluggable.as_ref();
        let stopped = if rediscover {
            self.discovery.lock().take()
        } else {
            None
        };
        if let Some((_, discovery)) = stopped {
            discovery.stop().await;
        }
        {
            // Built from the set as it is now: the discovery may have changed it meanwhile.
            let mut set = self.set.write();
            let mut discovered = set.part(true);
            discovered.retain(|(handle, c)| {
                let keep = !rediscover && !kept.contains_key(c.name.as_str());
                if !keep {
                    report.removed.push(c.name.clone());
                    retired.push(handle.clone());
                }
                keep
            });
            *set = Arc::new(PluginSet::new(entries, discovered));
        }
        if rediscover && let Some(pluggable) = config.pluggable {
            let discovery =
                Discovery::start(pluggable.clone(), self.set.clone(), self.events.clone());
            *self.discovery.lock() = Some((pluggable, discovery));
        } else if let Some((_, discovery)) = &*self.discovery.lock() {
            // A configured plugin removed may free the name a socket waits for.
            discovery.look_again();
        }
        join_all(retired.iter().map(PluginHandle::destroy)).await;
        tracing::info!(
            added = ?report.added,
            removed = ?report.removed,
            changed = ?report.changed,
            replaced = ?report.replaced,
            failed = ?report.failed,
            "configuration reloaded"
        );
        let mut reloads = self.reloads.write();
        reloads.done += 1;
        reloads.last = Some((SystemTime::now(), Ok(report.clone())));
        Ok(report)
    }

    fn refused(&self, why: String) {
        tracing::warn!("reload refused, nothing changed: {why}");
        let mut reloads = self.reloads.write();
        reloads.refused += 1;
        reloads.last = Some((SystemTime::now(), Err(why)));
    }

    /// Reloads so far, and what the last one did.
    pub fn reloads(&self) -> Reloads {
        self.reloads.read().clone()
    }

    /// The host's Destroy: every plugin at once refuses new calls, lets
    /// in-flight calls finish (up to its drain timeout), then stops
    /// (Controller `Shutdown`, then SIGTERM and SIGKILL if it does not
    /// exit) or, for remote plugins, closes its connection. Returns when all
    /// are stopped. A reload in progress finishes first; later reloads are refused.
    pub async fn destroy(&self) {
        // After a reload in progress, so that no plugin it starts is left running.
        let _no_reload = self.reloading.lock().await;
        self.destroyed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // The discovery first, so that it adds no plugin after the list is taken.
        let discovery = self.discovery.lock().take();
        if let Some((_, discovery)) = discovery {
            discovery.stop().await;
        }
        let plugins = self.plugins();
        join_all(plugins.iter().map(|p| p.destroy())).await;
    }

    fn unknown(&self, name: &str) -> Error {
        Error::UnknownPlugin {
            name: name.to_owned(),
            known: self.names(),
        }
    }
}

fn same_mode(a: &PluginConfig, b: &PluginConfig) -> bool {
    matches!(
        (&a.kind, &b.kind),
        (PluginKind::Companion(_), PluginKind::Companion(_))
            | (PluginKind::Remote(_), PluginKind::Remote(_))
    )
}

fn start(plugin: &PluginConfig, events: &Events) -> PluginHandle {
    let admission = admission(plugin);
    let started = match &plugin.kind {
        PluginKind::Companion(c) => companion::start(plugin, c, admission.clone(), events),
        PluginKind::Remote(r) => remote::start(plugin, r, admission.clone(), events),
    };
    PluginHandle::new(plugin, admission, started)
}

fn admission(plugin: &PluginConfig) -> Arc<Admission> {
    Arc::new(Admission::new(
        plugin.call.max_concurrent.get(),
        plugin.call.max_queued,
    ))
}

/// Starts a pluggable plugin: the remote owner, connecting to the socket (`plugin` is a
/// remote plugin at `unix:<socket>`), shown as mode `pluggable` with the services its
/// reflection listed. `None` for a plugin that is not remote.
pub(crate) fn start_pluggable(
    plugin: &PluginConfig,
    events: &Events,
    services: Option<Vec<String>>,
) -> Option<PluginHandle> {
    let PluginKind::Remote(remote) = &plugin.kind else {
        return None;
    };
    let admission = admission(plugin);
    let started = remote::start(plugin, remote, admission.clone(), events);
    Some(PluginHandle::pluggable(
        plugin, admission, started, services,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        Mode, PluginState,
        config::{RemoteAddress, RemoteConfig},
    };

    /// A pluggable plugin at a socket nobody serves (its owner keeps trying; never ready).
    fn discovered(registry: &Registry, name: &str) -> (PluginHandle, PluginConfig) {
        let config = PluggableConfig::new("/nonexistent").plugin_at(
            name,
            &Path::new("/nonexistent").join(format!("{name}.sock")),
        );
        let handle = start_pluggable(&config, &registry.events, Some(vec!["a.B".into()]))
            .expect("a remote plugin");
        (handle, config)
    }

    #[tokio::test]
    async fn discovered_plugins_join_the_set_survive_reloads_and_yield_to_configured_names() {
        let registry = Registry::from_config(Config::default()).unwrap();
        let (handle, config) = discovered(&registry, "found");
        add_discovered(&registry.set, handle.clone(), config.clone()).unwrap();
        let (twin, twin_config) = discovered(&registry, "found");
        let taken = add_discovered(&registry.set, twin.clone(), twin_config).unwrap_err();
        assert!(taken.contains("another pluggable plugin"), "{taken}");
        twin.destroy().await;
        assert_eq!(registry.names(), ["found"]);
        let status = registry.plugin("found").unwrap().status();
        assert_eq!(status.mode, Mode::Pluggable);
        assert_eq!(status.services, Some(vec!["a.B".to_owned()]));
        assert!(has_name(&registry.set, "found"));

        // A reload leaves discovered plugins alone, and lists configured ones first.
        let remote = |name: &str| {
            PluginConfig::new(
                name,
                PluginKind::Remote(RemoteConfig::new(RemoteAddress::Tcp {
                    host: "127.0.0.1".into(),
                    port: 1,
                })),
            )
        };
        let mut with_other = Config::default();
        with_other.plugins.push(remote("other"));
        let report = registry.reload(with_other).await.unwrap();
        assert_eq!(report.added, ["other"]);
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(registry.names(), ["other", "found"]);
        assert!(registry.get("found").unwrap().same(&handle));

        // A configured plugin of the same name wins: the discovered one is destroyed.
        let mut with_found = Config::default();
        with_found.plugins.push(remote("found"));
        let report = registry.reload(with_found).await.unwrap();
        assert_eq!(report.added, ["found"]);
        assert_eq!(report.removed, ["other", "found"]);
        assert_eq!(registry.plugin("found").unwrap().mode(), Mode::Remote);
        assert_eq!(handle.status().state, PluginState::Destroyed);
        // Gone already: removing it again changes nothing.
        assert!(!remove_discovered(&registry.set, &handle));
        registry.destroy().await;
    }

    #[tokio::test]
    async fn a_reload_that_changes_the_pluggable_section_discovers_anew() {
        let folder = |name: &str| std::env::temp_dir().join(format!("polaris-no-such-{name}"));
        let with = |name: &str| Config {
            pluggable: Some(PluggableConfig::new(folder(name))),
            ..Config::default()
        };
        let registry = Registry::from_config(with("a")).unwrap();
        let (handle, config) = discovered(&registry, "found");
        add_discovered(&registry.set, handle.clone(), config).unwrap();
        // The same section: the discovery and its plugins stay.
        let report = registry.reload(with("a")).await.unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        assert!(registry.get("found").is_some());
        // Another folder: the old discovery's plugins go.
        let report = registry.reload(with("b")).await.unwrap();
        assert_eq!(report.removed, ["found"]);
        assert_eq!(handle.status().state, PluginState::Destroyed);
        assert_eq!(
            registry
                .discovery
                .lock()
                .as_ref()
                .map(|(p, _)| p.folder.clone()),
            Some(folder("b"))
        );
        // No section: no discovery.
        registry.reload(Config::default()).await.unwrap();
        assert!(registry.discovery.lock().is_none());
        registry.destroy().await;
    }

    #[tokio::test]
    async fn removing_a_discovered_plugin_takes_only_that_plugin() {
        let registry = Registry::from_config(Config::default()).unwrap();
        let (a, a_config) = discovered(&registry, "a");
        let (b, b_config) = discovered(&registry, "b");
        add_discovered(&registry.set, a.clone(), a_config).unwrap();
        add_discovered(&registry.set, b.clone(), b_config).unwrap();
        assert!(remove_discovered(&registry.set, &a));
        assert_eq!(registry.names(), ["b"]);
        assert!(!remove_discovered(&registry.set, &a));
        a.destroy().await;
        registry.destroy().await;
        assert_eq!(b.status().state, PluginState::Destroyed);
    }
}
