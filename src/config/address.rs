//! Remote plugin addresses: `host:port` or `unix:/absolute/path`.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    str::FromStr,
};

/// Where a remote plugin listens.
///
/// Parsed from `host:port` (`127.0.0.1:8972`, `0.0.0.0:8972`, `localhost:8972`, `[::1]:8972`)
/// or `unix:/absolute/path`. [`Display`](fmt::Display) gives the same text back.
///
/// ```
/// use polaris_plugin::config::RemoteAddress;
///
/// let a: RemoteAddress = "[::1]:8972".parse().unwrap();
/// assert_eq!(a, RemoteAddress::Tcp { host: "::1".into(), port: 8972 });
/// assert_eq!(a.to_uri(), "http://[::1]:8972");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteAddress {
    /// A TCP address. An IPv6 host is stored without brackets.
    Tcp {
        /// A host name, an IPv4 address or an IPv6 address (without brackets).
        host: String,
        /// The port, 1 to 65535.
        port: u16,
    },
    /// A unix domain socket at an absolute path.
    Unix(PathBuf),
}

impl RemoteAddress {
    /// The URI to connect to: `http://host:port` (IPv6 hosts in brackets) or `unix:/path`.
    pub fn to_uri(&self) -> String {
        match self {
            Self::Tcp { .. } => format!("http://{self}"),
            Self::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}

impl fmt::Display for RemoteAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Why an address could not be parsed. The [`Display`](fmt::Display) text says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text is empty.
    #[error("it is empty; {FORMS}")]
    Empty,
    /// A scheme such as `http://` in front.
    #[error("drop the {scheme}:// prefix; {FORMS}")]
    Scheme {
        /// The scheme as written.
        scheme: String,
    },
    /// No host, as in `8972` or `:8972`.
    #[error("it has no host; write 127.0.0.1:{port} or localhost:{port}")]
    MissingHost {
        /// The port as written.
        port: String,
    },
    /// No port, as in `host` or `host:`.
    #[error("it has no port; write {host}:PORT with a port in 1..=65535")]
    MissingPort {
        /// The host as written (bracketed if IPv6).
        host: String,
    },
    /// A port that is not a number in `1..=65535`.
    #[error("port {port:?} is not a number in 1..=65535")]
    Port {
        /// The port as written.
        port: String,
    },
    /// A host that is neither a host name nor an IP address.
    #[error("host {host:?} is not a host name or an IP address")]
    Host {
        /// The host as written.
        host: String,
    },
    /// An IPv6 address without brackets.
    #[error("an IPv6 address needs brackets around it, as in [{host}]:PORT")]
    UnbracketedIpv6 {
        /// The IPv6 address.
        host: String,
    },
    /// `unix:` followed by a relative or empty path.
    #[error("a unix socket path must be absolute, as in unix:/run/plugin.sock; got {path:?}")]
    RelativeUnixPath {
        /// The path as written.
        path: String,
    },
}

const FORMS: &str = "write host:port (e.g. 127.0.0.1:8972) or unix:/absolute/path";

impl FromStr for RemoteAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return parse_unix(path);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(AddressError::Scheme {
                scheme: scheme.into(),
            });
        }
        let (host, port) = split_host_port(text)?;
        if host.is_empty() {
            return Err(AddressError::MissingHost { port: port.into() });
        }
        if port.is_empty() {
            return Err(AddressError::MissingPort {
                host: text.trim_end_matches(':').into(),
            });
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(AddressError::Port { port: port.into() }),
        };
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

fn parse_unix(path: &str) -> Result<RemoteAddress, AddressError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(AddressError::RelativeUnixPath { path: path.into() });
    }
    // Collecting the components folds `//` and `/./` away: `unix:///run/x` is `/run/x`.
    Ok(RemoteAddress::Unix(p.components().collect()))
}

/// Splits `host:port`, `[v6]:port`, `:port`, `host:`; checks the host's syntax.
fn split_host_port(text: &str) -> Result<(&str, &str), AddressError> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(AddressError::Host { host: text.into() });
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(AddressError::Host { host: host.into() });
        }
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, port)),
            None if after.is_empty() => Err(AddressError::MissingPort { host: text.into() }),
            None => Err(AddressError::Host { host: text.into() }),
        };
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Err(AddressError::UnbracketedIpv6 { host: text.into() });
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::MissingHost { port: text.into() });
        }
        return Err(AddressError::MissingPort { host: text.into() });
    };
    if host.contains(':') {
        return Err(if host.parse::<Ipv6Addr>().is_ok() {
            AddressError::UnbracketedIpv6 { host: host.into() }
        } else {
            AddressError::Host { host: host.into() }
        });
    }
    if !host.is_empty() && !valid_host(host) {
        return Err(AddressError::Host { host: host.into() });
    }
    Ok((host, port))
}

