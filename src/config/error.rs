//! [`ConfigError`] and the context it carries.

use std::{fmt, io, path::PathBuf, time::Duration};

use super::{AddressError, DurationError, MAX_DURATION, format_duration};

/// Which plugin an error is about: its name when it has one, and where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginRef {
    /// The plugin's name, if the entry has a usable one.
    pub name: Option<String>,
    /// Where the entry is: `plugins[2]` (native form) or `plugin.ratelimit`,
    /// `plugin.history.entries[1]` (Polaris form), or `pluggable` (the settings of every
    /// discovered plugin).
    pub origin: String,
    /// The `pluggable:` section rather than one plugin: shown as the section.
    section: bool,
}

impl PluginRef {
    pub(super) fn new(origin: impl Into<String>) -> Self {
        Self {
            name: None,
            origin: origin.into(),
            section: false,
        }
    }

    /// A section whose settings apply to plugins not named in the file (`pluggable`).
    pub(super) fn section(key: &str) -> Self {
        Self {
            name: None,
            origin: key.to_owned(),
            section: true,
        }
    }

    pub(super) fn named(&self, name: &str) -> Self {
        Self {
            name: (!self.section).then(|| name.to_owned()),
            origin: self.origin.clone(),
            section: self.section,
        }
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            _ if self.section => write!(f, "{} section", self.origin),
            Some(name) => write!(f, "plugin {name:?}"),
            None => write!(f, "plugin at {}", self.origin),
        }
    }
}

/// A position in the YAML text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// The YAML parser's own error, kept opaque so the parser stays an implementation detail.
#[derive(Debug)]
pub struct YamlError(pub(super) yaml_serde::Error);

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for YamlError {}

