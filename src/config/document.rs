//! Reading the YAML document: syntax, the Polaris `plugin:` slots and the native `plugins:` list,
//! each entry turned into a [`RawPlugin`] tagged with where it came from.

use std::path::Path;

use serde_path_to_error::{Path as KeyPath, Segment};
use yaml_serde::{Mapping, Value};

use super::{
    ConfigError, Location, PluginRef,
    lenient::Lenient,
    raw::{RawDocument, RawPlugin, RawPolarisOption, keys_of},
    suggest,
};

/// One plugin entry as written, before validation.
#[derive(Debug)]
pub(super) struct Entry {
    /// Where it is (no name yet: validation checks the name first).
    pub(super) at: PluginRef,
    /// What keys are relative to in messages: `""` (native) or `"option."` (Polaris).
    pub(super) prefix: &'static str,
    pub(super) raw: RawPlugin,
}

/// Every plugin entry of the document: the Polaris slots in file order, then the native list.
pub(super) fn entries(yaml: &str, path: Option<&Path>) -> Result<Vec<Entry>, ConfigError> {
    let file = || path.map(Path::to_path_buf);
    let syntax = |error: yaml_serde::Error| ConfigError::Syntax {
        file: file(),
        location: location(&error),
        error: super::YamlError(error),
    };
    let mut value = yaml_serde::from_str::<Lenient>(yaml).map_err(syntax)?.0;
    // Merge keys (`<<: *defaults`) are resolved on the value; the native form is then read
    // from the merged document, without positions (they would not be the file's).
    let merged = has_merge_key(&value);
    if merged {
        value.apply_merge().map_err(syntax)?;
    }
    let root = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(root) => root,
        other => {
            return Err(ConfigError::NotAMapping {
                file: file(),
                found: kind(&other),
            });
        }
    };
    misspelt_sections(&root, path)?;
    let mut entries = polaris_entries(root.get("plugin"), path)?;
    if root.get("plugins").is_some_and(|p| !p.is_null()) {
        let native = if merged {
            let text = yaml_serde::to_string(&root).map_err(syntax)?;
            native_entries(&text, &root, false)?
        } else {
            native_entries(yaml, &root, true)?
        };
        entries.extend(native);
    }
    Ok(entries)
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Value::Sequence(list) => list.iter().any(has_merge_key),
        Value::Tagged(tagged) => has_merge_key(&tagged.value),
        _ => false,
    }
}

/// Top-level keys are the host's, but one a typo away from `plugins` or `plugin` (`Plugins`,
/// `pluigns`) would silently configure no plugins.
fn misspelt_sections(root: &Mapping, file: Option<&Path>) -> Result<(), ConfigError> {
    const SECTIONS: [&str; 4] = ["plugins", "plugin", "admin", "pluggable"];
    for key in root.keys().filter_map(Value::as_str) {
        if SECTIONS.contains(&key) {
            continue;
        }
        if let Some(suggestion) = suggest::suggest(key, &SECTIONS) {
            return Err(ConfigError::MisspeltSection {
                file: file.map(Path::to_path_buf),
                key: key.to_owned(),
                suggestion,
            });
        }
    }
    Ok(())
}

/// The Polaris form: `plugin.<slot>.option` and `plugin.<slot>.entries[i].option` with a mode.
fn polaris_entries(plugin: Option<&Value>, file: Option<&Path>) -> Result<Vec<Entry>, ConfigError> {
    let slots = match plugin {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(slots)) => slots,
        Some(other) => {
            return Err(ConfigError::PluginSectionNotAMapping {
                file: file.map(Path::to_path_buf),
                found: kind(other),
            });
        }
    };
    let mut entries = Vec::new();
    for (slot_key, slot) in slots {
        let origin = format!(
            "plugin.{}",
            scalar(slot_key).unwrap_or_else(|| "?".to_owned())
        );
        if let Some(option) = slot.get("option") {
            entries.extend(polaris_entry(&origin, option)?);
        }
        if let Some(Value::Sequence(list)) = slot.get("entries") {
            for (i, item) in list.iter().enumerate() {
                if let Some(option) = item.get("option") {
                    entries.extend(polaris_entry(&format!("{origin}.entries[{i}]"), option)?);
                }
            }
        }
    }
    Ok(entries)
}

