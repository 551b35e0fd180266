//! The go-plugin handshake line, shared by the host (which parses it) and the
//! plugin SDK (which prints it).
//!
//! The line is `CORE|APP|NETWORK|ADDR|PROTOCOL[|CERT[|MUX]]`, for example
//! `1|1|unix|/tmp/plugin-abc/plugin.sock|grpc|` (Go plugins always print the
//! sixth field, empty without AutoMTLS) or `1|1|tcp|127.0.0.1:1234|grpc`
//! (Python's five fields). Parsing is pure: [`FromStr`] checks the syntax and
//! each field; [`Handshake::check_app_version`] checks the negotiated version
//! against what the host offered.
//!
//! A line has 4 to 7 fields. go-plugin's own client has varied: v1.0.1 used
//! `SplitN(line, "|", 6)` (a 7th field ended up inside the 6th), later versions
//! `Split` and ignore whatever follows field 7. No version prints more than 7
//! fields, so more is refused ([`HandshakeError::TooManyFields`]) rather than
//! guessed at.
//!
//! Errors quote what the plugin printed at most once, and only a short prefix
//! of it ([`EXCERPT_CHARS`] characters, then `… (N bytes)`): a plugin that
//! floods stdout must not make an error of the same size.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use base64::Engine as _;

/// The go-plugin core protocol version; unchanged since before go-plugin v1.0.
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// The most fields a handshake line may have: `CORE|APP|NETWORK|ADDR|PROTOCOL|CERT|MUX`.
pub const MAX_FIELDS: usize = 7;

/// How many characters of a line or field an error quotes.
pub const EXCERPT_CHARS: usize = 128;

/// `text` if it has at most [`EXCERPT_CHARS`] characters, else its first
/// [`EXCERPT_CHARS`] characters followed by `… (N bytes)`.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// Where the plugin listens, as printed in fields 3 and 4.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginAddr {
    /// `tcp|host:port`.
    Tcp(SocketAddr),
    /// `unix|/path/to/socket`.
    Unix(PathBuf),
}

impl PluginAddr {
    /// The network name used on the wire: `tcp` or `unix`.
    pub fn network(&self) -> &'static str {
        match self {
            PluginAddr::Tcp(_) => "tcp",
            PluginAddr::Unix(_) => "unix",
        }
    }
}

impl fmt::Display for PluginAddr {
    /// `tcp://127.0.0.1:1234` or `unix:/path`, for logs and status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginAddr::Tcp(a) => write!(f, "tcp://{a}"),
            PluginAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A parsed, syntactically valid handshake line.
///
/// Only the `grpc` protocol is representable: `netrpc` (Go's gob-encoded
/// net/rpc) is rejected while parsing, as no Rust host can speak it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The negotiated application protocol version (field 2).
    pub app_version: u32,
    /// The listener address (fields 3 and 4).
    pub addr: PluginAddr,
    /// The plugin's AutoMTLS server certificate, DER bytes (field 6), if it
    /// printed one longer than 50 characters (shorter values are legacy junk
    /// that go-plugin ignores too).
    pub server_cert: Option<Vec<u8>>,
    /// Field 7: whether the plugin supports gRPC broker multiplexing. Printed
    /// only when the host asked for it via `PLUGIN_MULTIPLEX_GRPC`.
    pub multiplex: Option<bool>,
}

