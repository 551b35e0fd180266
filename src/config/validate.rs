//! [`RawPlugin`] → [`PluginConfig`]: defaults, parsing and range checks, one plugin at a time.

use std::{collections::HashSet, num::NonZeroUsize, path::PathBuf, time::Duration};

use super::{
    BackoffConfig, CallPolicy, CompanionConfig, ConfigError, CpuConfig, HealthConfig, PluginConfig,
    PluginKind, PluginRef, RemoteAddress, RemoteConfig, RestartConfig, RestartPolicy, binary,
    document::Entry,
    parse_duration,
    raw::{RawBackoff, RawCompanion, RawEnv, RawHealth, RawRemote, RawRestart, Text},
};

/// The highest `max-procs`, and one past the highest CPU number (`CPU_SETSIZE`).
const MAX_CPUS: i64 = 1024;

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
    if let Some(reason) = name_problem(&name) {
        return Err(ConfigError::InvalidName {
            plugin: Box::new(at),
            key: name_key,
            name,
            reason,
        });
    }
    let c = Check {
        at: Box::new(at.named(&name)),
        prefix,
    };
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
    let call_timeout = c.positive(
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
    let kind = if mode == "companion" {
        PluginKind::Companion(companion(
            &c,
            &name,
            raw.companion.unwrap_or_default(),
            ctx,
        )?)
    } else {
        PluginKind::Remote(remote(&c, raw.remote)?)
    };
    Ok(PluginConfig {
        name,
        kind,
        call_timeout,
        drain_timeout,
        health,
        call: CallPolicy::default(),
    })
}

/// Why `name` cannot be a plugin name (it is also a file name and an env value).
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some(
            "it contains `/`; the name is also the binary's file name, so put directories in companion.path",
        )
    } else if name == "." || name == ".." {
        Some("it cannot be a file name")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.trim() != name {
        Some("it starts or ends with whitespace")
    } else {
        None
    }
}

fn health(c: &Check, raw: RawHealth) -> Result<HealthConfig, ConfigError> {
    let default = HealthConfig::default();
    Ok(HealthConfig {
        interval: c.positive("health.interval", raw.interval, default.interval)?,
        timeout: c.positive("health.timeout", raw.timeout, default.timeout)?,
        failure_threshold: match raw.failure_threshold {
            None => default.failure_threshold,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| c.out_of_range("health.failure-threshold", n, "1..=4294967295"))?,
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
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(ConfigError::InvalidValue {
            plugin: c.at.clone(),
            key: c.key(&format!("companion.args[{i}]")),
            location: None,
            message: "contains a NUL character, which a process argument cannot hold".to_owned(),
        });
    }
    let defaults = CompanionConfig::new(PathBuf::new());
    let config = CompanionConfig {
        args,
        env: env(c, raw.env.unwrap_or_default())?,
        cpu: cpu(c, raw.max_procs, raw.cpus, ctx)?,
        start_timeout: c.positive(
            "companion.start-timeout",
            raw.start_timeout,
            defaults.start_timeout,
        )?,
        stop_grace: c.duration("companion.stop-grace", raw.stop_grace, defaults.stop_grace)?,
        restart: restart(c, raw.restart.unwrap_or_default())?,
        path: PathBuf::new(),
    };
    let path = binary::resolve(c, raw.path, name, ctx)?;
    Ok(CompanionConfig { path, ..config })
}

fn env(c: &Check, raw: RawEnv) -> Result<Vec<(String, String)>, ConfigError> {
    let mut seen = HashSet::new();
    let mut env = Vec::with_capacity(raw.0.len());
    for (Text(name), Text(value)) in raw.0 {
        let reason = if name.is_empty() {
            Some("is empty; a variable needs a name")
        } else if name.contains('=') {
            Some("contains `=`, which cannot be part of a variable name")
        } else if name.contains('\0') || value.contains('\0') {
            Some("contains a NUL character, which the environment cannot hold")
        } else if !seen.insert(name.clone()) {
            Some("is set twice; keep one")
        } else {
            reserved(&name)
        };
        if let Some(reason) = reason {
            return Err(ConfigError::InvalidEnv {
                plugin: c.at.clone(),
                key: c.key("companion.env"),
                name,
                reason,
            });
        }
        env.push((name, value));
    }
    Ok(env)
}

/// Why the host, not the config, sets variable `name` (the go-plugin handshake and the
/// worker count); other variables, `PLUGIN_*` ones included, are passed as given.
fn reserved(name: &str) -> Option<&'static str> {
    use crate::protocol::{MAGIC_COOKIE_KEY, env};
    if name == MAGIC_COOKIE_KEY || name == env::PROTOCOL_VERSIONS {
        Some("is set by the host for the go-plugin handshake; remove it")
    } else if name == env::NAME {
        Some("is set by the host to the plugin's name; remove it")
    } else if name == env::PROCS || name == env::GOMAXPROCS {
        Some("is set by the host from max-procs or cpus; set those instead")
    } else {
        None
    }
}

