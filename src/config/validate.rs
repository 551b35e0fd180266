//! [`RawPlugin`](super::raw::RawPlugin) → [`PluginConfig`]: defaults and parsing, one plugin at
//! a time, then the invariants of [`rules`](super::rules) on the typed result.
//!
//! What only the text or the machine can tell is checked here: missing keys, unknown
//! spellings, integers that do not fit, CPUs this process may not use, the binary on disk.

use std::{num::NonZeroUsize, path::PathBuf, time::Duration};

use super::{
    BackoffConfig, CompanionConfig, ConfigError, CpuConfig, DurationError, EjectionConfig,
    Endpoints, EnvInherit, FleetConfig, HealthConfig, LimitsConfig, PluginConfig, PluginKind,
    PluginRef, RemoteAddress, RemoteConfig, RemoteTlsConfig, RestartConfig, RestartPolicy, binary,
    document::Entry,
    parse_duration, policy,
    raw::{
        Int, RawAddress, RawBackoff, RawCompanion, RawEnv, RawHealth, RawLimits, RawRemote,
        RawRemoteTls, RawRestart, Text,
    },
    rules,
};

/// What validation needs from outside the text.
#[derive(Debug, Clone)]
pub(super) struct Context {
    /// Relative paths are relative to this (absolute) directory.
    pub(super) base_dir: PathBuf,
    /// The host executable's directory, looked in for companions without a path.
    pub(super) exe_dir: Option<PathBuf>,
    /// The CPUs this process may run on; `None` skips the check.
    pub(super) allowed_cpus: Option<Vec<usize>>,
    /// Whether companion binaries are checked on disk.
    pub(super) check_files: bool,
}

impl Context {
    pub(super) fn new(base_dir: PathBuf) -> Self {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from));
        Self {
            base_dir,
            exe_dir,
            allowed_cpus: allowed_cpus(),
            check_files: true,
        }
    }
}

/// The CPUs in this process's affinity mask.
fn allowed_cpus() -> Option<Vec<usize>> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    Some(
        (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .collect(),
    )
}

/// Validates one entry.
pub(super) fn plugin(entry: Entry, ctx: &Context) -> Result<PluginConfig, ConfigError> {
    let Entry { at, prefix, raw } = entry;
    let name_key = format!("{prefix}name");
    let Some(Text(name)) = raw.name else {
        return Err(ConfigError::MissingKey {
            plugin: Box::new(at),
            key: name_key,
            hint: "every plugin needs a name: it is what calls use and the binary's file name",
        });
    };
    rules::name(&at, &name_key, &name)?;
    let c = Check::new(Box::new(at.named(&name)), prefix);
    let Some(Text(mode)) = raw.mode else {
        return Err(ConfigError::MissingKey {
            key: c.key("mode"),
            plugin: c.at,
            hint: "write mode: companion (the host runs the binary) or mode: remote (a server at an address)",
        });
    };
    // The section of the other mode, if one is given.
    let (mode, stray) = match mode.as_str() {
        "companion" => ("companion", raw.remote.is_some().then_some("remote")),
        "remote" => ("remote", raw.companion.is_some().then_some("companion")),
        "pluggable" => {
            return Err(ConfigError::PluggableEntry {
                key: c.key("mode"),
                plugin: c.at,
            });
        }
        _ => {
            return Err(ConfigError::UnknownMode {
                key: c.key("mode"),
                plugin: c.at,
                value: format!("{mode:?}"),
            });
        }
    };
    if let Some(section) = stray {
        return Err(ConfigError::SectionMismatch {
            section: c.key(section),
            plugin: c.at,
            mode,
        });
    }
    let call_timeout = c.duration(
        "call-timeout",
        raw.call_timeout,
        PluginConfig::DEFAULT_CALL_TIMEOUT,
    )?;
    let drain_timeout = c.duration(
        "drain-timeout",
        raw.drain_timeout,
        PluginConfig::DEFAULT_DRAIN_TIMEOUT,
    )?;
    let health = health(&c, raw.health.unwrap_or_default())?;
    let call = policy::call(
        &c,
        policy::RawCall {
            retry: raw.retry,
            max_concurrent_calls: raw.max_concurrent_calls,
            max_queued_calls: raw.max_queued_calls,
            on_unavailable: raw.on_unavailable,
            fallback: raw.fallback,
        },
    )?;
    let kind = if mode == "companion" {
        PluginKind::Companion(companion(
            &c,
            &name,
            raw.companion.unwrap_or_default(),
            ctx,
        )?)
    } else {
        PluginKind::Remote(remote(&c, raw.remote, ctx)?)
    };
    let plugin = PluginConfig {
        name,
        kind,
        call_timeout,
        drain_timeout,
        health,
        call,
    };
    rules::plugin(&c, &plugin)?;
    Ok(plugin)
}