/// Each way a handshake line can be wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Fewer than the 4 fields go-plugin requires.
    #[error(
        "unrecognized plugin handshake {line:?}: expected CORE|APP|NETWORK|ADDR|PROTOCOL, found {found} field(s); \
         a plugin must print the handshake as its first stdout line (nothing before it)"
    )]
    TooFewFields {
        /// The line as read (trimmed), cut to its first [`EXCERPT_CHARS`]
        /// characters and `… (N bytes)` when longer.
        line: String,
        /// How many `|`-separated fields it had.
        found: usize,
    },
    /// More than the 7 fields any go-plugin version prints.
    #[error(
        "unrecognized plugin handshake {line:?}: expected at most {MAX_FIELDS} fields \
         (CORE|APP|NETWORK|ADDR|PROTOCOL|CERT|MUX), found {found}; is `|` in the socket path?"
    )]
    TooManyFields {
        /// The line as read (trimmed), cut like [`TooFewFields::line`](Self::TooFewFields).
        line: String,
        /// How many `|`-separated fields it had.
        found: usize,
    },
    /// Field 1 is not `1`.
    #[error(
        "incompatible core protocol version {found:?} (expected {CORE_PROTOCOL_VERSION}); the plugin was built for a different go-plugin protocol"
    )]
    CoreVersion {
        /// The field as printed (cut to [`EXCERPT_CHARS`] characters).
        found: String,
    },
    /// Field 2 is not an integer.
    #[error("app protocol version {found:?} is not an integer")]
    AppVersionSyntax {
        /// The field as printed (cut to [`EXCERPT_CHARS`] characters).
        found: String,
    },
    /// Field 2 is a version the host did not offer.
    #[error("incompatible app protocol version {version}: the host offered {offered:?}")]
    AppVersionNotOffered {
        /// The plugin's version.
        version: u32,
        /// The host's versions (`PLUGIN_PROTOCOL_VERSIONS`).
        offered: Vec<u32>,
    },
    /// Field 3 is neither `tcp` nor `unix`.
    #[error("unknown network {found:?} (expected tcp or unix)")]
    Network {
        /// The field as printed (cut to [`EXCERPT_CHARS`] characters).
        found: String,
    },
    /// Field 4 does not parse for its network.
    #[error("bad {network} address {found:?}: {reason}")]
    Address {
        /// `tcp` or `unix`.
        network: &'static str,
        /// The field as printed (cut to [`EXCERPT_CHARS`] characters).
        found: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Field 5 is not `grpc` (missing means `netrpc` to go-plugin).
    #[error(
        "unsupported plugin protocol {found:?}: only grpc is supported (netrpc plugins must be rebuilt with gRPC)"
    )]
    Protocol {
        /// The field as printed, or `netrpc (field missing)`.
        found: String,
    },
    /// Field 6 is not unpadded standard base64 of a DER certificate.
    #[error("bad server certificate in field 6: {reason}")]
    Cert {
        /// What is wrong with it.
        reason: String,
    },
    /// Field 7 is not a boolean.
    #[error("bad multiplex flag {found:?} in field 7 (expected true or false)")]
    Multiplex {
        /// The field as printed (cut to [`EXCERPT_CHARS`] characters).
        found: String,
    },
}

impl Handshake {
    /// A plain gRPC handshake for `addr` at `app_version`, no TLS, no multiplexing.
    pub fn grpc(app_version: u32, addr: PluginAddr) -> Self {
        Handshake {
            app_version,
            addr,
            server_cert: None,
            multiplex: None,
        }
    }

    /// Checks the negotiated app version against the versions the host offered.
    pub fn check_app_version(&self, offered: &[u32]) -> Result<(), HandshakeError> {
        if offered.contains(&self.app_version) {
            Ok(())
        } else {
            Err(HandshakeError::AppVersionNotOffered {
                version: self.app_version,
                offered: offered.to_vec(),
            })
        }
    }
}

impl FromStr for Handshake {
    type Err = HandshakeError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim();
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 4 {
            return Err(HandshakeError::TooFewFields {
                line: excerpt(line),
                found: if line.is_empty() { 0 } else { fields.len() },
            });
        }
        if fields.len() > MAX_FIELDS {
            return Err(HandshakeError::TooManyFields {
                line: excerpt(line),
                found: fields.len(),
            });
        }
        if fields[0].parse::<u32>().ok() != Some(CORE_PROTOCOL_VERSION) {
            return Err(HandshakeError::CoreVersion {
                found: excerpt(fields[0]),
            });
        }
        let app_version =
            fields[1]
                .parse::<u32>()
                .map_err(|_| HandshakeError::AppVersionSyntax {
                    found: excerpt(fields[1]),
                })?;
        let addr = parse_addr(fields[2], fields[3])?;
        match fields.get(4) {
            Some(&"grpc") => {}
            Some(other) => {
                return Err(HandshakeError::Protocol {
                    found: excerpt(other),
                });
            }
            None => {
                return Err(HandshakeError::Protocol {
                    found: "netrpc (field missing)".to_owned(),
                });
            }
        }
        let server_cert = match fields.get(5) {
            Some(cert) if cert.len() > 50 => Some(parse_cert(cert)?),
            _ => None,
        };
        let multiplex = match fields.get(6) {
            None => None,
            Some(&"true") | Some(&"1") => Some(true),
            Some(&"false") | Some(&"0") => Some(false),
            Some(other) => {
                return Err(HandshakeError::Multiplex {
                    found: excerpt(other),
                });
            }
        };
        Ok(Handshake {
            app_version,
            addr,
            server_cert,
            multiplex,
        })
    }
}