/// An IPv4 address or a DNS-style host name (letters, digits, `-`, `_`, dot-separated labels).
fn valid_host(host: &str) -> bool {
    if host.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let labels_ok = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    // All-numeric labels that are not an IPv4 address (`256.1.1.1`, `1.2.3`) are a typo.
    let all_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    labels_ok && !all_numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> RemoteAddress {
        RemoteAddress::Tcp {
            host: host.into(),
            port,
        }
    }

    fn parse(text: &str) -> Result<RemoteAddress, AddressError> {
        text.parse()
    }

    #[test]
    fn parses_tcp_forms() {
        assert_eq!(parse("127.0.0.1:8972"), Ok(tcp("127.0.0.1", 8972)));
        assert_eq!(parse("0.0.0.0:8972"), Ok(tcp("0.0.0.0", 8972)));
        assert_eq!(parse("localhost:8972"), Ok(tcp("localhost", 8972)));
        assert_eq!(
            parse("plugin-1.svc.local:80"),
            Ok(tcp("plugin-1.svc.local", 80))
        );
        assert_eq!(parse("[::1]:80"), Ok(tcp("::1", 80)));
        assert_eq!(parse(" [fe80::1]:65535 "), Ok(tcp("fe80::1", 65535)));
    }

    #[test]
    fn parses_unix_forms() {
        assert_eq!(
            parse("unix:/run/plugin.sock"),
            Ok(RemoteAddress::Unix("/run/plugin.sock".into()))
        );
        assert_eq!(
            parse("unix:///run/plugin.sock"),
            Ok(RemoteAddress::Unix("/run/plugin.sock".into()))
        );
    }

    #[test]
    fn display_and_uri() {
        for text in [
            "127.0.0.1:8972",
            "localhost:1",
            "[::1]:80",
            "unix:/tmp/p.sock",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        assert_eq!(tcp("0.0.0.0", 8972).to_uri(), "http://0.0.0.0:8972");
        assert_eq!(tcp("::1", 80).to_uri(), "http://[::1]:80");
        assert_eq!(
            RemoteAddress::Unix("/tmp/p.sock".into()).to_uri(),
            "unix:/tmp/p.sock"
        );
    }

    #[test]
    fn rejects_bad_addresses_with_a_hint() {
        let cases = [
            (
                "",
                "it is empty; write host:port (e.g. 127.0.0.1:8972) or unix:/absolute/path",
            ),
            (
                "8972",
                "it has no host; write 127.0.0.1:8972 or localhost:8972",
            ),
            (
                ":8972",
                "it has no host; write 127.0.0.1:8972 or localhost:8972",
            ),
            (
                "host:",
                "it has no port; write host:PORT with a port in 1..=65535",
            ),
            (
                "host",
                "it has no port; write host:PORT with a port in 1..=65535",
            ),
            (
                "[::1]",
                "it has no port; write [::1]:PORT with a port in 1..=65535",
            ),
            ("host:99999", "port \"99999\" is not a number in 1..=65535"),
            ("host:0", "port \"0\" is not a number in 1..=65535"),
            ("host:+80", "port \"+80\" is not a number in 1..=65535"),
            ("host:http", "port \"http\" is not a number in 1..=65535"),
            (
                "unix:relative.sock",
                "a unix socket path must be absolute, as in unix:/run/plugin.sock; got \"relative.sock\"",
            ),
            (
                "unix:",
                "a unix socket path must be absolute, as in unix:/run/plugin.sock; got \"\"",
            ),
            (
                "http://host:80",
                "drop the http:// prefix; write host:port (e.g. 127.0.0.1:8972) or unix:/absolute/path",
            ),
            (
                "::1:80",
                "an IPv6 address needs brackets around it, as in [::1:80]:PORT",
            ),
            (
                "fe80::1]:80",
                "host \"fe80::1]\" is not a host name or an IP address",
            ),
            ("a b:80", "host \"a b\" is not a host name or an IP address"),
            (
                "256.1.1.1:80",
                "host \"256.1.1.1\" is not a host name or an IP address",
            ),
            ("[zz]:80", "host \"zz\" is not a host name or an IP address"),
        ];
        for (text, message) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.to_string(), message, "for {text:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn address() -> impl Strategy<Value = RemoteAddress> {
        prop_oneof![
            (any::<Ipv4Addr>(), 1..=u16::MAX).prop_map(|(ip, port)| RemoteAddress::Tcp {
                host: ip.to_string(),
                port
            }),
            (any::<Ipv6Addr>(), 1..=u16::MAX).prop_map(|(ip, port)| RemoteAddress::Tcp {
                host: ip.to_string(),
                port
            }),
            (
                "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9_-]{0,10}){0,3}",
                1..=u16::MAX
            )
                .prop_map(|(host, port)| RemoteAddress::Tcp { host, port }),
            "(/[a-zA-Z0-9._-]{1,12}){1,4}"
                .prop_filter("not a dot component", |p| !p.split('/').any(|c| c == "."))
                .prop_map(|p| RemoteAddress::Unix(p.into())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn display_then_parse_is_the_identity(a in address()) {
            prop_assert_eq!(a.to_string().parse::<RemoteAddress>(), Ok(a));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = text.parse::<RemoteAddress>();
        }
    }
}