fn cpu(
    c: &Check,
    max_procs: Option<i64>,
    cpus: Option<Vec<i64>>,
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
            if !(0..=MAX_CPUS).contains(&n) {
                return Err(c.out_of_range("companion.max-procs", n, "0..=1024"));
            }
            // 0 means 1, as in the Go SDK.
            let n = usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .unwrap_or(NonZeroUsize::MIN);
            Ok(CpuConfig::MaxProcs(n))
        }
        (None, Some(list)) => cpu_list(c, &list, ctx).map(CpuConfig::Cpus),
        (None, None) => Ok(CpuConfig::default()),
    }
}

fn cpu_list(c: &Check, list: &[i64], ctx: &Context) -> Result<Vec<usize>, ConfigError> {
    let key = c.key("companion.cpus");
    if list.is_empty() {
        return Err(ConfigError::EmptyCpuList {
            plugin: c.at.clone(),
            key,
        });
    }
    let mut cpus = Vec::with_capacity(list.len());
    for (i, &n) in list.iter().enumerate() {
        let Some(cpu) = usize::try_from(n).ok().filter(|_| n < MAX_CPUS) else {
            return Err(c.out_of_range(&format!("companion.cpus[{i}]"), n, "0..=1023"));
        };
        if cpus.contains(&cpu) {
            return Err(ConfigError::DuplicateCpu {
                plugin: c.at.clone(),
                key,
                cpu,
            });
        }
        if let Some(allowed) = &ctx.allowed_cpus
            && !allowed.contains(&cpu)
        {
            return Err(ConfigError::UnavailableCpu {
                plugin: c.at.clone(),
                key,
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
    let max_restarts =
        match raw.max_restarts {
            None => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                c.out_of_range("companion.restart.max-restarts", n, "0..=4294967295")
            })?),
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
        window: c.positive("companion.restart.window", raw.window, default.window)?,
    })
}

fn remote(c: &Check, raw: Option<RawRemote>) -> Result<RemoteConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let key = c.key("remote.address");
    let Some(Text(text)) = raw.address else {
        return Err(ConfigError::MissingKey {
            plugin: c.at.clone(),
            key,
            hint: "a remote plugin needs an address: host:port (e.g. 127.0.0.1:8972) or unix:/absolute/path",
        });
    };
    let address = text
        .parse::<RemoteAddress>()
        .map_err(|reason| ConfigError::Address {
            plugin: c.at.clone(),
            key,
            value: text.clone(),
            reason,
        })?;
    let keepalive = match raw.keepalive {
        Some(Text(off)) if off == "off" || off == "false" => None,
        Some(text) => {
            let interval = c.duration("remote.keepalive", Some(text), Duration::ZERO)?;
            if interval.is_zero() {
                return Err(c.out_of_range("remote.keepalive", "0s", "greater than zero, or off"));
            }
            Some(interval)
        }
        None => Some(RemoteConfig::DEFAULT_KEEPALIVE),
    };
    Ok(RemoteConfig {
        address,
        connect_timeout: c.positive(
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
    })
}

/// A backoff section; the same rules as `supervisor::Backoff::new`.
fn backoff(
    c: &Check,
    section: &str,
    raw: Option<RawBackoff>,
    default: BackoffConfig,
) -> Result<BackoffConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let key = |k: &str| format!("{section}.{k}");
    let initial = c.positive(&key("initial"), raw.initial, default.initial)?;
    let max = c.duration(&key("max"), raw.max, default.max)?;
    let factor = raw.factor.unwrap_or(default.factor);
    if !(factor.is_finite() && factor >= 1.0) {
        return Err(c.out_of_range(&key("factor"), factor, "1 or more"));
    }
    let jitter = raw.jitter.unwrap_or(default.jitter);
    if !(0.0..1.0).contains(&jitter) {
        return Err(c.out_of_range(&key("jitter"), jitter, "0 <= jitter < 1"));
    }
    if initial > max {
        return Err(ConfigError::BackoffOrder {
            plugin: c.at.clone(),
            key: c.key(section),
            initial,
            max,
        });
    }
    Ok(BackoffConfig {
        initial,
        factor,
        max,
        jitter,
    })
}

/// The plugin being checked, and how its keys are spelled in messages.
pub(super) struct Check {
    pub(super) at: Box<PluginRef>,
    prefix: &'static str,
}

impl Check {
    /// `key` as written in this entry's form: `companion.path` or `option.companion.path`.
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn duration(
        &self,
        key: &str,
        text: Option<Text>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(Text(text)) = text else {
            return Ok(default);
        };
        parse_duration(&text).map_err(|reason| ConfigError::Duration {
            plugin: self.at.clone(),
            key: self.key(key),
            value: text,
            reason,
        })
    }

    /// A duration that must be greater than zero.
    fn positive(
        &self,
        key: &str,
        text: Option<Text>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, text, default)?;
        if d.is_zero() {
            return Err(self.out_of_range(key, "0s", "greater than zero"));
        }
        Ok(d)
    }

    fn out_of_range(&self, key: &str, value: impl ToString, valid: &'static str) -> ConfigError {
        ConfigError::OutOfRange {
            plugin: self.at.clone(),
            key: self.key(key),
            value: value.to_string(),
            valid,
        }
    }
}
