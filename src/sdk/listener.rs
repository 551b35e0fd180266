//! The plugin's listener: a unix socket in a fresh private directory by
//! default, or TCP on loopback.

use std::{
    ffi::OsString,
    io,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use tokio::net::{TcpListener, UnixListener};

use crate::{handshake::PluginAddr, protocol::env};

/// The name prefix of the private directory a plugin's unix socket is made
/// in (`polaris-plugin-XXXXXX`); the host removes such a directory, once
/// empty, after a plugin killed by a signal left it behind.
pub(crate) const SOCKET_DIR_PREFIX: &str = "polaris-plugin-";

/// Which transport a plugin listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// A unix socket in a fresh private (0700) directory (the default, as
    /// go-plugin does on every OS but Windows).
    #[default]
    Unix,
    /// TCP on 127.0.0.1, in `[PLUGIN_MIN_PORT, PLUGIN_MAX_PORT]` when the host
    /// set them, else a port the OS picks.
    Tcp,
}

impl Transport {
    /// The transport named by `POLARIS_PLUGIN_TRANSPORT` (`unix` or `tcp`), if set.
    pub(crate) fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(env::TRANSPORT) {
            Err(_) => Ok(None),
            Ok(v) if v.eq_ignore_ascii_case("unix") => Ok(Some(Transport::Unix)),
            Ok(v) if v.eq_ignore_ascii_case("tcp") => Ok(Some(Transport::Tcp)),
            Ok(v) => Err(format!(
                "{}={v:?} is not a transport (expected unix or tcp)",
                env::TRANSPORT
            )),
        }
    }
}

/// A bound listener plus what must be cleaned up when it closes.
pub(crate) enum Bound {
    Unix {
        listener: UnixListener,
        addr: PluginAddr,
        _dir: PrivateDir,
    },
    Tcp {
        listener: TcpListener,
        addr: PluginAddr,
    },
}

impl Bound {
    pub(crate) fn addr(&self) -> &PluginAddr {
        match self {
            Bound::Unix { addr, .. } | Bound::Tcp { addr, .. } => addr,
        }
    }
}

/// Binds the listener for `transport`.
pub(crate) fn bind(transport: Transport) -> io::Result<Bound> {
    match transport {
        Transport::Unix => bind_unix(),
        Transport::Tcp => bind_tcp(),
    }
}

/// A directory the plugin created for its socket; removed (with the socket)
/// when dropped. `sdk::run` keeps it to its end, so every return path of a
/// plugin that was not killed removes it.
pub(crate) struct PrivateDir(PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bind_unix() -> io::Result<Bound> {
    bind_unix_in(&socket_base(std::env::var_os(env::UNIX_SOCKET_DIR)))
}

/// Where the private directory goes: `PLUGIN_UNIX_SOCKET_DIR` (`var`) when
/// set and not empty, else the temp dir (`$TMPDIR` or `/tmp`).
fn socket_base(var: Option<OsString>) -> PathBuf {
    var.filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn bind_unix_in(base: &Path) -> io::Result<Bound> {
    let dir =
        nix::unistd::mkdtemp(&base.join(format!("{SOCKET_DIR_PREFIX}XXXXXX"))).map_err(|e| {
            io::Error::other(format!(
                "cannot create socket directory in {}: {e}",
                base.display()
            ))
        })?;
    let dir = PrivateDir(dir); // mkdtemp makes it 0700
    let path = dir.0.join("plugin.sock");
    // sun_path holds 108 bytes on Linux, including the NUL.
    if path.as_os_str().len() > 107 {
        return Err(io::Error::other(format!(
            "socket path {} is longer than 107 bytes; set TMPDIR (or {}) to a shorter directory",
            path.display(),
            env::UNIX_SOCKET_DIR
        )));
    }
    let listener = UnixListener::bind(&path)?;
    if let Ok(group) = std::env::var(env::UNIX_SOCKET_GROUP) {
        share_with_group(&dir.0, &path, &group)?;
    }
    Ok(Bound::Unix {
        listener,
        addr: PluginAddr::Unix(path),
        _dir: dir,
    })
}

/// go-plugin's `PLUGIN_UNIX_SOCKET_GROUP`: the named group (or numeric gid)
/// may traverse the directory and connect to the socket.
fn share_with_group(dir: &Path, socket: &Path, group: &str) -> io::Result<()> {
    let gid = match group.parse::<u32>() {
        Ok(gid) => nix::unistd::Gid::from_raw(gid),
        Err(_) => {
            nix::unistd::Group::from_name(group)
                .map_err(io::Error::other)?
                .ok_or_else(|| {
                    io::Error::other(format!(
                        "{}: no group named {group:?}",
                        env::UNIX_SOCKET_GROUP
                    ))
                })?
                .gid
        }
    };
    for (p, mode) in [(dir, 0o750), (socket, 0o660)] {
        nix::unistd::chown(p, None, Some(gid)).map_err(io::Error::other)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn port_range() -> Option<(u16, u16)> {
    let get = |k| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok());
    match (get(env::MIN_PORT), get(env::MAX_PORT)) {
        (Some(0), Some(0)) | (None, _) | (_, None) => None,
        (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

fn bind_tcp() -> io::Result<Bound> {
    let std_listener = match port_range() {
        None => std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        Some((lo, hi)) => (lo..=hi)
            .find_map(|port| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "couldn't bind plugin TCP listener in ports {lo}..={hi}"
                ))
            })?,
    };
    std_listener.set_nonblocking(true)?;
    let addr: SocketAddr = std_listener.local_addr()?;
    Ok(Bound::Tcp {
        listener: TcpListener::from_std(std_listener)?,
        addr: PluginAddr::Tcp(addr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for one test under the temp dir, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("sdkl-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).unwrap();
            TestDir(path)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn socket_dir_base_is_plugin_unix_socket_dir_else_temp() {
        assert_eq!(socket_base(Some("/run/x".into())), Path::new("/run/x"));
        assert_eq!(socket_base(Some("".into())), std::env::temp_dir());
        assert_eq!(socket_base(None), std::env::temp_dir());
    }

    #[tokio::test]
    async fn socket_goes_in_a_private_dir_inside_the_base_removed_on_drop() {
        let base = TestDir::new("bind");
        let bound = bind_unix_in(&base.0).unwrap();
        let PluginAddr::Unix(socket) = bound.addr().clone() else {
            panic!("not a unix socket: {}", bound.addr())
        };
        let dir = socket.parent().unwrap().to_path_buf();
        assert_eq!(dir.parent(), Some(base.0.as_path()));
        assert!(
            dir.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(SOCKET_DIR_PREFIX)
        );
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());
        drop(bound);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert_eq!(std::fs::read_dir(&base.0).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_socket_path_over_107_bytes_is_refused() {
        let base = TestDir::new("long");
        let long = base.0.join("l".repeat(100));
        std::fs::create_dir(&long).unwrap();
        let Err(e) = bind_unix_in(&long) else {
            panic!("bound a socket path over 107 bytes")
        };
        assert!(e.to_string().contains("longer than 107 bytes"), "{e}");
        assert_eq!(
            std::fs::read_dir(&long).unwrap().count(),
            0,
            "dir left behind"
        );
    }
}
