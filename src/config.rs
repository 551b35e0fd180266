//! Configuration: YAML → validated [`Config`], checked once, before anything starts.
//!
//! Two forms are read from one YAML document, and may be mixed:
//!
//! - the Polaris host config as it is: every `plugin.<slot>.option` (or
//!   `plugin.<slot>.entries[i].option`) whose `mode` is `companion` or `remote` is a plugin
//!   named `option.name`; only `companion.path`, `companion.max-procs`, `companion.args`,
//!   `companion.sha256`, `companion.watch` and `remote.address` are read from it, and unknown keys are the host's business;
//! - the native `plugins:` list, which has every setting and rejects unknown keys.
//!
//! Two more top-level sections are read in both forms: `admin:` (the admin API) and
//! `pluggable:` (the folder watched for plugins' unix sockets, [`PluggableConfig`]).
//! Every other top-level key is ignored, except a near miss of `plugins`, `plugin`,
//! `admin` or `pluggable`, which is an error. `docs/configuration.md` lists every key with its default and range. Errors name
//! the plugin, the key and what would be valid; see [`ConfigError`]. A configuration built in
//! code is checked against the same rules by [`Config::validate`].
//!
//! ```no_run
//! use std::path::Path;
//! use polaris_plugin::config::Config;
//!
//! let config = Config::from_file(Path::new("host.yaml"))?;
//! for plugin in &config.plugins {
//!     println!("{} ({})", plugin.name, plugin.kind.mode());
//! }
//! # Ok::<(), polaris_plugin::config::ConfigError>(())
//! ```
//!
//! Inside: `raw` has the serde types, `document` reads both forms into them (through
//! `lenient`), `validate`, `policy` and `binary` turn them into the public types of `plugin`,
//! `companion`, `remote` and `call`, and `rules` checks the invariants of those types.

mod address;
mod admin;
mod binary;
mod call;
mod companion;
mod digest;
mod document;
mod duration;
mod error;
mod lenient;
mod pluggable;
mod plugin;
mod policy;
mod raw;
mod remote;
mod rules;
mod size;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

pub use address::{AddressError, RemoteAddress};
pub use admin::{AdminConfig, DEFAULT_ADMIN_LISTEN};
pub use call::{CallPolicy, Delivery, Fallback, OnUnavailable, UnknownName};
pub use companion::{
    CompanionConfig, CpuConfig, EnvInherit, LimitsConfig, RestartConfig, RestartPolicy,
};
pub use digest::{DigestError, Sha256Digest};
pub use duration::{DurationError, MAX_DURATION, format_duration, parse_duration};
pub use error::{ConfigError, Location, PluginRef, YamlError};
pub use pluggable::{DEFAULT_PLUGGABLE_FOLDER, PLUGGABLE_FOLDER_ENV, PluggableConfig};
pub use plugin::{HealthConfig, PluginConfig, PluginKind};
pub use remote::{
    BackoffConfig, EjectionConfig, Endpoints, FleetConfig, RemoteConfig, RemoteTlsConfig,
};
pub use size::{SizeError, format_size, parse_size};

use validate::Context;

/// A validated configuration: every plugin, ready to start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// The plugins: the Polaris-form ones in file order, then the native `plugins:` list.
    /// Names are unique.
    pub plugins: Vec<PluginConfig>,
    /// The admin API's `admin:` section, when the file has one.
    pub admin: Option<AdminConfig>,
    /// The `pluggable:` section, when the file has one: the folder watched for plugins'
    /// unix sockets and the settings of the plugins found there (`docs/pluggable.md`).
    pub pluggable: Option<PluggableConfig>,
    /// The directory relative paths were resolved against: the config file's directory, or
    /// the `base_dir` given to [`Config::from_yaml_str`]. Absolute.
    pub base_dir: PathBuf,
}

impl Config {
    /// Turns `companion.watch` on for every companion plugin (what `polaris-plugin run
    /// --watch` does to the configurations it loads).
    pub fn watch_companions(&mut self) {
        for plugin in &mut self.plugins {
            if let PluginKind::Companion(c) = &mut plugin.kind {
                c.watch = true;
            }
        }
    }

    /// Reads, parses and validates the YAML file at `path`. Relative paths in it are relative
    /// to the file's directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |error| ConfigError::Read {
            path: path.to_owned(),
            error,
        };
        let absolute = std::path::absolute(path).map_err(read_error)?;
        let yaml = std::fs::read_to_string(&absolute).map_err(read_error)?;
        let base_dir = absolute
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        load(&yaml, Some(path), Context::new(base_dir))
    }

    /// Parses and validates YAML text. Relative paths in it are relative to `base_dir`
    /// (itself relative to the current directory; empty means the current directory).
    pub fn from_yaml_str(yaml: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        load(yaml, None, Context::new(absolute_dir(base_dir)?))
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Checks a configuration built in code against the rules a loaded one obeys: unique
    /// names, the name rules, durations greater than zero where required and at most
    /// [`MAX_DURATION`], health and backoff parameters, environment variable names and the
    /// size of arguments and environment, the call policy's bounds and its fallback, CPU
    /// numbers and addresses. Errors name the plugin as `plugins[i]` (its index here) and
    /// the key as the YAML would spell it.
    ///
    /// It does not look at the file system or at this process's CPUs, which
    /// [`from_file`](Self::from_file) also checks. An empty configuration is valid.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(admin) = &self.admin {
            admin.validate()?;
        }
        if let Some(pluggable) = &self.pluggable {
            pluggable.validate()?;
        }
        let mut origins: HashMap<&str, String> = HashMap::with_capacity(self.plugins.len());
        for (i, plugin) in self.plugins.iter().enumerate() {
            let origin = format!("plugins[{i}]");
            let at = PluginRef::new(origin.clone());
            rules::name(&at, "name", &plugin.name)?;
            let check = validate::Check::new(Box::new(at.named(&plugin.name)), "");
            rules::plugin(&check, plugin)?;
            if let Some(first) = origins.insert(&plugin.name, origin.clone()) {
                return Err(ConfigError::DuplicateName {
                    name: plugin.name.clone(),
                    first,
                    second: origin,
                });
            }
        }
        Ok(())
    }
}

fn absolute_dir(dir: &Path) -> Result<PathBuf, ConfigError> {
    let resolved = if dir.as_os_str().is_empty() {
        std::env::current_dir()
    } else {
        std::path::absolute(dir)
    };
    resolved.map_err(|error| ConfigError::BaseDir {
        path: dir.to_owned(),
        error,
    })
}

/// Both forms, each entry validated, names checked for duplicates.
fn load(yaml: &str, file: Option<&Path>, ctx: Context) -> Result<Config, ConfigError> {
    let entries = document::entries(yaml, file)?;
    let admin = admin::read(yaml, &ctx.base_dir)?;
    let pluggable = pluggable::read(yaml, &ctx)?;
    let mut origins: HashMap<String, String> = HashMap::with_capacity(entries.len());
    let mut plugins = Vec::with_capacity(entries.len());
    for entry in entries {
        let origin = entry.at.origin.clone();
        let plugin = validate::plugin(entry, &ctx)?;
        if let Some(first) = origins.insert(plugin.name.clone(), origin.clone()) {
            return Err(ConfigError::DuplicateName {
                name: plugin.name,
                first,
                second: origin,
            });
        }
        plugins.push(plugin);
    }
    Ok(Config {
        plugins,
        admin,
        pluggable,
        base_dir: ctx.base_dir,
    })
}