fn parse_addr(network: &str, addr: &str) -> Result<PluginAddr, HandshakeError> {
    match network {
        "tcp" => addr
            .parse::<SocketAddr>()
            .map(PluginAddr::Tcp)
            .map_err(|e| HandshakeError::Address {
                network: "tcp",
                found: excerpt(addr),
                reason: e.to_string(),
            }),
        "unix" => {
            if addr.is_empty() {
                Err(HandshakeError::Address {
                    network: "unix",
                    found: String::new(),
                    reason: "empty socket path".to_owned(),
                })
            } else if !addr.starts_with('/') {
                Err(HandshakeError::Address {
                    network: "unix",
                    found: excerpt(addr),
                    reason: "socket path must be absolute".to_owned(),
                })
            } else {
                Ok(PluginAddr::Unix(PathBuf::from(addr)))
            }
        }
        other => Err(HandshakeError::Network {
            found: excerpt(other),
        }),
    }
}

fn parse_cert(field: &str) -> Result<Vec<u8>, HandshakeError> {
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(field.trim_end_matches('='))
        .map_err(|e| HandshakeError::Cert {
            reason: format!("not base64: {e}"),
        })?;
    // A DER certificate is an ASN.1 SEQUENCE.
    if der.first() != Some(&0x30) {
        return Err(HandshakeError::Cert {
            reason: "decoded bytes are not a DER certificate".to_owned(),
        });
    }
    Ok(der)
}

