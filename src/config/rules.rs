//! The invariants of a typed [`PluginConfig`]: checked on every plugin read from YAML (after
//! parsing) and by [`Config::validate`](super::Config::validate) on a hand-built one, so both
//! obey the same rules and give the same messages.
//!
//! Nothing here looks at the machine (the binary on disk, the CPUs this process may use):
//! those depend on where the config is loaded and are checked by `validate`.

use std::{collections::HashSet, time::Duration};

use prost_reflect::DynamicMessage;

use super::{
    BackoffConfig, CallPolicy, CompanionConfig, ConfigError, CpuConfig, Endpoints, Fallback,
    FleetConfig, HealthConfig, MAX_DURATION, PluginConfig, PluginKind, PluginRef, RemoteAddress,
    RemoteConfig, format_duration, validate::Check,
};

/// The highest `max-procs`, and one past the highest CPU number (`CPU_SETSIZE`).
pub(super) const MAX_CPUS: u64 = 1024;

/// Checks a plugin's name: `at` names the plugin by place, since the name is in question.
pub(super) fn name(at: &PluginRef, key: &str, name: &str) -> Result<(), ConfigError> {
    if name.len() > PluginConfig::MAX_NAME_BYTES {
        return Err(ConfigError::TooLong {
            plugin: Box::new(at.clone()),
            key: key.to_owned(),
            len: name.len(),
            limit: PluginConfig::MAX_NAME_BYTES,
        });
    }
    match name_problem(name) {
        Some(reason) => Err(ConfigError::InvalidName {
            plugin: Box::new(at.clone()),
            key: key.to_owned(),
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
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

/// Every rule but the name's (checked first, by [`name`]) and uniqueness (a whole-config rule).
pub(super) fn plugin(c: &Check, p: &PluginConfig) -> Result<(), ConfigError> {
    positive(c, "call-timeout", p.call_timeout)?;
    bounded(c, "drain-timeout", p.drain_timeout)?;
    health(c, &p.health)?;
    call(c, &p.call)?;
    match &p.kind {
        PluginKind::Companion(companion) => companion_settings(c, companion),
        PluginKind::Remote(remote) => remote_settings(c, remote),
    }
}

fn health(c: &Check, h: &HealthConfig) -> Result<(), ConfigError> {
    positive(c, "health.interval", h.interval)?;
    positive(c, "health.timeout", h.timeout)?;
    if h.failure_threshold == 0 {
        return Err(c.integer("health.failure-threshold", "0", 1, u32::MAX.into()));
    }
    Ok(())
}

fn call(c: &Check, policy: &CallPolicy) -> Result<(), ConfigError> {
    let limit = CallPolicy::LIMIT as u64;
    let concurrent = policy.max_concurrent.get();
    if concurrent > CallPolicy::LIMIT {
        return Err(c.integer("max-concurrent-calls", &concurrent.to_string(), 1, limit));
    }
    if policy.max_queued > CallPolicy::LIMIT {
        return Err(c.integer("max-queued-calls", &policy.max_queued.to_string(), 0, limit));
    }
    match &policy.fallback {
        Some(fallback) => self::fallback(c, fallback),
        None => Ok(()),
    }
}

/// The type is a known message and the reply is one of it.
fn fallback(c: &Check, fallback: &Fallback) -> Result<(), ConfigError> {
    let Some(desc) = crate::proto::descriptor_pool().get_message_by_name(&fallback.type_name)
    else {
        return Err(ConfigError::UnknownMessageType {
            plugin: c.at.clone(),
            key: c.key("fallback.type"),
            value: fallback.type_name.clone(),
        });
    };
    let wrong = |problem: String| ConfigError::FallbackReply {
        plugin: c.at.clone(),
        key: c.key("fallback"),
        type_name: fallback.type_name.clone(),
        problem,
    };
    let Some(any) = &fallback.response.reply else {
        return Err(wrong("the response has no reply".to_owned()));
    };
    let type_url = format!("type.googleapis.com/{}", desc.full_name());
    if any.type_url != type_url {
        return Err(wrong(format!(
            "its type URL is {:?}; it must be {type_url:?}",
            any.type_url
        )));
    }
    DynamicMessage::decode(desc, any.value.as_slice())
        .map_err(|e| wrong(format!("its bytes do not decode: {e}")))?;
    Ok(())
}

/// Everything about a companion but its binary (which `validate` looks up on disk).
pub(super) fn companion_settings(c: &Check, s: &CompanionConfig) -> Result<(), ConfigError> {
    args(c, &s.args)?;
    env(c, &s.env)?;
    let strings = |len: usize| len + 1; // each string with its NUL, as the kernel counts
    let size = s.args.iter().map(|a| strings(a.len())).sum::<usize>()
        + s.env
            .iter()
            .map(|(n, v)| strings(n.len() + 1 + v.len()))
            .sum::<usize>();
    if size > CompanionConfig::MAX_ARGS_ENV_BYTES {
        return Err(ConfigError::ArgsTooLarge {
            plugin: c.at.clone(),
            key: format!("{} and {}", c.key("companion.args"), c.key("companion.env")),
            size,
            limit: CompanionConfig::MAX_ARGS_ENV_BYTES,
        });
    }
    cpu(c, &s.cpu)?;
    positive(c, "companion.start-timeout", s.start_timeout)?;
    bounded(c, "companion.stop-grace", s.stop_grace)?;
    let r = &s.restart;
    backoff(c, "companion.restart.backoff", &r.backoff)?;
    bounded(c, "companion.restart.min-uptime", r.min_uptime)?;
    bounded(c, "companion.restart.reset-after", r.reset_after)?;
    positive(c, "companion.restart.window", r.window)?;
    Ok(())
}

fn args(c: &Check, args: &[String]) -> Result<(), ConfigError> {
    for (i, arg) in args.iter().enumerate() {
        let key = || c.key(&format!("companion.args[{i}]"));
        if arg.contains('\0') {
            return Err(ConfigError::InvalidValue {
                plugin: c.at.clone(),
                key: key(),
                location: None,
                message: "contains a NUL character, which a process argument cannot hold"
                    .to_owned(),
            });
        }
        if arg.len() > CompanionConfig::MAX_ARG_BYTES {
            return Err(ConfigError::TooLong {
                plugin: c.at.clone(),
                key: key(),
                len: arg.len(),
                limit: CompanionConfig::MAX_ARG_BYTES,
            });
        }
    }
    Ok(())
}

fn env(c: &Check, env: &[(String, String)]) -> Result<(), ConfigError> {
    let mut seen = HashSet::with_capacity(env.len());
    for (i, (name, value)) in env.iter().enumerate() {
        // The variable reaches the child as one `NAME=value` string.
        let len = name.len() + 1 + value.len();
        if len > CompanionConfig::MAX_ARG_BYTES {
            let key = if name.len() <= 64 {
                format!("companion.env.{name}")
            } else {
                format!("companion.env (variable {})", i + 1)
            };
            return Err(ConfigError::TooLong {
                plugin: c.at.clone(),
                key: c.key(&key),
                len,
                limit: CompanionConfig::MAX_ARG_BYTES,
            });
        }
        let reason = if name.is_empty() {
            Some("is empty; a variable needs a name")
        } else if name.contains('=') {
            Some("contains `=`, which cannot be part of a variable name")
        } else if name.contains('\0') || value.contains('\0') {
            Some("contains a NUL character, which the environment cannot hold")
        } else if !seen.insert(name.as_str()) {
            Some("is set twice; keep one")
        } else {
            reserved(name)
        };
        if let Some(reason) = reason {
            return Err(ConfigError::InvalidEnv {
                plugin: c.at.clone(),
                key: c.key("companion.env"),
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Why `name` cannot be in `companion.env-inherit` (after `earlier`): not a name, listed
/// twice, or one the host sets or strips itself (`PLUGIN_*`, the cookie, `GOMAXPROCS`).
pub(super) fn inherited_name_problem(name: &str, earlier: &[String]) -> Option<&'static str> {
    use crate::protocol::{MAGIC_COOKIE_KEY, env};
    if name.is_empty() {
        Some("is empty; a variable needs a name")
    } else if name.contains('=') {
        Some("contains `=`, which cannot be part of a variable name")
    } else if name.contains('\0') {
        Some("contains a NUL character, which the environment cannot hold")
    } else if earlier.iter().any(|e| e == name) {
        Some("is listed twice; keep one")
    } else if name.starts_with("PLUGIN_") || name == MAGIC_COOKIE_KEY || name == env::GOMAXPROCS {
        Some(
            "is set by the host itself (the PLUGIN_* variables, the cookie and GOMAXPROCS never come from the host's own environment); remove it",
        )
    } else {
        None
    }
}

/// Why the config may not set variable `name`: the host sets it for the go-plugin handshake or
/// the worker count, or it asks the plugin for a go-plugin feature this host does not speak.
/// Other variables, `PLUGIN_*` ones included, are passed as given.
fn reserved(name: &str) -> Option<&'static str> {
    use crate::protocol::{MAGIC_COOKIE_KEY, env};
    if name == MAGIC_COOKIE_KEY || name == env::PROTOCOL_VERSIONS {
        Some("is set by the host for the go-plugin handshake; remove it")
    } else if name == env::NAME {
        Some("is set by the host to the plugin's name; remove it")
    } else if name == env::PROCS || name == env::GOMAXPROCS {
        Some("is set by the host from max-procs or cpus; set those instead")
    } else if name == env::MIN_PORT || name == env::MAX_PORT {
        Some(
            "is set by the host to go-plugin's TCP port range (10000 to 25000) for the plugin's listener; remove it",
        )
    } else if name == env::MULTIPLEX_GRPC {
        Some(
            "asks a go-plugin (1.6 or later) plugin for gRPC broker multiplexing, which this host does not speak: the plugin would expect a multiplexed connection; remove it",
        )
    } else if name == env::CLIENT_CERT {
        Some(
            "is set by the host for each run when companion.auto-mtls is true (a fresh certificate each time); set that instead",
        )
    } else if name == env::UNIX_SOCKET_DIR || name == env::UNIX_SOCKET_GROUP {
        Some(
            "is a go-plugin host setting for the plugin's unix socket, which this host leaves unset (the plugin picks a private directory); remove it",
        )
    } else {
        None
    }
}

fn cpu(c: &Check, cpu: &CpuConfig) -> Result<(), ConfigError> {
    match cpu {
        CpuConfig::MaxProcs(n) if n.get() as u64 > MAX_CPUS => {
            Err(c.integer("companion.max-procs", &n.to_string(), 0, MAX_CPUS))
        }
        CpuConfig::MaxProcs(_) => Ok(()),
        CpuConfig::Cpus(list) if list.is_empty() => Err(ConfigError::EmptyCpuList {
            plugin: c.at.clone(),
            key: c.key("companion.cpus"),
        }),
        CpuConfig::Cpus(list) => {
            let mut seen = HashSet::with_capacity(list.len());
            for (i, &cpu) in list.iter().enumerate() {
                if cpu as u64 >= MAX_CPUS {
                    let key = format!("companion.cpus[{i}]");
                    return Err(c.integer(&key, &cpu.to_string(), 0, MAX_CPUS - 1));
                }
                if !seen.insert(cpu) {
                    return Err(ConfigError::DuplicateCpu {
                        plugin: c.at.clone(),
                        key: c.key("companion.cpus"),
                        cpu,
                    });
                }
            }
            Ok(())
        }
    }
}

fn remote_settings(c: &Check, r: &RemoteConfig) -> Result<(), ConfigError> {
    address(c, &r.address)?;
    positive(c, "remote.connect-timeout", r.connect_timeout)?;
    match r.keepalive {
        Some(d) if d.is_zero() => {
            return Err(c.out_of_range("remote.keepalive", "0s", "greater than zero, or off"));
        }
        Some(d) => bounded(c, "remote.keepalive", d)?,
        None => {}
    }
    backoff(c, "remote.backoff", &r.backoff)?;
    if let Some(fleet) = &r.fleet {
        fleet_settings(c, fleet)?;
    }
    Ok(())
}

fn fleet_settings(c: &Check, f: &FleetConfig) -> Result<(), ConfigError> {
    if let Endpoints::List(list) = &f.endpoints {
        if list.is_empty() {
            return Err(c.out_of_range("remote.address", "[]", "at least one address in the list"));
        }
        for a in list {
            address(c, a)?;
        }
    }
    positive(c, "remote.resolve-interval", f.resolve_interval)?;
    bounded(c, "remote.resolve-interval", f.resolve_interval)?;
    let e = &f.ejection;
    if e.consecutive_failures == 0 {
        return Err(c.integer("remote.consecutive-failures", "0", 1, 1000));
    }
    positive(c, "remote.base-ejection-time", e.base_time)?;
    bounded(c, "remote.max-ejection-time", e.max_time)?;
    if e.max_time < e.base_time {
        return Err(c.out_of_range(
            "remote.max-ejection-time",
            format_duration(e.max_time),
            "at least remote.base-ejection-time",
        ));
    }
    if e.max_percent > 100 {
        return Err(c.integer(
            "remote.max-ejection-percent",
            &e.max_percent.to_string(),
            0,
            100,
        ));
    }
    Ok(())
}

/// A hand-built address must be one the config could have spelled.
fn address(c: &Check, address: &RemoteAddress) -> Result<(), ConfigError> {
    let text = address.to_string();
    match text.parse::<RemoteAddress>() {
        Ok(_) => Ok(()),
        Err(reason) => Err(ConfigError::Address {
            plugin: c.at.clone(),
            key: c.key("remote.address"),
            value: text,
            reason,
        }),
    }
}

/// The rules of `supervisor::Backoff::new`, and the duration cap.
fn backoff(c: &Check, section: &str, b: &BackoffConfig) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{section}.{k}");
    positive(c, &key("initial"), b.initial)?;
    bounded(c, &key("max"), b.max)?;
    if !(b.factor.is_finite() && b.factor >= 1.0) {
        return Err(c.out_of_range(&key("factor"), b.factor, "1 or more"));
    }
    if !(0.0..1.0).contains(&b.jitter) {
        return Err(c.out_of_range(&key("jitter"), b.jitter, "0 <= jitter < 1"));
    }
    if b.initial > b.max {
        return Err(ConfigError::BackoffOrder {
            plugin: c.at.clone(),
            key: c.key(section),
            initial: b.initial,
            max: b.max,
        });
    }
    Ok(())
}

/// At most [`MAX_DURATION`].
fn bounded(c: &Check, key: &str, d: Duration) -> Result<(), ConfigError> {
    if d > MAX_DURATION {
        return Err(ConfigError::DurationTooLong {
            plugin: c.at.clone(),
            key: c.key(key),
            value: format_duration(d),
        });
    }
    Ok(())
}

/// Greater than zero and at most [`MAX_DURATION`].
fn positive(c: &Check, key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(c.out_of_range(key, "0s", "greater than zero"));
    }
    bounded(c, key, d)
}
