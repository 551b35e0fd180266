//! From configuration to the supervisor's `Spec` and `Policy`.

use std::{ffi::OsString, num::NonZeroUsize, time::Duration};

use supervisor::{CpuLimit, Env, EnvFilter, Intensity, Liveness, Policy, Restart, Spec};

use crate::{
    config::{CompanionConfig, CpuConfig, EnvInherit, PluginConfig, RestartPolicy},
    protocol::{APP_PROTOCOL_VERSION, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, env},
};

/// Room for the readiness hook's own work between its bounded steps.
const READINESS_SLACK: Duration = Duration::from_secs(1);

/// go-plugin's default TCP port range for plugins.
const PORT_RANGE: (u16, u16) = (10000, 25000);

/// `run_env`: the run directory's variables, set before `companion.env` so a
/// `TMPDIR` the user configured wins.
pub(super) fn spec_and_policy(
    plugin: &PluginConfig,
    c: &CompanionConfig,
    run_env: Vec<(OsString, OsString)>,
) -> (Spec, Policy) {
    let procs = effective_procs(&c.cpu);
    let mut set: Vec<(OsString, OsString)> = vec![
        (MAGIC_COOKIE_KEY.into(), MAGIC_COOKIE_VALUE.into()),
        (
            env::PROTOCOL_VERSIONS.into(),
            APP_PROTOCOL_VERSION.to_string().into(),
        ),
        (env::MIN_PORT.into(), PORT_RANGE.0.to_string().into()),
        (env::MAX_PORT.into(), PORT_RANGE.1.to_string().into()),
        (env::NAME.into(), plugin.name.clone().into()),
        (env::PROCS.into(), procs.to_string().into()),
        (env::GOMAXPROCS.into(), procs.to_string().into()),
    ];
    // `env-inherit: [..]`: those of the host's variables, before the host's own settings so
    // that these always win (the list cannot name them anyway).
    if let EnvInherit::Only(names) = &c.env_inherit {
        let inherited = names
            .iter()
            .filter_map(|n| std::env::var_os(n).map(|v| (OsString::from(n), v)));
        set.splice(0..0, inherited);
    }
    set.extend(run_env);
    set.extend(c.env.iter().map(|(k, v)| (k.into(), v.into())));
    let spec = Spec {
        program: c.path.clone(),
        args: c.args.iter().map(OsString::from).collect(),
        cwd: None,
        env: Env {
            inherit: c.env_inherit == EnvInherit::All,
            // A host that is itself a plugin must not leak its own settings.
            remove: vec![
                EnvFilter::Prefix("PLUGIN_".into()),
                EnvFilter::Exact(MAGIC_COOKIE_KEY.into()),
                EnvFilter::Exact(env::GOMAXPROCS.into()),
            ],
            set,
        },
        cpu: Some(match &c.cpu {
            CpuConfig::MaxProcs(n) => CpuLimit::MaxProcs(*n),
            CpuConfig::Cpus(list) => CpuLimit::Cpus(list.clone()),
        }),
        limits: supervisor::Limits {
            address_space: c.limits.memory,
            open_files: c.limits.open_files,
            processes: c.limits.processes,
        },
        ..Spec::default()
    };
    let r = &c.restart;
    let policy = Policy {
        restart: match r.policy {
            RestartPolicy::Always => Restart::Always,
            RestartPolicy::OnFailure => Restart::OnFailure,
            RestartPolicy::Never => Restart::Never,
        },
        backoff: r
            .backoff
            .to_backoff()
            .expect("a loaded or validated config has a valid backoff"),
        min_uptime: r.min_uptime,
        reset_after: r.reset_after,
        intensity: r.max_restarts.map(|max_restarts| Intensity {
            max_restarts,
            window: r.window,
        }),
        // The readiness hook bounds each of its steps itself: the handshake
        // line by start-timeout, connecting and the first health check by the
        // health timeout each. This is the backstop over all three.
        start_timeout: c
            .start_timeout
            .saturating_add(plugin.health.timeout.saturating_mul(2))
            .saturating_add(READINESS_SLACK),
        liveness: Some(Liveness {
            interval: plugin.health.interval,
            timeout: plugin.health.timeout,
            failure_threshold: plugin.health.failure_threshold,
        }),
        restart_grace: c.stop_grace,
        ..Policy::default()
    };
    (spec, policy)
}

/// The worker count the plugin is told (`PLUGIN_PROCS`, `GOMAXPROCS`): the
/// configured CPUs, clamped to the CPUs this host may use, as the supervisor
/// clamps the affinity.
fn effective_procs(cpu: &CpuConfig) -> usize {
    match cpu {
        CpuConfig::MaxProcs(n) => n.get().min(host_cpus().get()),
        CpuConfig::Cpus(list) => list.len().max(1),
    }
}

/// The CPUs in this process's affinity mask (what the supervisor picks from).
fn host_cpus() -> NonZeroUsize {
    use nix::sched::{CpuSet, sched_getaffinity};
    let count = sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .count()
        })
        .unwrap_or(1);
    NonZeroUsize::new(count).unwrap_or(NonZeroUsize::MIN)
}