fn health(c: &Check, raw: RawHealth) -> Result<HealthConfig, ConfigError> {
    let default = HealthConfig::default();
    Ok(HealthConfig {
        interval: c.duration("health.interval", raw.interval, default.interval)?,
        timeout: c.duration("health.timeout", raw.timeout, default.timeout)?,
        failure_threshold: match raw.failure_threshold {
            None => default.failure_threshold,
            Some(n) => c.integer_as("health.failure-threshold", &n, 1, u32::MAX.into())?,
        },
    })
}

fn companion(
    c: &Check,
    name: &str,
    raw: RawCompanion,
    ctx: &Context,
) -> Result<CompanionConfig, ConfigError> {
    let args = raw
        .args
        .unwrap_or_default()
        .into_iter()
        .map(|Text(a)| a)
        .collect::<Vec<_>>();
    let defaults = CompanionConfig::new(PathBuf::new());
    let config = CompanionConfig {
        args,
        env: env(raw.env.unwrap_or_default()),
        cpu: cpu(c, raw.max_procs, raw.cpus, ctx)?,
        start_timeout: c.duration(
            "companion.start-timeout",
            raw.start_timeout,
            defaults.start_timeout,
        )?,
        stop_grace: c.duration("companion.stop-grace", raw.stop_grace, defaults.stop_grace)?,
        restart: restart(c, raw.restart.unwrap_or_default())?,
        auto_mtls: raw.auto_mtls.unwrap_or(defaults.auto_mtls),
        env_inherit: env_inherit(c, raw.env_inherit)?,
        limits: limits(c, raw.limits.unwrap_or_default())?,
        path: PathBuf::new(),
        sha256: raw.sha256.map(|d| d.0),
        watch: raw.watch.unwrap_or(false),
    };
    // The typed rules come first, so that a bad argument or variable is reported before a
    // missing binary.
    rules::companion_settings(c, &config)?;
    let path = binary::resolve(c, raw.path, name, ctx)?;
    Ok(CompanionConfig { path, ..config })
}

/// The pairs as written; [`rules`] checks the names.
/// Below this the plugin's runtime cannot even map its binary and threads.
const MIN_MEMORY: u64 = 16 << 20;

/// `companion.limits`.
fn limits(c: &Check, raw: RawLimits) -> Result<LimitsConfig, ConfigError> {
    let memory = match raw.memory {
        None => None,
        Some(Text(text)) => {
            let bytes = super::parse_size(&text).map_err(|e| ConfigError::InvalidValue {
                plugin: c.at.clone(),
                key: c.key("companion.limits.memory"),
                location: None,
                message: e.to_string(),
            })?;
            if bytes < MIN_MEMORY {
                return Err(ConfigError::InvalidValue {
                    plugin: c.at.clone(),
                    key: c.key("companion.limits.memory"),
                    location: None,
                    message: format!(
                        "{text} is below {}: no plugin runtime starts in that little address space",
                        super::format_size(MIN_MEMORY)
                    ),
                });
            }
            Some(bytes)
        }
    };
    let open_files = raw
        .open_files
        .map(|n| c.integer_as("companion.limits.open-files", &n, 8, 1 << 20))
        .transpose()?;
    let processes = raw
        .processes
        .map(|n| c.integer_as("companion.limits.processes", &n, 1, 1 << 22))
        .transpose()?;
    Ok(LimitsConfig {
        memory,
        open_files,
        processes,
    })
}