/// Why a configuration was rejected.
///
/// The [`Display`](fmt::Display) text is one complete sentence naming the plugin (or, for an
/// entry without a usable name, where it is), the key, and what would be valid. The underlying
/// errors (I/O, duration and address parsing) are fields to match on; they are already part of
/// that sentence, so they are not chained again as [`source`](std::error::Error::source) and a
/// reporter that prints the chain does not repeat them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The directory relative paths are resolved against could not be made absolute.
    #[error("cannot resolve the config's base directory {}: {error}", path.display())]
    BaseDir {
        /// The directory as given.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The text is not YAML. The parser's message says where.
    #[error("{}is not valid YAML: {error}", in_file(file))]
    Syntax {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// Where the parser stopped, when it says.
        location: Option<Location>,
        /// The parser's error.
        error: YamlError,
    },
    /// The document is YAML but not a mapping of keys to values.
    #[error(
        "{}must be a YAML mapping (`key: value` lines) at the top level, but it is {found}",
        in_file(file)
    )]
    NotAMapping {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// What it is instead: "a sequence", "a string", ...
        found: &'static str,
    },
    /// The native `plugins:` key holds something other than a list.
    #[error(
        "plugins{}: {message}; plugins is a list of plugin entries, each starting with `- name:`",
        at(location)
    )]
    PluginsNotAList {
        /// Where, when the parser says.
        location: Option<Location>,
        /// The parser's message.
        message: String,
    },
    /// A key the native form does not have.
    #[error(
        "{plugin}: unknown key {key}{}; {}",
        at(location),
        valid_keys(key, valid)
    )]
    UnknownKey {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key's path within the plugin entry, e.g. `companion.maxprocs`.
        key: String,
        /// Where, when the parser says.
        location: Option<Location>,
        /// The keys valid at that place.
        valid: &'static [&'static str],
    },
    /// A value of the wrong type, such as a string where a number belongs.
    #[error("{plugin}{}: {message}", key_at(key, location))]
    InvalidValue {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key's path within the plugin entry.
        key: String,
        /// Where, when the parser says.
        location: Option<Location>,
        /// What was wrong, e.g. `invalid type: string "four", expected an integer`.
        message: String,
    },
    /// A required key is absent.
    #[error("{plugin}: {key} is required; {hint}")]
    MissingKey {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The missing key.
        key: String,
        /// What to write.
        hint: &'static str,
    },
    /// A `mode` other than `companion` or `remote`.
    #[error(
        "{plugin}: {key}: {value} is not a plugin mode; use companion or remote{}",
        if key.starts_with("option.") { " (or no mode for a plugin the host runs itself)" } else { "" }
    )]
    UnknownMode {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key, `mode` or `option.mode`.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A section for the other mode: a `remote` section on a companion plugin or vice versa.
    #[error("{plugin}: the mode is {mode} but {section} is also given; remove {section} or set the mode to {other}", other = other_mode(mode))]
    SectionMismatch {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The mode given: `companion` or `remote`.
        mode: &'static str,
        /// The key of the other section, e.g. `remote` or `option.remote`.
        section: String,
    },
    /// A `restart.policy` other than `always`, `on-failure`, `never`.
    #[error("{plugin}: {key}: {value:?} is not a restart policy; use always, on-failure or never")]
    UnknownPolicy {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A plugin name that cannot be used.
    #[error("{plugin}: {key}: {name:?} is not a usable plugin name: {reason}")]
    InvalidName {
        /// The plugin (by place: the name is the problem).
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two plugins with the same name, in either form.
    #[error(
        "plugin {name:?} is configured twice, at {first} and at {second}; plugin names must be unique"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// Where it is first.
        first: String,
        /// Where it is again.
        second: String,
    },
    /// No companion binary at any place looked.
    #[error("{plugin}: {}", not_found(key, tried, *configured))]
    BinaryNotFound {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key, `companion.path` or `option.companion.path`.
        key: String,
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
        /// Whether the path came from the key (else it was looked up by name).
        configured: bool,
    },
    /// The companion binary exists but is not a regular file.
    #[error("{plugin}: {key}: {} is not a regular file; point {key} at the plugin binary", path.display())]
    BinaryNotAFile {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The path.
        path: PathBuf,
    },
    /// The companion binary has no execute permission.
    #[error("{plugin}: {key}: {} is not executable (mode {mode:o}); make it so with `chmod +x {}`", path.display(), path.display())]
    BinaryNotExecutable {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The companion binary could not be inspected (e.g. permission denied on a directory).
    #[error("{plugin}: {key}: cannot inspect {}: {error}", path.display())]
    BinaryInaccessible {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The path.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// A duration that does not parse.
    #[error("{plugin}: {key}: {value:?} is not a duration: {reason}")]
    Duration {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// Why.
        reason: DurationError,
    },
    /// An address that does not parse.
    #[error("{plugin}: {key}: {value:?} is not an address: {reason}")]
    Address {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// Why.
        reason: AddressError,
    },
    /// A number or duration outside its range.
    #[error("{plugin}: {key}: {value} is out of range ({valid})")]
    OutOfRange {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// The valid range, e.g. `0..=1024` or `greater than zero`.
        valid: &'static str,
    },
    /// Two keys that exclude each other.
    #[error("{plugin}: {key} and {other} are both set; {hint}")]
    Conflict {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The first key.
        key: String,
        /// The second key.
        other: String,
        /// Which to keep.
        hint: &'static str,
    },
    /// `cpus: []`.
    #[error("{plugin}: {key} is empty; list CPU numbers, like [0, 1], or use max-procs instead")]
    EmptyCpuList {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
    },
    /// A CPU listed twice.
    #[error("{plugin}: {key}: CPU {cpu} is listed twice; list each CPU once")]
    DuplicateCpu {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The CPU.
        cpu: usize,
    },
    /// A CPU the host process may not run on.
    #[error(
        "{plugin}: {key}: CPU {cpu} is not available to this process; available: {}",
        list(allowed)
    )]
    UnavailableCpu {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The CPU.
        cpu: usize,
        /// The CPUs in this process's affinity mask.
        allowed: Vec<usize>,
    },
    /// A backoff whose `initial` is above its `max`.
    #[error(
        "{plugin}: {key}: initial ({}) is greater than max ({}); raise max or lower initial",
        format_duration(*initial), format_duration(*max)
    )]
    BackoffOrder {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The backoff section's key.
        key: String,
        /// `initial`.
        initial: Duration,
        /// `max`.
        max: Duration,
    },
    /// An environment variable that cannot be passed to a child.
    #[error("{plugin}: {key}: variable {name:?} {reason}")]
    InvalidEnv {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The variable's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A duration longer than [`MAX_DURATION`](super::MAX_DURATION).
    #[error(
        "{plugin}: {key}: {value} is longer than the limit of {} (365 days); use a shorter duration",
        format_duration(MAX_DURATION)
    )]
    DurationTooLong {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written (or formatted, for a hand-built config).
        value: String,
    },
    /// An integer key whose value is not an integer in its range.
    #[error("{plugin}: {key} must be an integer from {min} to {max}, got {value}")]
    Integer {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// The smallest valid value.
        min: u64,
        /// The largest valid value.
        max: u64,
    },
    /// A value that is not one of a key's spellings, such as `retry: twice`.
    #[error("{plugin}: {key}: {value:?} is not valid here; expected one of {}", expected.join(", "))]
    UnknownChoice {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// The valid spellings.
        expected: &'static [&'static str],
    },
    /// A `fallback.type` that is not a protobuf message this host knows.
    #[error(
        "{plugin}: {key}: {value:?} is not a protobuf message type this host knows; write a full name, one of {}",
        crate::proto::message_names().join(", ")
    )]
    UnknownMessageType {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The type as written.
        value: String,
    },
    /// A `fallback.json` that does not map onto its message type.
    #[error("{plugin}: {key} is not a valid {type_name}: {problem}")]
    FallbackJson {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The message type.
        type_name: String,
        /// What is wrong, e.g. an unknown field.
        problem: String,
    },
    /// A hand-built [`Fallback`](super::Fallback) whose packed reply is not its `type_name`.
    #[error("{plugin}: {key}: the packed reply is not a {type_name}: {problem}")]
    FallbackReply {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// The message type the fallback names.
        type_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A string longer than its limit: a plugin name, an argument, an environment variable.
    #[error("{plugin}: {key} is {len} bytes long; the limit is {limit} bytes")]
    TooLong {
        /// The plugin (by place when the name is what is too long).
        plugin: Box<PluginRef>,
        /// The key.
        key: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Arguments and environment together larger than a process start allows.
    #[error(
        "{plugin}: {key} together take {size} bytes; the limit is {limit} bytes (the kernel refuses to start a process with too large an argument list and environment)"
    )]
    ArgsTooLarge {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The keys, `companion.args and companion.env`.
        key: String,
        /// Their size as the kernel counts it (each string and its NUL).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A top-level key that is a near miss of `plugins` or `plugin`.
    #[error(
        "{}has a top-level key {key:?}, which is not read; did you mean {suggestion}? (plugins: is the native list of plugins, plugin: the Polaris plugin section)",
        in_file(file)
    )]
    MisspeltSection {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// The key as written.
        key: String,
        /// `plugins` or `plugin`.
        suggestion: &'static str,
    },
    /// The Polaris `plugin:` key holds something other than a mapping of slots.
    #[error(
        "{}has plugin: as {found}, but the Polaris plugin section is a mapping of slots, like plugin: {{ ratelimit: {{ option: {{ name: x, mode: companion }} }} }}; for a list of plugins, write plugins:",
        in_file(file)
    )]
    PluginSectionNotAMapping {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// What it is instead: "a list", "a string", ...
        found: &'static str,
    },
    /// The `admin:` section is wrong.
    #[error("{key}{}: {message}", at(location))]
    Admin {
        /// The key, e.g. `admin.listen`.
        key: String,
        /// Where, when the parser says.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
    /// The `pluggable:` section is not what it should be (a key it does not have, a value
    /// of the wrong type, a folder that cannot be a folder).
    #[error("{key}{}: {message}", at(location))]
    Pluggable {
        /// The key, e.g. `pluggable.folder`.
        key: String,
        /// Where, when the parser says.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
    /// `mode: pluggable` on a plugin entry: pluggable plugins are found, not listed.
    #[error(
        "{plugin}: {key}: pluggable plugins are not listed one by one; they are the unix sockets found in the folder of the top-level pluggable: section (see docs/pluggable.md). Use companion or remote here"
    )]
    PluggableEntry {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The key, `mode` or `option.mode`.
        key: String,
    },
    /// A Polaris `option` with a `companion` or `remote` section, no `mode`, and a key that is a
    /// near miss of `mode`.
    #[error(
        "{plugin}: {key} is not read and option.mode is missing; did you mean option.mode? (companion or remote)"
    )]
    MisspeltMode {
        /// The plugin.
        plugin: Box<PluginRef>,
        /// The misspelt key, e.g. `option.mod`.
        key: String,
    },
}

