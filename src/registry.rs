//! [`Registry`]: named plugins loaded from YAML, calls by name, Destroy.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use futures_util::future::join_all;

use crate::{
    Error,
    call::admission::Admission,
    companion,
    config::{Config, PluginConfig, PluginKind},
    events::Events,
    plugin::PluginHandle,
    proto::polaris::{Request, Response},
    remote,
};

/// The host's plugins by name. Companion plugins are launched and supervised
/// from the moment the registry is built; remote plugins connect in the
/// background. Calls wait for a plugin that is still starting, up to its
/// call timeout.
///
/// Dropping the registry (and every [`PluginHandle`]) without
/// [`destroy`](Self::destroy) still kills every companion process; `destroy`
/// is the graceful path.
#[derive(Debug)]
pub struct Registry {
    plugins: Vec<PluginHandle>,
    by_name: HashMap<String, usize>,
    events: Events,
}

impl Registry {
    /// Loads the YAML file at `path` (the Polaris host config, or the native
    /// `plugins:` list; see `docs/configuration.md`), validates it and starts
    /// every plugin. Must be called inside a tokio runtime.
    pub async fn from_yaml(path: impl AsRef<Path>) -> Result<Self, Error> {
        let config = Config::from_file(path.as_ref())?;
        Self::from_config(config)
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
        let mut plugins = Vec::with_capacity(config.plugins.len());
        let mut by_name = HashMap::with_capacity(config.plugins.len());
        let events = Events::default();
        for plugin in &config.plugins {
            by_name.insert(plugin.name.clone(), plugins.len());
            plugins.push(start(plugin, &events));
        }
        Ok(Registry {
            plugins,
            by_name,
            events,
        })
    }

    /// Calls plugin `name` (see [`PluginHandle::call`]).
    pub async fn call(&self, name: &str, request: Request) -> Result<Response, Error> {
        match self.by_name.get(name) {
            Some(&i) => self.plugins[i].call(request).await,
            None => Err(self.unknown(name)),
        }
    }

    /// The handle of plugin `name`.
    pub fn get(&self, name: &str) -> Option<PluginHandle> {
        self.by_name.get(name).map(|&i| self.plugins[i].clone())
    }

    /// The handle of plugin `name`, or an error listing the configured names.
    pub fn plugin(&self, name: &str) -> Result<PluginHandle, Error> {
        self.get(name).ok_or_else(|| self.unknown(name))
    }

    /// Every plugin, in configuration order.
    pub fn plugins(&self) -> &[PluginHandle] {
        &self.plugins
    }

    /// The configured names, in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.name().to_owned()).collect()
    }

    /// The lifecycle event log of every plugin: state changes and exits, in order
    /// ([`Events::subscribe`] to follow it).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Waits until every plugin is ready, at most `timeout` in all.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let waits = self.plugins.iter().map(|p| p.wait_ready(timeout));
        for result in join_all(waits).await {
            result?;
        }
        Ok(())
    }

    /// The host's Destroy: every plugin at once refuses new calls, lets
    /// in-flight calls finish (up to its drain timeout), then stops
    /// (Controller `Shutdown`, then SIGTERM and SIGKILL if it does not
    /// exit) or, for remote plugins, closes its connection. Returns when all
    /// are stopped.
    pub async fn destroy(&self) {
        join_all(self.plugins.iter().map(|p| p.destroy())).await;
    }

    fn unknown(&self, name: &str) -> Error {
        Error::UnknownPlugin {
            name: name.to_owned(),
            known: self.names(),
        }
    }
}

fn start(plugin: &PluginConfig, events: &Events) -> PluginHandle {
    let admission = Arc::new(Admission::new(
        plugin.call.max_concurrent.get(),
        plugin.call.max_queued,
    ));
    let started = match &plugin.kind {
        PluginKind::Companion(c) => companion::start(plugin, c, admission.clone(), events),
        PluginKind::Remote(r) => remote::start(plugin, r, admission.clone(), events),
    };
    PluginHandle::new(plugin, admission, started)
}