/// One Polaris `option`: `None` when it has no mode (the host's own plugin).
fn polaris_entry(origin: &str, option: &Value) -> Result<Option<Entry>, ConfigError> {
    let Value::Mapping(map) = option else {
        return Ok(None);
    };
    let at = name_of(map).map_or_else(
        || PluginRef::new(origin),
        |n| PluginRef::new(origin).named(&n),
    );
    let mode = match map.get("mode") {
        None | Some(Value::Null) => return misspelt_mode(map, at).map(|()| None),
        Some(Value::String(mode)) if mode == "companion" || mode == "remote" => mode.as_str(),
        Some(Value::String(mode)) if mode == "pluggable" => {
            return Err(ConfigError::PluggableEntry {
                plugin: Box::new(at),
                key: "option.mode".to_owned(),
            });
        }
        Some(other) => {
            return Err(ConfigError::UnknownMode {
                plugin: Box::new(at),
                key: "option.mode".to_owned(),
                value: render(other),
            });
        }
    };
    // Read through text like the native form, so that a number where text is expected
    // (`args: [8080]`) is taken the same way; the value keeps numbers by value, so `1.50` is
    // `1.5` by now. Positions would be relative to this snippet, so none are reported.
    let invalid = |key: String, message: String| ConfigError::InvalidValue {
        plugin: Box::new(at.clone()),
        key,
        location: None,
        message,
    };
    let text =
        yaml_serde::to_string(option).map_err(|e| invalid("option".to_owned(), e.to_string()))?;
    let raw: RawPolarisOption = serde_path_to_error::deserialize(
        yaml_serde::Deserializer::from_str(&text),
    )
    .map_err(|err| {
        invalid(
            format!("option.{}", err.path()),
            clean_message(err.inner(), err.path()),
        )
    })?;
    Ok(Some(Entry {
        at: PluginRef::new(origin),
        prefix: "option.",
        raw: raw.into_plugin(mode),
    }))
}

/// An `option` without a mode is the host's, and its keys are the host's business; but with a
/// `companion` or `remote` section and a key one edit from `mode` (`mod`, `Mode`, `mdoe`) it is
/// clearly one of ours with a typo.
fn misspelt_mode(option: &Mapping, at: PluginRef) -> Result<(), ConfigError> {
    let ours = ["companion", "remote"]
        .iter()
        .any(|section| option.get(section).is_some_and(|v| !v.is_null()));
    if !ours {
        return Ok(());
    }
    let misspelt = option
        .keys()
        .filter_map(Value::as_str)
        .find(|key| *key != "mode" && suggest::suggest_within(key, &["mode"], 1).is_some());
    match misspelt {
        Some(key) => Err(ConfigError::MisspeltMode {
            plugin: Box::new(at),
            key: format!("option.{key}"),
        }),
        None => Ok(()),
    }
}

/// The native form, deserialized from text so that errors have line and column (when
/// `located`: the text is the file's).
fn native_entries(yaml: &str, root: &Mapping, located: bool) -> Result<Vec<Entry>, ConfigError> {
    let document: RawDocument =
        serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(yaml))
            .map_err(|err| native_error(&err, root, located))?;
    Ok(document
        .plugins
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, raw)| Entry {
            at: PluginRef::new(format!("plugins[{i}]")),
            prefix: "",
            raw,
        })
        .collect())
}

fn native_error(
    err: &serde_path_to_error::Error<yaml_serde::Error>,
    root: &Mapping,
    located: bool,
) -> ConfigError {
    let location = location(err.inner()).filter(|_| located);
    let message = clean_message(err.inner(), err.path());
    let segments: Vec<&Segment> = err.path().iter().collect();
    let (index, rest) = match segments.as_slice() {
        [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "plugins" => {
            (*index, rest)
        }
        _ => return ConfigError::PluginsNotAList { location, message },
    };
    let origin = PluginRef::new(format!("plugins[{index}]"));
    let plugin = Box::new(
        root.get("plugins")
            .and_then(|list| list.get(index))
            .and_then(|entry| entry.as_mapping())
            .and_then(name_of)
            .map_or_else(|| origin.clone(), |name| origin.named(&name)),
    );
    let key = join(rest);
    if message.starts_with("unknown field `") {
        let parent = match rest {
            [.., Segment::Map { key }, _] => Some(key.as_str()),
            _ => None,
        };
        return ConfigError::UnknownKey {
            plugin,
            key,
            location,
            valid: keys_of(parent),
        };
    }
    ConfigError::InvalidValue {
        plugin,
        key,
        location,
        message,
    }
}

/// `companion.cpus[2]`-style text for key path segments.
fn join(segments: &[&Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(if out.is_empty() { "?" } else { ".?" }),
        }
    }
    out
}

/// The parser's message without its location suffix and path prefix (both are reported
/// separately), with Rust type names replaced by words.
pub(super) fn clean_message(err: &yaml_serde::Error, path: &KeyPath) -> String {
    let mut message = err.to_string();
    if let Some(l) = err.location() {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    // yaml_serde starts with the path of the node it was in: the key's path or a parent's.
    let segments: Vec<&Segment> = path.iter().collect();
    for n in (1..=segments.len()).rev() {
        let prefix = format!("{}: ", join(&segments[..n]));
        if let Some(stripped) = message.strip_prefix(&prefix) {
            message = stripped.to_owned();
            break;
        }
    }
    if let Some(field) = message
        .strip_prefix("duplicate field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return format!("{field} is given twice; keep one");
    }
    if let Some(at) = message.find("expected struct Raw") {
        message.truncate(at);
        message.push_str("expected a mapping (key: value lines)");
    }
    message
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
}

pub(super) fn location(err: &yaml_serde::Error) -> Option<Location> {
    err.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    })
}

/// The `name` of an entry when it is a non-empty scalar.
fn name_of(map: &Mapping) -> Option<String> {
    map.get("name").and_then(scalar).filter(|n| !n.is_empty())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value for a message: strings quoted, other scalars as written, collections by kind.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => scalar(other).unwrap_or_else(|| kind(other).to_owned()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