/// `companion.env-inherit`: `all`, `none`, or a list of variable names the host does not set
/// itself.
fn env_inherit(c: &Check, raw: Option<yaml_serde::Value>) -> Result<EnvInherit, ConfigError> {
    use yaml_serde::Value;
    const CHOICES: &[&str] = &["all", "none", "a list of variable names"];
    let key = || c.key("companion.env-inherit");
    let invalid = |found: &str| ConfigError::InvalidValue {
        plugin: c.at.clone(),
        key: key(),
        location: None,
        message: format!(
            "expected all, none, or a list of variable names such as [PATH, HOME], got {found}"
        ),
    };
    match raw {
        None => Ok(EnvInherit::All),
        Some(Value::String(word)) => match word.as_str() {
            "all" => Ok(EnvInherit::All),
            "none" => Ok(EnvInherit::None),
            _ => Err(ConfigError::UnknownChoice {
                plugin: c.at.clone(),
                key: key(),
                value: word,
                expected: CHOICES,
            }),
        },
        Some(Value::Sequence(list)) => {
            let mut names = Vec::with_capacity(list.len());
            for item in list {
                let Value::String(name) = item else {
                    return Err(invalid("a list with an entry that is not a name"));
                };
                let reason = rules::inherited_name_problem(&name, &names);
                if let Some(reason) = reason {
                    return Err(ConfigError::InvalidEnv {
                        plugin: c.at.clone(),
                        key: key(),
                        name,
                        reason,
                    });
                }
                names.push(name);
            }
            Ok(EnvInherit::Only(names))
        }
        Some(Value::Null) => Err(invalid("nothing")),
        Some(Value::Bool(_)) => Err(invalid("a boolean")),
        Some(Value::Number(_)) => Err(invalid("a number")),
        Some(_) => Err(invalid("a mapping")),
    }
}

fn env(raw: RawEnv) -> Vec<(String, String)> {
    raw.0
        .into_iter()
        .map(|(Text(name), Text(value))| (name, value))
        .collect()
}

fn cpu(
    c: &Check,
    max_procs: Option<Int>,
    cpus: Option<Vec<Int>>,
    ctx: &Context,
) -> Result<CpuConfig, ConfigError> {
    match (max_procs, cpus) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            plugin: c.at.clone(),
            key: c.key("companion.max-procs"),
            other: c.key("companion.cpus"),
            hint: "use max-procs for a number of CPUs or cpus for a fixed list, not both",
        }),
        (Some(n), None) => {
            let n: usize = c.integer_as("companion.max-procs", &n, 0, rules::MAX_CPUS)?;
            // 0 means 1, as in the Go SDK.
            Ok(CpuConfig::MaxProcs(
                NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
            ))
        }
        (None, Some(list)) => cpu_list(c, &list, ctx).map(CpuConfig::Cpus),
        (None, None) => Ok(CpuConfig::default()),
    }
}

/// The CPU numbers, each one this process may run on; [`rules`] checks for an empty list and
/// repeats.
fn cpu_list(c: &Check, list: &[Int], ctx: &Context) -> Result<Vec<usize>, ConfigError> {
    let mut cpus = Vec::with_capacity(list.len());
    for (i, n) in list.iter().enumerate() {
        let cpu: usize =
            c.integer_as(&format!("companion.cpus[{i}]"), n, 0, rules::MAX_CPUS - 1)?;
        if let Some(allowed) = &ctx.allowed_cpus
            && !allowed.contains(&cpu)
        {
            return Err(ConfigError::UnavailableCpu {
                plugin: c.at.clone(),
                key: c.key("companion.cpus"),
                cpu,
                allowed: allowed.clone(),
            });
        }
        cpus.push(cpu);
    }
    Ok(cpus)
}