impl ConfigError {
    /// The plugin the error is about, if it is about one.
    pub fn plugin(&self) -> Option<&PluginRef> {
        use ConfigError as E;
        match self {
            E::UnknownKey { plugin, .. }
            | E::InvalidValue { plugin, .. }
            | E::MissingKey { plugin, .. }
            | E::UnknownMode { plugin, .. }
            | E::SectionMismatch { plugin, .. }
            | E::UnknownPolicy { plugin, .. }
            | E::InvalidName { plugin, .. }
            | E::BinaryNotFound { plugin, .. }
            | E::BinaryNotAFile { plugin, .. }
            | E::BinaryNotExecutable { plugin, .. }
            | E::BinaryInaccessible { plugin, .. }
            | E::Duration { plugin, .. }
            | E::Address { plugin, .. }
            | E::OutOfRange { plugin, .. }
            | E::Conflict { plugin, .. }
            | E::EmptyCpuList { plugin, .. }
            | E::DuplicateCpu { plugin, .. }
            | E::UnavailableCpu { plugin, .. }
            | E::BackoffOrder { plugin, .. }
            | E::InvalidEnv { plugin, .. }
            | E::DurationTooLong { plugin, .. }
            | E::Integer { plugin, .. }
            | E::UnknownChoice { plugin, .. }
            | E::UnknownMessageType { plugin, .. }
            | E::FallbackJson { plugin, .. }
            | E::FallbackReply { plugin, .. }
            | E::TooLong { plugin, .. }
            | E::ArgsTooLarge { plugin, .. }
            | E::MisspeltMode { plugin, .. }
            | E::PluggableEntry { plugin, .. } => Some(plugin),
            E::Read { .. }
            | E::BaseDir { .. }
            | E::Syntax { .. }
            | E::NotAMapping { .. }
            | E::PluginsNotAList { .. }
            | E::MisspeltSection { .. }
            | E::PluginSectionNotAMapping { .. }
            | E::DuplicateName { .. }
            | E::Admin { .. }
            | E::Pluggable { .. } => None,
        }
    }
}