impl fmt::Display for Handshake {
    /// The wire form. Like Go plugins, always prints the sixth (cert) field,
    /// empty without a certificate, and the seventh only when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = match &self.addr {
            PluginAddr::Tcp(a) => a.to_string(),
            PluginAddr::Unix(p) => p.display().to_string(),
        };
        let cert = self
            .server_cert
            .as_deref()
            .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
            .unwrap_or_default();
        write!(
            f,
            "{CORE_PROTOCOL_VERSION}|{}|{}|{addr}|grpc|{cert}",
            self.app_version,
            self.addr.network()
        )?;
        if let Some(mux) = self.multiplex {
            write!(f, "|{mux}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(p: &str) -> PluginAddr {
        PluginAddr::Unix(PathBuf::from(p))
    }

    #[test]
    fn good_lines() {
        let cert_der = {
            let mut v = vec![0x30u8, 0x82];
            v.extend(std::iter::repeat_n(7u8, 60));
            v
        };
        let cert_b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&cert_der);
        let cases: Vec<(String, Handshake)> = vec![
            // Go plugin, no TLS: trailing empty sixth field.
            (
                "1|1|unix|/tmp/plugin2775163012|grpc|".into(),
                Handshake::grpc(1, unix("/tmp/plugin2775163012")),
            ),
            // Python example: five fields, TCP.
            (
                "1|1|tcp|127.0.0.1:1234|grpc".into(),
                Handshake::grpc(1, PluginAddr::Tcp("127.0.0.1:1234".parse().unwrap())),
            ),
            // Surrounding whitespace and CRLF are trimmed.
            (
                "  1|2|tcp|[::1]:80|grpc|\r\n".into(),
                Handshake::grpc(2, PluginAddr::Tcp("[::1]:80".parse().unwrap())),
            ),
            // A short sixth field is legacy junk: ignored, as go-plugin does.
            (
                "1|1|unix|/s|grpc|junk".into(),
                Handshake::grpc(1, unix("/s")),
            ),
            // Certificate and multiplex flag.
            (
                format!("1|1|unix|/s|grpc|{cert_b64}|true"),
                Handshake {
                    app_version: 1,
                    addr: unix("/s"),
                    server_cert: Some(cert_der.clone()),
                    multiplex: Some(true),
                },
            ),
            (
                "1|1|unix|/s|grpc||false".into(),
                Handshake {
                    multiplex: Some(false),
                    ..Handshake::grpc(1, unix("/s"))
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                line.parse::<Handshake>().as_ref(),
                Ok(&want),
                "line {line:?}"
            );
        }
    }

    type Check = fn(&HandshakeError) -> bool;

    #[test]
    fn bad_lines() {
        use HandshakeError as E;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, E::TooFewFields { found: 0, .. })),
            ("hello world", |e| {
                matches!(e, E::TooFewFields { found: 1, .. })
            }),
            ("1|1|unix", |e| {
                matches!(e, E::TooFewFields { found: 3, .. })
            }),
            (
                "2|1|unix|/s|grpc",
                |e| matches!(e, E::CoreVersion { found } if found == "2"),
            ),
            ("x|1|unix|/s|grpc", |e| matches!(e, E::CoreVersion { .. })),
            (
                "1|one|unix|/s|grpc",
                |e| matches!(e, E::AppVersionSyntax { found } if found == "one"),
            ),
            (
                "1|1|udp|/s|grpc",
                |e| matches!(e, E::Network { found } if found == "udp"),
            ),
            ("1|1|tcp|localhost|grpc", |e| {
                matches!(e, E::Address { network: "tcp", .. })
            }),
            ("1|1|tcp|127.0.0.1:99999|grpc", |e| {
                matches!(e, E::Address { network: "tcp", .. })
            }),
            ("1|1|unix||grpc", |e| {
                matches!(
                    e,
                    E::Address {
                        network: "unix",
                        ..
                    }
                )
            }),
            ("1|1|unix|relative.sock|grpc", |e| {
                matches!(
                    e,
                    E::Address {
                        network: "unix",
                        ..
                    }
                )
            }),
            (
                "1|1|unix|/s|netrpc",
                |e| matches!(e, E::Protocol { found } if found == "netrpc"),
            ),
            (
                "1|1|unix|/s",
                |e| matches!(e, E::Protocol { found } if found.starts_with("netrpc")),
            ),
            (
                "1|1|unix|/s|grpc|!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
                |e| matches!(e, E::Cert { .. }),
            ),
            (
                "1|1|unix|/s|grpc|QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB",
                |e| matches!(e, E::Cert { reason } if reason.contains("DER")),
            ),
            (
                "1|1|unix|/s|grpc||yes",
                |e| matches!(e, E::Multiplex { found } if found == "yes"),
            ),
        ];
        for (line, check) in cases {
            let err = line.parse::<Handshake>().expect_err(line);
            assert!(check(&err), "line {line:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn app_version_must_be_offered() {
        let hs: Handshake = "1|3|unix|/s|grpc|".parse().unwrap();
        assert_eq!(hs.check_app_version(&[1, 3]), Ok(()));
        let err = hs.check_app_version(&[1, 2]).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::AppVersionNotOffered {
                version: 3,
                offered: vec![1, 2]
            }
        );
        assert!(err.to_string().contains("[1, 2]"));
    }

    #[test]
    fn display_round_trips() {
        let hs = Handshake::grpc(1, unix("/tmp/p/plugin.sock"));
        assert_eq!(hs.to_string(), "1|1|unix|/tmp/p/plugin.sock|grpc|");
        let tcp = Handshake {
            multiplex: Some(false),
            ..Handshake::grpc(2, PluginAddr::Tcp("127.0.0.1:10000".parse().unwrap()))
        };
        assert_eq!(tcp.to_string(), "1|2|tcp|127.0.0.1:10000|grpc||false");
        for hs in [hs, tcp] {
            assert_eq!(hs.to_string().parse::<Handshake>(), Ok(hs));
        }
    }

    /// Fault F9: a 64 KiB garbage line made a 262,707-byte error. Every error
    /// quotes a short prefix of what the plugin printed, once.
    #[test]
    fn errors_quote_a_short_prefix_once() {
        let garbage = "x".repeat(64 * 1024);
        let lines = [
            garbage.clone(),
            format!("{garbage}|1|unix|/s|grpc"),
            format!("1|{garbage}|unix|/s|grpc"),
            format!("1|1|{garbage}|/s|grpc"),
            format!("1|1|tcp|{garbage}|grpc"),
            format!("1|1|unix|{garbage}|grpc"),
            format!("1|1|unix|/s|{garbage}"),
            format!("1|1|unix|/s|grpc||{garbage}"),
            format!("1|1|unix|/s|grpc|||{garbage}"),
        ];
        for line in &lines {
            let err = line.parse::<Handshake>().expect_err("garbage");
            let text = err.to_string();
            assert!(text.len() < 600, "{} bytes: {text}", text.len());
            // One quote, cut, with the full length: `… (N bytes)`, N >= 64 KiB.
            assert_eq!(text.matches("… (").count(), 1, "{text}");
            let n: usize = text
                .split("… (")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(n >= 64 * 1024, "{text}");
        }
        // Short values are quoted whole.
        let err = "1|1|udp|/s|grpc".parse::<Handshake>().unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Network {
                found: "udp".into()
            }
        );
        // The cut is on a character boundary.
        assert_eq!(
            excerpt(&"é".repeat(200)),
            format!("{}… (400 bytes)", "é".repeat(128))
        );
        assert_eq!(excerpt(&"é".repeat(128)), "é".repeat(128));
    }

    #[test]
    fn four_to_seven_fields() {
        let four = "1|1|unix|/s".parse::<Handshake>().unwrap_err();
        assert!(matches!(four, HandshakeError::Protocol { .. }), "{four:?}");
        assert_eq!(
            "1|1|unix|/s|grpc||true"
                .parse::<Handshake>()
                .map(|h| h.multiplex),
            Ok(Some(true))
        );
        let eight = "1|1|unix|/s|grpc||true|extra"
            .parse::<Handshake>()
            .unwrap_err();
        assert_eq!(
            eight,
            HandshakeError::TooManyFields {
                line: "1|1|unix|/s|grpc||true|extra".into(),
                found: 8
            }
        );
        let pipe = "1|1|unix|/tmp/a|b|c/plugin.sock|grpc|"
            .parse::<Handshake>()
            .unwrap_err();
        assert!(
            pipe.to_string().contains("`|` in the socket path"),
            "{pipe}"
        );
    }

    mod properties {
        use std::net::{IpAddr, SocketAddr};

        use proptest::prelude::*;

        use super::super::*;

        fn addr() -> impl Strategy<Value = PluginAddr> {
            prop_oneof![
                (any::<IpAddr>(), any::<u16>())
                    .prop_map(|(ip, port)| PluginAddr::Tcp(SocketAddr::new(ip, port))),
                "/[^|]{0,40}".prop_map(|p| PluginAddr::Unix(PathBuf::from(p))),
            ]
        }

        fn cert() -> impl Strategy<Value = Option<Vec<u8>>> {
            // Longer than 50 base64 characters (38 bytes), starting like DER.
            let der = proptest::collection::vec(any::<u8>(), 37..200).prop_map(|mut v| {
                v.insert(0, 0x30);
                v
            });
            proptest::option::of(der)
        }

        fn handshake() -> impl Strategy<Value = Handshake> {
            (
                any::<u32>(),
                addr(),
                cert(),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(|(app_version, addr, server_cert, multiplex)| Handshake {
                    app_version,
                    addr,
                    server_cert,
                    multiplex,
                })
        }

        /// Lines made of handshake-like tokens, to get past the first checks.
        fn line_like() -> impl Strategy<Value = String> {
            let token = prop_oneof![
                Just("1".to_owned()),
                Just("|".to_owned()),
                Just("unix".to_owned()),
                Just("tcp".to_owned()),
                Just("grpc".to_owned()),
                Just("/s".to_owned()),
                Just("127.0.0.1:1".to_owned()),
                Just("true".to_owned()),
                Just("MIIB".repeat(14)),
                any::<char>().prop_map(String::from),
            ];
            proptest::collection::vec(token, 0..24).prop_map(|t| t.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn display_then_parse_round_trips(hs in handshake()) {
                prop_assert_eq!(hs.to_string().parse::<Handshake>(), Ok(hs));
            }

            #[test]
            fn parsing_never_panics(line in any::<String>()) {
                let _ = line.parse::<Handshake>();
            }

            #[test]
            fn parsing_handshake_like_lines_never_panics(line in line_like()) {
                if let Err(e) = line.parse::<Handshake>() {
                    prop_assert!(e.to_string().len() < 1200);
                }
            }
        }
    }
}