fn restart(c: &Check, raw: RawRestart) -> Result<RestartConfig, ConfigError> {
    let default = RestartConfig::default();
    let policy = match raw.policy {
        None => default.policy,
        Some(Text(p)) => p
            .parse::<RestartPolicy>()
            .map_err(|()| ConfigError::UnknownPolicy {
                plugin: c.at.clone(),
                key: c.key("companion.restart.policy"),
                value: p,
            })?,
    };
    let max_restarts = match raw.max_restarts {
        None => None,
        Some(n) => Some(c.integer_as("companion.restart.max-restarts", &n, 0, u32::MAX.into())?),
    };
    Ok(RestartConfig {
        policy,
        backoff: backoff(c, "companion.restart.backoff", raw.backoff, default.backoff)?,
        min_uptime: c.duration(
            "companion.restart.min-uptime",
            raw.min_uptime,
            default.min_uptime,
        )?,
        reset_after: c.duration(
            "companion.restart.reset-after",
            raw.reset_after,
            default.reset_after,
        )?,
        max_restarts,
        window: c.duration("companion.restart.window", raw.window, default.window)?,
    })
}

fn remote(c: &Check, raw: Option<RawRemote>, ctx: &Context) -> Result<RemoteConfig, ConfigError> {
    let mut raw = raw.unwrap_or_default();
    let key = c.key("remote.address");
    let Some(written) = raw.address.take() else {
        return Err(ConfigError::MissingKey {
            plugin: c.at.clone(),
            key,
            hint: "a remote plugin needs an address: host:port (e.g. 127.0.0.1:8972), unix:/absolute/path, a list of them, or dns:///name:port",
        });
    };
    let (address, tls_scheme, endpoints) = match written {
        RawAddress::One(Text(text)) => match text.trim().strip_prefix("dns:///") {
            Some(name) => {
                let (host, port) = dns_name(c, &key, &text, name)?;
                let address = RemoteAddress::Tcp {
                    host: host.clone(),
                    port,
                };
                (address, false, Some(Endpoints::Dns { host, port }))
            }
            None => {
                let (address, tls) = one_address(c, &key, &text)?;
                (address, tls, None)
            }
        },
        RawAddress::List(list) => {
            let mut addresses = Vec::with_capacity(list.len());
            let mut tls = false;
            for (i, Text(text)) in list.iter().enumerate() {
                let (address, scheme) = one_address(c, &format!("{key}[{i}]"), text)?;
                tls |= scheme;
                addresses.push(address);
            }
            let Some(first) = addresses.first().cloned() else {
                return Err(c.out_of_range(
                    "remote.address",
                    "[]",
                    "at least one address in the list",
                ));
            };
            (first, tls, Some(Endpoints::List(addresses)))
        }
    };
    let fleet = match endpoints {
        None => None,
        Some(endpoints) => Some(fleet(c, endpoints, &raw)?),
    };
    let keepalive = match raw.keepalive {
        Some(Text(off)) if off == "off" || off == "false" => None,
        Some(text) => Some(c.duration("remote.keepalive", Some(text), Duration::ZERO)?),
        None => Some(RemoteConfig::DEFAULT_KEEPALIVE),
    };
    let connections = match raw.connections {
        None => None,
        Some(Text(auto)) if auto.trim() == "auto" => None,
        Some(Text(n)) => {
            let n: usize = c.integer_as(
                "remote.connections",
                &Int(n),
                1,
                RemoteConfig::MAX_CONNECTIONS as u64,
            )?;
            std::num::NonZeroUsize::new(n)
        }
    };
    Ok(RemoteConfig {
        connections,
        connect_timeout: c.duration(
            "remote.connect-timeout",
            raw.connect_timeout,
            RemoteConfig::DEFAULT_CONNECT_TIMEOUT,
        )?,
        keepalive,
        backoff: backoff(
            c,
            "remote.backoff",
            raw.backoff,
            BackoffConfig::REMOTE_DEFAULT,
        )?,
        tls: match (raw.tls, tls_scheme) {
            (None, false) => None,
            (tls, _) => Some(remote_tls(c, tls.unwrap_or_default(), &address, ctx)?),
        },
        address,
        fleet,
    })
}