fn in_file(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!("config file {} ", path.display()),
        None => "the config ".to_owned(),
    }
}

fn at(location: &Option<Location>) -> String {
    location.map(|l| format!(" at {l}")).unwrap_or_default()
}

/// `: key at line L column C` (the `: ` before the key only when there is a key).
fn key_at(key: &str, location: &Option<Location>) -> String {
    let key = if key.is_empty() {
        String::new()
    } else {
        format!(": {key}")
    };
    format!("{key}{}", at(location))
}

fn other_mode(mode: &str) -> &'static str {
    if mode == "companion" {
        "remote"
    } else {
        "companion"
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_keys(key: &str, valid: &[&str]) -> String {
    let (section, unknown) = match key.rsplit_once('.') {
        Some((section, unknown)) => (format!("{section} has"), unknown),
        None => ("a plugin entry has".to_owned(), key),
    };
    let hint = match super::suggest::suggest(unknown, valid) {
        Some(near) => format!("did you mean {near}? "),
        None => String::new(),
    };
    format!("{hint}{section} the keys {}", valid.join(", "))
}

fn not_found(key: &str, tried: &[PathBuf], configured: bool) -> String {
    let tried = tried
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if configured {
        format!(
            "{key}: no file at {tried}; fix the path (absolute, or relative to the config file's directory)"
        )
    } else {
        format!(
            "no plugin binary found (tried {tried}); set {key} (absolute, or relative to the config file's directory)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_ref_prefers_the_name() {
        let at = PluginRef::new("plugins[2]");
        assert_eq!(at.to_string(), "plugin at plugins[2]");
        assert_eq!(at.named("x").to_string(), "plugin \"x\"");
        let section = PluginRef::section("pluggable");
        assert_eq!(section.named("x").to_string(), "pluggable section");
    }
}
