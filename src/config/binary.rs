//! Finding and checking a companion's binary.
//!
//! `companion.path` if set (absolute, or relative to the config file's directory); otherwise a
//! file named after the plugin next to the host executable, then next to the config file. The
//! first of those that exists is the binary; it must be a regular file with an execute bit.

use std::{
    fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::{
    ConfigError,
    raw::Text,
    validate::{Check, Context},
};

/// The absolute path of the binary, checked.
pub(super) fn resolve(
    c: &Check,
    path: Option<Text>,
    name: &str,
    ctx: &Context,
) -> Result<PathBuf, ConfigError> {
    let key = c.key("companion.path");
    let (candidates, configured) = match path {
        // `join` keeps an absolute path as it is.
        Some(Text(p)) if !p.is_empty() => (vec![ctx.base_dir.join(p)], true),
        _ => (candidates(name, ctx), false),
    };
    if !ctx.check_files {
        return Ok(candidates.into_iter().next().unwrap_or_default());
    }
    for candidate in &candidates {
        match fs::metadata(candidate) {
            Ok(meta) => return check(c, key, candidate, &meta),
            Err(e) if is_absent(&e) => {}
            Err(error) => {
                return Err(ConfigError::BinaryInaccessible {
                    plugin: c.at.clone(),
                    key,
                    path: candidate.clone(),
                    error,
                });
            }
        }
    }
    Err(ConfigError::BinaryNotFound {
        plugin: c.at.clone(),
        key,
        tried: candidates,
        configured,
    })
}

/// Where a companion without `path` is looked for, in order, without repeats.
fn candidates(name: &str, ctx: &Context) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(2);
    for dir in ctx.exe_dir.iter().chain([&ctx.base_dir]) {
        let candidate = dir.join(name);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn check(c: &Check, key: String, path: &Path, meta: &fs::Metadata) -> Result<PathBuf, ConfigError> {
    if !meta.is_file() {
        return Err(ConfigError::BinaryNotAFile {
            plugin: c.at.clone(),
            key,
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(ConfigError::BinaryNotExecutable {
            plugin: c.at.clone(),
            key,
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(path.to_owned())
}
