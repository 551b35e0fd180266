//! The host's `pluggable:` section: the folder watched for plugins' unix sockets, and the
//! settings every plugin found there gets (`docs/pluggable.md`).
//!
//! The section takes the keys of a native plugin entry that make sense for a plugin nobody
//! named in the file: `call-timeout`, `drain-timeout`, `health`, `retry`,
//! `max-concurrent-calls`, `max-queued-calls`, `on-unavailable`, and a `remote:` with
//! `connect-timeout`, `keepalive` and `backoff` (a pluggable plugin is a remote plugin at
//! `unix:<socket>`). Not `name`, `mode`, `companion`, `fallback` (its message types depend
//! on the plugin), `remote.address` (the socket) or `remote.tls` (a unix socket in a private
//! folder). They are validated by the same code as a plugin entry's, so the same values are
//! valid and the messages are the same, naming `pluggable.<key>`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;

use super::{
    ConfigError, PluginConfig, PluginKind, PluginRef, RemoteAddress, document,
    document::Entry,
    raw::{Int, RawAddress, RawBackoff, RawHealth, RawPlugin, RawRemote, Text},
    validate::{self, Context},
};

/// The environment variable that names the folder when `pluggable.folder` is not given
/// (the name Polaris's proposal uses).
pub const PLUGGABLE_FOLDER_ENV: &str = "POLARIS_PLUGGABLE_SOCKETS_FOLDER";

/// The folder when neither `pluggable.folder` nor [`PLUGGABLE_FOLDER_ENV`] is set.
pub const DEFAULT_PLUGGABLE_FOLDER: &str = "/tmp/polaris-pluggable-sockets";

/// The `pluggable:` section: where plugins' sockets appear, and how their plugins behave.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PluggableConfig {
    /// The folder watched (`pluggable.folder`; relative to the config's directory). The
    /// host never creates, changes or deletes anything in it.
    pub folder: PathBuf,
    /// The settings of every plugin found there: a remote plugin whose name and
    /// `remote.address` [`plugin_at`](Self::plugin_at) fills in.
    pub settings: PluginConfig,
}

impl PluggableConfig {
    /// Watching `folder`, every setting default.
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        let address = RemoteAddress::Unix(PathBuf::from("/"));
        PluggableConfig {
            folder: folder.into(),
            settings: PluginConfig::new(
                "pluggable",
                PluginKind::Remote(super::RemoteConfig::new(address)),
            ),
        }
    }

    /// The folder when the section does not name one: [`PLUGGABLE_FOLDER_ENV`], else
    /// [`DEFAULT_PLUGGABLE_FOLDER`].
    pub fn default_folder() -> PathBuf {
        match std::env::var_os(PLUGGABLE_FOLDER_ENV) {
            Some(folder) if !folder.is_empty() => PathBuf::from(folder),
            _ => PathBuf::from(DEFAULT_PLUGGABLE_FOLDER),
        }
    }

    /// The configuration of the plugin `name` served at `socket`.
    pub fn plugin_at(&self, name: &str, socket: &Path) -> PluginConfig {
        let mut plugin = self.settings.clone();
        plugin.name = name.to_owned();
        if let PluginKind::Remote(remote) = &mut plugin.kind {
            remote.address = RemoteAddress::Unix(socket.to_owned());
            remote.tls = None;
        }
        plugin
    }

    /// The rules a loaded section obeys ([`Config::validate`](super::Config::validate)):
    /// those of a remote plugin's settings, and a folder.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.folder.as_os_str().is_empty() {
            return Err(ConfigError::Pluggable {
                key: "pluggable.folder".into(),
                location: None,
                message: "the folder is empty; name a directory (absolute, or relative to the config file's directory)".into(),
            });
        }
        if !matches!(self.settings.kind, PluginKind::Remote(_)) {
            return Err(ConfigError::Pluggable {
                key: "pluggable".into(),
                location: None,
                message: "the settings of discovered plugins must be a remote plugin's".into(),
            });
        }
        let check = validate::Check::new(Box::new(PluginRef::section("pluggable")), "pluggable.");
        super::rules::plugin(&check, &self.settings)
    }
}

