//! The YAML as written: serde types with every field optional, no checks beyond types.
//!
//! Both forms end up as a [`RawPlugin`]; `validate` turns that into a
//! [`PluginConfig`](super::PluginConfig). Scalars that are parsed later (durations, addresses,
//! names) are kept as [`Text`] so the error can name the plugin and the key.

use std::fmt;

use super::Sha256Digest;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};

/// The native form's part of the document. Every other top-level key is the host's and ignored.
#[derive(Debug, Deserialize)]
pub(super) struct RawDocument {
    #[serde(default)]
    pub(super) plugins: Option<Vec<RawPlugin>>,
}

/// One plugin entry of the native form (and what a Polaris `option` is turned into).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawPlugin {
    pub(super) name: Option<Text>,
    pub(super) mode: Option<Text>,
    pub(super) call_timeout: Option<Text>,
    pub(super) drain_timeout: Option<Text>,
    pub(super) health: Option<RawHealth>,
    pub(super) companion: Option<RawCompanion>,
    pub(super) remote: Option<RawRemote>,
    pub(super) retry: Option<Text>,
    pub(super) max_concurrent_calls: Option<Int>,
    pub(super) max_queued_calls: Option<Int>,
    pub(super) on_unavailable: Option<Text>,
    pub(super) fallback: Option<RawFallback>,
}

