//! A pluggable plugin's name: its socket file's name without the last extension
//! (`auth.sock` → `auth`), as Dapr's pluggable components are named, so that the operator
//! who places the socket names the plugin. Plugins do not report a name of their own: gRPC
//! reflection has no field for one, and a name the plugin chose could claim another's.

use std::{ffi::OsStr, path::Path};

use crate::config::PluginConfig;

/// The plugin name for the socket file `file_name`, or why it cannot be one.
pub(crate) fn name_of(file_name: &OsStr) -> Result<String, String> {
    let Some(text) = file_name.to_str() else {
        return Err(format!(
            "the socket's file name {file_name:?} is not UTF-8, so it cannot be a plugin name"
        ));
    };
    let stem = Path::new(text)
        .file_stem()
        .and_then(OsStr::to_str)
        .unwrap_or(text);
    let problem = if stem.is_empty() {
        Some("it is empty")
    } else if stem.len() > PluginConfig::MAX_NAME_BYTES {
        Some("it is longer than 128 bytes")
    } else if stem.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if stem.trim() != stem {
        Some("it starts or ends with whitespace")
    } else if stem.starts_with('.') {
        Some("it is a hidden file (its name starts with `.`)")
    } else {
        None
    };
    match problem {
        None => Ok(stem.to_owned()),
        Some(why) => Err(format!(
            "the socket {text:?} gives the plugin name {stem:?}, which is not usable: {why}; rename the socket"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(file: &str) -> Result<String, String> {
        name_of(OsStr::new(file))
    }

    #[test]
    fn the_name_is_the_file_name_without_its_last_extension() {
        assert_eq!(name("auth.sock").unwrap(), "auth");
        assert_eq!(name("rate-limit").unwrap(), "rate-limit");
        assert_eq!(name("state.redis.sock").unwrap(), "state.redis");
        assert_eq!(name("a b.sock").unwrap(), "a b");
    }

    #[test]
    fn unusable_names_say_why() {
        for (file, why) in [
            (".sock", "hidden"),
            (".hidden.sock", "hidden"),
            (" padded.sock", "whitespace"),
            ("tab\t.sock", "control character"),
        ] {
            let e = name(file).unwrap_err();
            assert!(
                e.contains(why) && e.contains("rename the socket"),
                "{file}: {e}"
            );
        }
        let long = format!("{}.sock", "x".repeat(129));
        assert!(name(&long).unwrap_err().contains("longer than 128"));
        assert_eq!(
            name(&format!("{}.sock", "x".repeat(128))).unwrap().len(),
            128
        );
        use std::os::unix::ffi::OsStrExt as _;
        let e = name_of(OsStr::from_bytes(b"\xff.sock")).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