/// One `host:port` or `unix:/path`; `https://` and `tls://` turn TLS on (with `remote.tls`'s
/// settings, or the defaults).
fn one_address(c: &Check, key: &str, text: &str) -> Result<(RemoteAddress, bool), ConfigError> {
    let trimmed = text.trim();
    let (bare, tls_scheme) = match trimmed.split_once("://") {
        Some((scheme, rest)) if scheme == "https" || scheme == "tls" => (rest, true),
        _ => (trimmed, false),
    };
    let address = bare
        .parse::<RemoteAddress>()
        .map_err(|reason| ConfigError::Address {
            plugin: c.at.clone(),
            key: key.to_owned(),
            value: text.to_owned(),
            reason,
        })?;
    Ok((address, tls_scheme))
}

/// `dns:///name:port`: a host name (or address) and a port, not a unix socket.
fn dns_name(c: &Check, key: &str, text: &str, name: &str) -> Result<(String, u16), ConfigError> {
    match name.parse::<RemoteAddress>() {
        Ok(RemoteAddress::Tcp { host, port }) => Ok((host, port)),
        Ok(RemoteAddress::Unix(_)) => Err(c.out_of_range(
            "remote.address",
            text,
            "dns:///name:port with a host name and a port (a unix socket has nothing to resolve)",
        )),
        Err(reason) => Err(ConfigError::Address {
            plugin: c.at.clone(),
            key: key.to_owned(),
            value: text.to_owned(),
            reason,
        }),
    }
}

/// The fleet settings of a plugin with several endpoints.
fn fleet(c: &Check, endpoints: Endpoints, raw: &RawRemote) -> Result<FleetConfig, ConfigError> {
    let default = EjectionConfig::DEFAULT;
    let ejection = EjectionConfig {
        consecutive_failures: match &raw.consecutive_failures {
            Some(n) => c.integer_as("remote.consecutive-failures", n, 1, 1000)?,
            None => default.consecutive_failures,
        },
        base_time: c.duration(
            "remote.base-ejection-time",
            raw.base_ejection_time.clone(),
            default.base_time,
        )?,
        max_time: c.duration(
            "remote.max-ejection-time",
            raw.max_ejection_time.clone(),
            default.max_time,
        )?,
        max_percent: match &raw.max_ejection_percent {
            Some(n) => c.integer_as("remote.max-ejection-percent", n, 0, 100)?,
            None => default.max_percent,
        },
    };
    Ok(FleetConfig {
        endpoints,
        resolve_interval: c.duration(
            "remote.resolve-interval",
            raw.resolve_interval.clone(),
            FleetConfig::DEFAULT_RESOLVE_INTERVAL,
        )?,
        ejection,
    })
}