#[derive(Deserialize)]
struct RawDocument {
    /// Absent: `None`; present but empty (`pluggable:`): `Some(None)`.
    #[serde(default, deserialize_with = "present")]
    pluggable: Option<Option<RawPluggable>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<RawPluggable>>, D::Error> {
    Option::<RawPluggable>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawPluggable {
    folder: Option<Text>,
    call_timeout: Option<Text>,
    drain_timeout: Option<Text>,
    health: Option<RawHealth>,
    remote: Option<RawPluggableRemote>,
    retry: Option<Text>,
    max_concurrent_calls: Option<Int>,
    max_queued_calls: Option<Int>,
    on_unavailable: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPluggableRemote {
    connect_timeout: Option<Text>,
    keepalive: Option<Text>,
    connections: Option<Text>,
    backoff: Option<RawBackoff>,
}

/// The keys of the section, for messages.
const KEYS: &[&str] = &[
    "folder",
    "call-timeout",
    "drain-timeout",
    "health",
    "remote",
    "retry",
    "max-concurrent-calls",
    "max-queued-calls",
    "on-unavailable",
];
const REMOTE_KEYS: &[&str] = &["connect-timeout", "keepalive", "connections", "backoff"];

/// The `pluggable:` section of `yaml`, if it has one; a relative folder against the
/// context's base directory.
pub(super) fn read(yaml: &str, ctx: &Context) -> Result<Option<PluggableConfig>, ConfigError> {
    let doc: RawDocument =
        serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(yaml))
            .map_err(|err| parse_error(&err))?;
    let Some(raw) = doc.pluggable else {
        return Ok(None);
    };
    let raw = raw.unwrap_or_default();
    let folder = match raw.folder {
        Some(Text(folder)) if folder.trim().is_empty() => {
            return Err(ConfigError::Pluggable {
                key: "pluggable.folder".into(),
                location: None,
                message: "the folder is empty; name a directory, or leave the key out for $POLARIS_PLUGGABLE_SOCKETS_FOLDER (default /tmp/polaris-pluggable-sockets)".into(),
            });
        }
        Some(Text(folder)) => ctx.base_dir.join(folder),
        None => std::path::absolute(PluggableConfig::default_folder()).map_err(|e| {
            ConfigError::Pluggable {
                key: "pluggable.folder".into(),
                location: None,
                message: format!("${PLUGGABLE_FOLDER_ENV} cannot be made absolute: {e}"),
            }
        })?,
    };
    let remote = raw.remote.unwrap_or_default();
    let entry = Entry {
        at: PluginRef::section("pluggable"),
        prefix: "pluggable.",
        raw: RawPlugin {
            name: Some(Text("pluggable".into())),
            mode: Some(Text("remote".into())),
            call_timeout: raw.call_timeout,
            drain_timeout: raw.drain_timeout,
            health: raw.health,
            remote: Some(RawRemote {
                address: Some(RawAddress::One(Text("unix:/".into()))),
                connect_timeout: remote.connect_timeout,
                keepalive: remote.keepalive,
                connections: remote.connections,
                backoff: remote.backoff,
                ..RawRemote::default()
            }),
            retry: raw.retry,
            max_concurrent_calls: raw.max_concurrent_calls,
            max_queued_calls: raw.max_queued_calls,
            on_unavailable: raw.on_unavailable,
            ..RawPlugin::default()
        },
    };
    let settings = validate::plugin(entry, ctx)?;
    Ok(Some(PluggableConfig { folder, settings }))
}

fn parse_error(err: &serde_path_to_error::Error<yaml_serde::Error>) -> ConfigError {
    let keys: Vec<&str> = err
        .path()
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let mut message = document::clean_message(err.inner(), err.path());
    if message.starts_with("unknown field") {
        let valid = match keys.as_slice() {
            [.., "remote", _] => Some(("pluggable.remote", REMOTE_KEYS)),
            [.., "health", _] => Some(("pluggable.health", super::raw::HEALTH_KEYS)),
            [.., "backoff", _] => Some(("pluggable.remote.backoff", super::raw::BACKOFF_KEYS)),
            [_, _] => Some(("pluggable", KEYS)),
            _ => None,
        };
        if let Some((section, valid)) = valid {
            let unknown = keys.last().copied().unwrap_or_default();
            let hint = super::suggest::suggest(unknown, valid)
                .map(|near| format!("did you mean {near}? "))
                .unwrap_or_default();
            message = format!(
                "unknown key; {hint}{section} has the keys {}",
                valid.join(", ")
            );
        }
    }
    ConfigError::Pluggable {
        key: if keys.is_empty() {
            "pluggable".into()
        } else {
            keys.join(".")
        },
        location: document::location(err.inner()),
        message,
    }
}

#[cfg(test)]
mod tests;
