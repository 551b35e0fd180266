//! The host's `admin:` section: where the admin HTTP API listens and the bearer token that
//! guards it. Read in both forms (a top-level key beside `plugin:` or `plugins:`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_path_to_error::Segment;

use super::{ConfigError, document};

/// Where the admin API listens when `admin.listen` is not given (`polaris-plugin run`
/// serves it there unless told otherwise). Polaris server's own admin port is 9090; this
/// one differs so the two can run side by side.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9190";

/// The `admin:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminConfig {
    /// The address to listen on (`admin.listen`, an IP address and port).
    pub listen: SocketAddr,
    /// A file whose content (trimmed) is the bearer token every request must carry
    /// (`admin.token-file`; relative to the config's directory). Required when `listen` is
    /// not a loopback address.
    pub token_file: Option<PathBuf>,
}

impl AdminConfig {
    /// Listening on `listen`, without a token.
    pub fn new(listen: SocketAddr) -> Self {
        AdminConfig {
            listen,
            token_file: None,
        }
    }

    /// Requiring the token in `path`.
    pub fn with_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// The rule a loaded section obeys: an address other machines can reach needs a token.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback() && self.token_file.is_none() {
            return Err(ConfigError::Admin {
                key: "admin.listen".into(),
                location: None,
                message: format!(
                    "{} is reachable from other machines, so the admin API needs a bearer token: set admin.token-file (a file holding the token), or listen on a loopback address such as {DEFAULT_ADMIN_LISTEN}",
                    self.listen
                ),
            });
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(default)]
    admin: Option<RawAdmin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAdmin {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

/// The `admin:` section of `yaml`, if it has one; relative paths against `base_dir`.
pub(super) fn read(yaml: &str, base_dir: &Path) -> Result<Option<AdminConfig>, ConfigError> {
    let doc: RawDocument = serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(
        yaml,
    ))
    .map_err(|err| {
        let key = err
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Map { key } => Some(key.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(".");
        let mut message = document::clean_message(err.inner(), err.path());
        if message.starts_with("unknown field") {
            message.push_str(" (admin has listen and token-file)");
        }
        ConfigError::Admin {
            key: if key.is_empty() { "admin".into() } else { key },
            location: document::location(err.inner()),
            message,
        }
    })?;
    let Some(raw) = doc.admin else {
        return Ok(None);
    };
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen = listen.parse().map_err(|_| ConfigError::Admin {
        key: "admin.listen".into(),
        location: None,
        message: format!(
            "{listen:?} is not an IP address and port (such as {DEFAULT_ADMIN_LISTEN} or [::1]:9190)"
        ),
    })?;
    let admin = AdminConfig {
        listen,
        token_file: raw.token_file.map(|p| base_dir.join(p)),
    };
    admin.validate()?;
    Ok(Some(admin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(yaml: &str) -> Result<Option<AdminConfig>, String> {
        read(yaml, Path::new("/etc/host")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_is_optional_and_read_in_both_forms() {
        assert_eq!(read_str("plugins: []\n"), Ok(None));
        let a = read_str("plugin: {}\nadmin:\n  listen: 127.0.0.1:9300\n")
            .unwrap()
            .unwrap();
        assert_eq!(a.listen, "127.0.0.1:9300".parse().unwrap());
        let a = read_str("admin: {}\n").unwrap().unwrap();
        assert_eq!(a.listen.to_string(), DEFAULT_ADMIN_LISTEN);
        let a = read_str("admin: { listen: '0.0.0.0:9190', token-file: tok }\n")
            .unwrap()
            .unwrap();
        assert_eq!(a.token_file, Some(PathBuf::from("/etc/host/tok")));
    }

    #[test]
    fn bad_sections_are_named() {
        let e = read_str("admin:\n  listen: 0.0.0.0:9190\n").unwrap_err();
        assert!(
            e.contains("admin.listen") && e.contains("token-file"),
            "{e}"
        );
        let e = read_str("admin:\n  listen: localhost\n").unwrap_err();
        assert!(
            e.contains("\"localhost\" is not an IP address and port"),
            "{e}"
        );
        let e = read_str("admin:\n  token: x\n").unwrap_err();
        assert!(
            e.contains("admin") && e.contains("token") && e.contains("line 2"),
            "{e}"
        );
        let e = read_str("admin: [1]\n").unwrap_err();
        assert!(e.starts_with("admin"), "{e}");
    }
}