/// `fallback: { type: proto.X, json: { ... } }`; `json` is kept as a JSON value for the
/// message's JSON mapping.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFallback {
    #[serde(rename = "type")]
    pub(super) type_name: Option<Text>,
    pub(super) json: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawHealth {
    pub(super) interval: Option<Text>,
    pub(super) timeout: Option<Text>,
    pub(super) failure_threshold: Option<Int>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCompanion {
    pub(super) path: Option<Text>,
    pub(super) args: Option<Vec<Text>>,
    pub(super) env: Option<RawEnv>,
    pub(super) max_procs: Option<Int>,
    pub(super) cpus: Option<Vec<Int>>,
    pub(super) start_timeout: Option<Text>,
    pub(super) stop_grace: Option<Text>,
    pub(super) restart: Option<RawRestart>,
    pub(super) sha256: Option<RawDigest>,
    pub(super) watch: Option<bool>,
    pub(super) auto_mtls: Option<bool>,
    /// `all`, `none`, or a list of names: read as YAML and checked in validate.
    pub(super) env_inherit: Option<yaml_serde::Value>,
    pub(super) limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawLimits {
    pub(super) memory: Option<Text>,
    pub(super) open_files: Option<Int>,
    pub(super) processes: Option<Int>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRestart {
    pub(super) policy: Option<Text>,
    pub(super) min_uptime: Option<Text>,
    pub(super) reset_after: Option<Text>,
    pub(super) max_restarts: Option<Int>,
    pub(super) window: Option<Text>,
    pub(super) backoff: Option<RawBackoff>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawBackoff {
    pub(super) initial: Option<Text>,
    pub(super) factor: Option<f64>,
    pub(super) max: Option<Text>,
    pub(super) jitter: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRemote {
    pub(super) address: Option<RawAddress>,
    pub(super) connect_timeout: Option<Text>,
    pub(super) keepalive: Option<Text>,
    pub(super) connections: Option<Text>,
    pub(super) backoff: Option<RawBackoff>,
    pub(super) tls: Option<RawRemoteTls>,
    pub(super) resolve_interval: Option<Text>,
    pub(super) consecutive_failures: Option<Int>,
    pub(super) base_ejection_time: Option<Text>,
    pub(super) max_ejection_time: Option<Text>,
    pub(super) max_ejection_percent: Option<Int>,
}

/// `remote.address`: one address (`host:port`, `unix:/path`, `dns:///name:port`) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawAddress {
    One(Text),
    List(Vec<Text>),
}

impl<'de> Deserialize<'de> for RawAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AddressVisitor)
    }
}

struct AddressVisitor;

impl<'de> Visitor<'de> for AddressVisitor {
    type Value = RawAddress;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address or a list of addresses")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawAddress, E> {
        TextVisitor.visit_str(v).map(RawAddress::One)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RawAddress, E> {
        Ok(RawAddress::One(Text(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawAddress, E> {
        Ok(RawAddress::One(Text(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawAddress, E> {
        Ok(RawAddress::One(Text(v.to_string())))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawAddress, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(text) = seq.next_element()? {
            list.push(text);
        }
        Ok(RawAddress::List(list))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRemoteTls {
    pub(super) ca_file: Option<Text>,
    pub(super) cert_file: Option<Text>,
    pub(super) key_file: Option<Text>,
    pub(super) server_name: Option<Text>,
    pub(super) insecure_skip_verify: Option<bool>,
}

/// The keys of each native section, for "unknown key" messages (a test checks them against
/// the serde derive above).
pub(super) const PLUGIN_KEYS: &[&str] = &[
    "name",
    "mode",
    "call-timeout",
    "drain-timeout",
    "health",
    "companion",
    "remote",
    "retry",
    "max-concurrent-calls",
    "max-queued-calls",
    "on-unavailable",
    "fallback",
];
pub(super) const FALLBACK_KEYS: &[&str] = &["type", "json"];
pub(super) const HEALTH_KEYS: &[&str] = &["interval", "timeout", "failure-threshold"];
pub(super) const COMPANION_KEYS: &[&str] = &[
    "path",
    "args",
    "env",
    "max-procs",
    "cpus",
    "start-timeout",
    "stop-grace",
    "restart",
    "sha256",
    "watch",
    "auto-mtls",
    "env-inherit",
    "limits",
];
pub(super) const LIMITS_KEYS: &[&str] = &["memory", "open-files", "processes"];
pub(super) const RESTART_KEYS: &[&str] = &[
    "policy",
    "min-uptime",
    "reset-after",
    "max-restarts",
    "window",
    "backoff",
];
pub(super) const BACKOFF_KEYS: &[&str] = &["initial", "factor", "max", "jitter"];
pub(super) const REMOTE_KEYS: &[&str] = &[
    "address",
    "connect-timeout",
    "keepalive",
    "connections",
    "backoff",
    "tls",
    "resolve-interval",
    "consecutive-failures",
    "base-ejection-time",
    "max-ejection-time",
    "max-ejection-percent",
];
pub(super) const TLS_KEYS: &[&str] = &[
    "ca-file",
    "cert-file",
    "key-file",
    "server-name",
    "insecure-skip-verify",
];

/// The valid keys of the section whose last key is `parent` (`None`: the plugin entry).
pub(super) fn keys_of(parent: Option<&str>) -> &'static [&'static str] {
    match parent {
        Some("health") => HEALTH_KEYS,
        Some("companion") => COMPANION_KEYS,
        Some("restart") => RESTART_KEYS,
        Some("limits") => LIMITS_KEYS,
        Some("backoff") => BACKOFF_KEYS,
        Some("remote") => REMOTE_KEYS,
        Some("tls") => TLS_KEYS,
        Some("fallback") => FALLBACK_KEYS,
        _ => PLUGIN_KEYS,
    }
}

/// The Polaris form's `option`: only these keys are read, every other is the host's business.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawPolarisOption {
    pub(super) name: Option<Text>,
    pub(super) companion: Option<RawPolarisCompanion>,
    pub(super) remote: Option<RawPolarisRemote>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawPolarisCompanion {
    pub(super) path: Option<Text>,
    pub(super) max_procs: Option<Int>,
    pub(super) args: Option<Vec<Text>>,
    pub(super) sha256: Option<RawDigest>,
    pub(super) watch: Option<bool>,
    pub(super) auto_mtls: Option<bool>,
    pub(super) env_inherit: Option<yaml_serde::Value>,
    pub(super) limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawPolarisRemote {
    pub(super) address: Option<RawAddress>,
}

impl RawPolarisOption {
    /// The same settings as a native entry, everything not read left unset (default).
    pub(super) fn into_plugin(self, mode: &str) -> RawPlugin {
        RawPlugin {
            name: self.name,
            mode: Some(Text(mode.to_owned())),
            companion: self.companion.map(|c| RawCompanion {
                path: c.path,
                max_procs: c.max_procs,
                args: c.args,
                sha256: c.sha256,
                watch: c.watch,
                auto_mtls: c.auto_mtls,
                env_inherit: c.env_inherit,
                limits: c.limits,
                ..RawCompanion::default()
            }),
            remote: self.remote.map(|r| RawRemote {
                address: r.address,
                ..RawRemote::default()
            }),
            ..RawPlugin::default()
        }
    }
}

/// A scalar taken as text, exactly as written: `8080`, `1.10`, `true` and `"8080"` all become
/// strings (`"1.10"`, not `"1.1"`), as Go's YAML decoder does for string fields. Sequences
/// and mappings are type errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text(pub(super) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // yaml_serde hands a plain scalar to `visit_str` as written; numbers and booleans
        // are accepted too for deserializers that resolve them first.
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
}

/// `sha256: <64 hex digits>`, checked while parsing so that a bad one is reported with its
/// line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawDigest(pub(super) Sha256Digest);

impl<'de> Deserialize<'de> for RawDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so that the parser places the error at the value.
        deserializer.deserialize_str(DigestVisitor)
    }
}

struct DigestVisitor;

impl DigestVisitor {
    fn parse<E: de::Error>(text: &str) -> Result<RawDigest, E> {
        text.parse().map(RawDigest).map_err(|reason| {
            E::custom(format!(
                "{} is not a SHA-256 digest: {reason}; write the 64 hex digits that `sha256sum BINARY` or `polaris-plugin check CONFIG` prints",
                short(text)
            ))
        })
    }
}

impl Visitor<'_> for DigestVisitor {
    type Value = RawDigest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDigest, E> {
        Self::parse(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDigest, E> {
        Self::parse(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDigest, E> {
        Self::parse(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDigest, E> {
        Self::parse(&v.to_string())
    }
}

/// `text` quoted, at most 80 characters of it.
fn short(text: &str) -> String {
    match text.char_indices().nth(80) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…", &text[..end]),
    }
}

/// An integer as written, range-checked later so that the message can say which integers
/// are valid (`99999999999999999999` and `four` alike). Not a string, list or mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Int(pub(super) String);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(IntVisitor)
    }
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = Int;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
        Ok(Int(v.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Int, E> {
        Ok(Int(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
        Ok(Int(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
        Ok(Int(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
        Ok(Int(v.to_string()))
    }
}

/// `env: {K: V, ...}` in the order written, duplicates kept (validation rejects them).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RawEnv(pub(super) Vec<(Text, Text)>);

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvVisitor)
    }
}

struct EnvVisitor;

impl<'de> Visitor<'de> for EnvVisitor {
    type Value = RawEnv;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of variable names to values, like {RUST_LOG: debug}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEnv, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(RawEnv(pairs))
    }
}