/// `remote.tls`: paths relative to the config file; the files read once (when files are
/// checked) so that a missing file, a bad PEM or a certificate without its key is reported
/// at load with the plugin and the key.
fn remote_tls(
    c: &Check,
    raw: RawRemoteTls,
    address: &RemoteAddress,
    ctx: &Context,
) -> Result<RemoteTlsConfig, ConfigError> {
    let path = |text: Option<Text>| text.map(|Text(p)| ctx.base_dir.join(p));
    let config = RemoteTlsConfig {
        ca_file: path(raw.ca_file),
        cert_file: path(raw.cert_file),
        key_file: path(raw.key_file),
        server_name: raw.server_name.map(|Text(n)| n),
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
    };
    let missing = |key: &str, hint: &'static str| ConfigError::MissingKey {
        plugin: c.at.clone(),
        key: c.key(key),
        hint,
    };
    if config.ca_file.is_none() && !config.insecure_skip_verify {
        return Err(missing(
            "remote.tls.ca-file",
            "TLS to a remote plugin verifies its certificate against this CA file (PEM; the system's roots are not used); insecure-skip-verify: true turns verification off",
        ));
    }
    match (&config.cert_file, &config.key_file) {
        (Some(_), None) => {
            return Err(missing(
                "remote.tls.key-file",
                "cert-file (the client certificate for mTLS) needs its private key: set both or neither",
            ));
        }
        (None, Some(_)) => {
            return Err(missing(
                "remote.tls.cert-file",
                "key-file needs its client certificate: set both or neither",
            ));
        }
        _ => {}
    }
    let checked = if ctx.check_files {
        crate::tls::remote::load(&config, address).map(drop)
    } else {
        crate::tls::remote::server_name(&config, address).map(drop)
    };
    checked.map_err(|e| ConfigError::InvalidValue {
        plugin: c.at.clone(),
        key: c.key(&format!("remote.tls.{}", e.key)),
        location: None,
        message: e.message,
    })?;
    Ok(config)
}

/// A backoff section, unset keys from `default`; [`rules`] checks the values.
fn backoff(
    c: &Check,
    section: &str,
    raw: Option<RawBackoff>,
    default: BackoffConfig,
) -> Result<BackoffConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let key = |k: &str| format!("{section}.{k}");
    Ok(BackoffConfig {
        initial: c.duration(&key("initial"), raw.initial, default.initial)?,
        factor: raw.factor.unwrap_or(default.factor),
        max: c.duration(&key("max"), raw.max, default.max)?,
        jitter: raw.jitter.unwrap_or(default.jitter),
    })
}

/// The plugin being checked, and how its keys are spelled in messages.
pub(super) struct Check {
    pub(super) at: Box<PluginRef>,
    prefix: &'static str,
}

impl Check {
    pub(super) fn new(at: Box<PluginRef>, prefix: &'static str) -> Self {
        Self { at, prefix }
    }

    /// `key` as written in this entry's form: `companion.path` or `option.companion.path`.
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A duration as written, or `default` when unset; at most
    /// [`MAX_DURATION`](super::MAX_DURATION).
    pub(super) fn duration(
        &self,
        key: &str,
        text: Option<Text>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(Text(text)) = text else {
            return Ok(default);
        };
        parse_duration(&text).map_err(|reason| match reason {
            DurationError::TooLong => ConfigError::DurationTooLong {
                plugin: self.at.clone(),
                key: self.key(key),
                value: text,
            },
            reason => ConfigError::Duration {
                plugin: self.at.clone(),
                key: self.key(key),
                value: text,
                reason,
            },
        })
    }

    /// An integer in `min..=max`, as written.
    pub(super) fn integer_as<T: TryFrom<u64>>(
        &self,
        key: &str,
        text: &Int,
        min: u64,
        max: u64,
    ) -> Result<T, ConfigError> {
        text.0
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.integer(key, &text.0, min, max))
    }

    pub(super) fn integer(&self, key: &str, value: &str, min: u64, max: u64) -> ConfigError {
        ConfigError::Integer {
            plugin: self.at.clone(),
            key: self.key(key),
            value: value.to_owned(),
            min,
            max,
        }
    }

    pub(super) fn out_of_range(
        &self,
        key: &str,
        value: impl ToString,
        valid: &'static str,
    ) -> ConfigError {
        ConfigError::OutOfRange {
            plugin: self.at.clone(),
            key: self.key(key),
            value: value.to_string(),
            valid,
        }
    }
}
