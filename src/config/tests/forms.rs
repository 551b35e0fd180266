//! Both forms load, with their defaults and the binary lookup; the shipped examples are valid.

use std::{num::NonZeroUsize, path::Path, time::Duration};

use super::support::{TempDir, context, load_in};
use crate::config::{
    BackoffConfig, CompanionConfig, Config, CpuConfig, EnvInherit, HealthConfig, LimitsConfig,
    PluginConfig, PluginKind, RemoteAddress, RemoteConfig, RestartConfig, RestartPolicy, load,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn companion(config: &Config, name: &str) -> CompanionConfig {
    config
        .get(name)
        .and_then(PluginConfig::companion)
        .cloned()
        .expect("companion plugin")
}

fn remote(config: &Config, name: &str) -> RemoteConfig {
    config
        .get(name)
        .and_then(PluginConfig::remote)
        .cloned()
        .expect("remote plugin")
}

const POLARIS: &str = r#"
bootstrap:
  logger: { level: info }
plugin:
  history:
    entries:
      - name: HistoryLogger
      - name: remote-history
        option:
          name: history-plugin
          mode: remote
          remote: { address: "unix:/run/history.sock" }
  ratelimit:
    name: remote-rate-limit
    option:
      name: rate-limit-server-v2
      mode: companion
      some-host-setting: 7
      companion:
        path: ../examples/rate-limit-server-v2
        max-procs: 4
        args: [--port, 8080, --ratio, 1.50]
        hot-reload: true
  auth:
    name: defaultAuth
    option: { salt: abc }
  ratelimit-v3:
    option: { name: rate-limit-server-v3, mode: remote, remote: { address: 0.0.0.0:8972 } }
"#;

#[test]
fn polaris_form_registers_plugins_with_a_mode_and_skips_the_hosts() {
    let dir = TempDir::new();
    let binary = dir.exe("examples/rate-limit-server-v2");
    std::fs::create_dir(dir.path().join("conf")).expect("mkdir");
    let config = load_in(&dir.path().join("conf"), POLARIS).expect("valid");
    let names: Vec<_> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "history-plugin",
            "rate-limit-server-v2",
            "rate-limit-server-v3"
        ]
    );

    let c = companion(&config, "rate-limit-server-v2");
    assert_eq!(
        c.path,
        dir.path().join("conf/../examples/rate-limit-server-v2")
    );
    assert!(c.path.is_absolute());
    assert_eq!(c.path.canonicalize().ok(), binary.canonicalize().ok());
    // The Polaris form is read through a YAML value, which keeps numbers by value: `1.50` is
    // `1.5` here (the native form keeps the text).
    assert_eq!(c.args, ["--port", "8080", "--ratio", "1.5"]);
    assert_eq!(c.cpu, CpuConfig::MaxProcs(NonZeroUsize::new(4).expect("4")));
    // Everything the Polaris form does not carry is default.
    assert_eq!(
        c,
        CompanionConfig {
            args: c.args.clone(),
            cpu: c.cpu.clone(),
            ..CompanionConfig::new(c.path.clone())
        }
    );

    assert_eq!(
        remote(&config, "rate-limit-server-v3"),
        RemoteConfig::new(RemoteAddress::Tcp {
            host: "0.0.0.0".into(),
            port: 8972
        })
    );
    assert_eq!(
        remote(&config, "history-plugin").address,
        RemoteAddress::Unix("/run/history.sock".into())
    );
    let plugin = config.get("rate-limit-server-v3").expect("present");
    assert_eq!(plugin.call_timeout, secs(5));
    assert_eq!(plugin.drain_timeout, secs(5));
    assert_eq!(plugin.health, HealthConfig::default());
}

#[test]
fn polaris_max_procs_zero_or_unset_means_one() {
    let dir = TempDir::new();
    dir.exe("a");
    dir.exe("b");
    let yaml = r#"
plugin:
  one: { option: { name: a, mode: companion, companion: { path: a, max-procs: 0 } } }
  two: { option: { name: b, mode: companion, companion: { path: b } } }
"#;
    let config = load_in(dir.path(), yaml).expect("valid");
    assert_eq!(
        companion(&config, "a").cpu,
        CpuConfig::MaxProcs(NonZeroUsize::MIN)
    );
    assert_eq!(
        companion(&config, "b").cpu,
        CpuConfig::MaxProcs(NonZeroUsize::MIN)
    );
}

/// `sha256sum` of `abc`.
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn polaris_form_reads_sha256_and_watch() {
    let dir = TempDir::new();
    dir.exe("a");
    dir.exe("b");
    let yaml = format!(
        r#"
plugin:
  one: {{ option: {{ name: a, mode: companion, companion: {{ path: a, sha256: {ABC_SHA256}, watch: true }} }} }}
  two: {{ option: {{ name: b, mode: companion, companion: {{ path: b }} }} }}
"#
    );
    let config = load_in(dir.path(), &yaml).expect("valid");
    let a = companion(&config, "a");
    assert_eq!(a.sha256.map(|d| d.to_string()).as_deref(), Some(ABC_SHA256));
    assert!(a.watch);
    let b = companion(&config, "b");
    assert_eq!((b.sha256, b.watch), (None, false));
}

const NATIVE_FULL: &str = r#"
plugins:
  - name: limiter
    mode: companion
    call-timeout: 1500ms
    drain-timeout: 0s
    health: { interval: 2s, timeout: 250ms, failure-threshold: 5 }
    companion:
      path: bin/limiter
      args: [--verbose, 8080, true, 1.50]
      env: { RUST_LOG: debug, B: 1.10, A: "x=y" }
      cpus: [1, 0]
      start-timeout: 1m
      stop-grace: 500ms
      auto-mtls: true
      restart:
        policy: on-failure
        min-uptime: 2s
        reset-after: 1m30s
        max-restarts: 10
        window: 2m
        backoff: { initial: 50ms, factor: 1.5, max: 10s, jitter: 0 }
      sha256: BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD
      watch: true
      env-inherit: [PATH, HOME]
      limits: { memory: 256MiB, open-files: 1024, processes: 512 }
  - name: remote-limiter
    mode: remote
    remote:
      address: "[::1]:8972"
      connect-timeout: 250ms
      keepalive: off
      connections: 3
      backoff: { initial: 1s, factor: 3, max: 1m, jitter: 0.5 }
"#;

#[test]
fn native_form_reads_every_key() {
    let dir = TempDir::new();
    let binary = dir.exe("bin/limiter");
    let config = load_in(dir.path(), NATIVE_FULL).expect("valid");
    assert_eq!(config.base_dir, dir.path());

    let limiter = config.get("limiter").expect("present");
    assert_eq!(limiter.call_timeout, ms(1500));
    assert_eq!(limiter.drain_timeout, Duration::ZERO);
    assert_eq!(
        limiter.health,
        HealthConfig {
            interval: secs(2),
            timeout: ms(250),
            failure_threshold: 5
        }
    );
    let expected = CompanionConfig {
        path: binary,
        args: vec![
            "--verbose".into(),
            "8080".into(),
            "true".into(),
            "1.50".into(),
        ],
        env: vec![
            ("RUST_LOG".into(), "debug".into()),
            ("B".into(), "1.10".into()),
            ("A".into(), "x=y".into()),
        ],
        cpu: CpuConfig::Cpus(vec![1, 0]),
        start_timeout: secs(60),
        stop_grace: ms(500),
        restart: RestartConfig {
            policy: RestartPolicy::OnFailure,
            backoff: BackoffConfig {
                initial: ms(50),
                factor: 1.5,
                max: secs(10),
                jitter: 0.0,
            },
            min_uptime: secs(2),
            reset_after: secs(90),
            max_restarts: Some(10),
            window: secs(120),
        },
        sha256: Some(ABC_SHA256.parse().expect("a digest")),
        watch: true,
        auto_mtls: true,
        env_inherit: EnvInherit::Only(vec!["PATH".into(), "HOME".into()]),
        limits: LimitsConfig {
            memory: Some(256 << 20),
            open_files: Some(1024),
            processes: Some(512),
        },
    };
    assert_eq!(limiter.kind, PluginKind::Companion(expected));

    let remote = config.get("remote-limiter").expect("present");
    assert_eq!(
        remote.kind,
        PluginKind::Remote(RemoteConfig {
            address: RemoteAddress::Tcp {
                host: "::1".into(),
                port: 8972
            },
            connect_timeout: ms(250),
            keepalive: None,
            connections: std::num::NonZeroUsize::new(3),
            backoff: BackoffConfig {
                initial: secs(1),
                factor: 3.0,
                max: secs(60),
                jitter: 0.5
            },
            tls: None,
            fleet: None,
        })
    );
}

#[test]
fn native_defaults_match_the_documented_ones() {
    let dir = TempDir::new();
    let binary = dir.exe("p");
    let yaml = "plugins:\n  - {name: p, mode: companion, companion: {path: p}}\n  - {name: r, mode: remote, remote: {address: 'localhost:1'}}\n";
    let config = load_in(dir.path(), yaml).expect("valid");
    assert_eq!(
        config.plugins,
        [
            PluginConfig::new("p", PluginKind::Companion(CompanionConfig::new(binary))),
            PluginConfig::new(
                "r",
                PluginKind::Remote(RemoteConfig::new(RemoteAddress::Tcp {
                    host: "localhost".into(),
                    port: 1
                }))
            ),
        ]
    );
    let c = companion(&config, "p");
    assert_eq!(c.start_timeout, secs(30));
    assert_eq!(c.stop_grace, secs(2));
    assert_eq!(c.cpu, CpuConfig::MaxProcs(NonZeroUsize::MIN));
    assert_eq!(c.restart.policy, RestartPolicy::Always);
    assert_eq!(
        c.restart.backoff,
        BackoffConfig {
            initial: ms(200),
            factor: 2.0,
            max: secs(30),
            jitter: 0.2
        }
    );
    assert_eq!(
        (
            c.restart.min_uptime,
            c.restart.reset_after,
            c.restart.window
        ),
        (secs(1), secs(30), secs(60))
    );
    assert_eq!(c.restart.max_restarts, None);
    let r = remote(&config, "r");
    assert_eq!(r.connect_timeout, secs(1));
    assert_eq!(r.keepalive, Some(secs(300)));
    assert_eq!(
        r.backoff,
        BackoffConfig {
            initial: ms(100),
            factor: 2.0,
            max: secs(5),
            jitter: 0.2
        }
    );
}

#[test]
fn both_forms_in_one_file() {
    let dir = TempDir::new();
    dir.exe("a");
    let yaml = "
plugin:
  slot: { option: { name: a, mode: companion, companion: { path: a } } }
plugins:
  - { name: b, mode: remote, remote: { address: 'unix:/tmp/b.sock' } }
";
    let config = load_in(dir.path(), yaml).expect("valid");
    let names: Vec<_> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn a_document_without_plugins_is_empty() {
    let dir = TempDir::new();
    for yaml in [
        "",
        "# nothing\n",
        "server: { port: 8090 }\nplugin:\n  auth: { name: x }\n",
        "plugins: []\n",
        "plugins:\n",
    ] {
        let config = load_in(dir.path(), yaml).expect(yaml);
        assert!(config.plugins.is_empty(), "{yaml:?}");
    }
}

#[test]
fn a_companion_without_path_is_looked_up_next_to_the_host_then_the_config() {
    let exe_dir = TempDir::new();
    let config_dir = TempDir::new();
    let yaml = "plugins:\n  - { name: p, mode: companion }\n";
    let load_p = || {
        load(yaml, None, context(config_dir.path(), Some(exe_dir.path())))
            .map(|c| companion(&c, "p").path)
    };

    let next_to_config = config_dir.exe("p");
    assert_eq!(load_p().expect("found"), next_to_config);
    let next_to_host = exe_dir.exe("p");
    assert_eq!(load_p().expect("found"), next_to_host);
}

#[test]
fn an_absolute_path_is_used_as_is() {
    let dir = TempDir::new();
    let binary = dir.exe("abs/p");
    let yaml = format!(
        "plugins:\n  - {{ name: p, mode: companion, companion: {{ path: '{}' }} }}\n",
        binary.display()
    );
    let config = load_in(Path::new("/nonexistent"), &yaml).expect("valid");
    assert_eq!(companion(&config, "p").path, binary);
}

#[test]
fn from_file_resolves_against_the_files_directory() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let config = Config::from_file(&fixtures.join("native.yaml")).expect("fixture is valid");
    assert_eq!(config.base_dir, fixtures);
    assert_eq!(
        companion(&config, "echo-plugin").path,
        fixtures.join("bin/echo-plugin")
    );
    assert!(config.get("remote-echo").is_some());

    let config = Config::from_file(&fixtures.join("polaris.yaml")).expect("fixture is valid");
    assert_eq!(
        companion(&config, "echo-plugin").path,
        fixtures.join("./bin/echo-plugin")
    );
    assert!(config.get("rate-limit-server-v3").is_some());
}

#[test]
fn from_yaml_str_resolves_against_the_given_directory() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let yaml = "plugins:\n  - { name: x, mode: companion, companion: { path: bin/echo-plugin } }\n";
    let config = Config::from_yaml_str(yaml, &fixtures).expect("valid");
    assert_eq!(
        companion(&config, "x").path,
        fixtures.join("bin/echo-plugin")
    );
}

#[test]
fn connections_are_auto_or_a_number() {
    let dir = TempDir::new();
    let yaml = "plugins:\n  - { name: a, mode: remote, remote: { address: 'h:1' } }\n  - { name: b, mode: remote, remote: { address: 'h:1', connections: auto } }\n  - { name: c, mode: remote, remote: { address: 'h:1', connections: 16 } }\n";
    let config = load_in(dir.path(), yaml).expect("valid");
    assert_eq!(remote(&config, "a").connections, None);
    assert_eq!(remote(&config, "b").connections, None);
    assert_eq!(
        remote(&config, "c").connections,
        std::num::NonZeroUsize::new(16)
    );
}

#[test]
fn keepalive_accepts_off_and_durations() {
    let dir = TempDir::new();
    let yaml = "plugins:\n  - { name: a, mode: remote, remote: { address: 'h:1', keepalive: off } }\n  - { name: b, mode: remote, remote: { address: 'h:1', keepalive: 30s } }\n";
    let config = load_in(dir.path(), yaml).expect("valid");
    assert_eq!(remote(&config, "a").keepalive, None);
    assert_eq!(remote(&config, "b").keepalive, Some(secs(30)));
}

#[test]
fn anchors_and_merge_keys_work_in_both_forms() {
    let dir = TempDir::new();
    dir.exe("p");
    let yaml = r#"
defaults: &defaults
  mode: remote
  call-timeout: 2s
option: &option { mode: companion, companion: { path: p } }
plugin:
  slot:
    option: { <<: *option, name: a }
plugins:
  - { <<: *defaults, name: b, remote: { address: "h:1" } }
  - { <<: *defaults, name: c, call-timeout: 3s, remote: { address: "h:2" } }
"#;
    let config = load_in(dir.path(), yaml).expect("valid");
    assert!(config.get("a").and_then(PluginConfig::companion).is_some());
    assert_eq!(config.get("b").map(|p| p.call_timeout), Some(secs(2)));
    assert_eq!(config.get("c").map(|p| p.call_timeout), Some(secs(3)));
}

/// Every YAML example in docs/configuration.md is accepted (binaries and CPUs not checked).
#[test]
fn the_documented_examples_are_valid() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let text = std::fs::read_to_string(&docs).expect("docs/configuration.md");
    let mut blocks = 0;
    for block in text.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap_or_default();
        let mut ctx = context(Path::new("/etc/polaris"), None);
        ctx.check_files = false;
        ctx.allowed_cpus = None;
        if let Err(e) = load(yaml, None, ctx) {
            panic!("docs example is invalid: {e}\n{yaml}");
        }
        blocks += 1;
    }
    assert!(blocks >= 3, "found {blocks} yaml examples");
}

/// The README's example host config is accepted (binaries not checked: they are built later).
#[test]
fn the_example_host_config_is_valid() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/host.yaml");
    let yaml = std::fs::read_to_string(&file).expect("examples/host.yaml");
    let mut ctx = context(file.parent().expect("has a directory"), None);
    ctx.check_files = false;
    let config = load(&yaml, Some(&file), ctx).expect("examples/host.yaml is valid");
    assert_eq!(config.plugins.len(), 3);
}

#[test]
fn call_policy_keys_are_read_from_the_native_form() {
    use crate::{
        config::{CallPolicy, Delivery, OnUnavailable},
        proto::polaris::RateLimitPluginResponse,
    };
    use prost::Message as _;

    let dir = TempDir::new();
    let yaml = r#"
plugins:
  - name: a
    mode: remote
    remote: { address: "h:1" }
    retry: at-least-once
    max-concurrent-calls: 8
    max-queued-calls: 0
    on-unavailable: fail-fast
    fallback: { type: proto.RateLimitPluginResponse, json: { allow: true } }
  - { name: b, mode: remote, remote: { address: "h:1" }, fallback: { type: proto.RateLimitPluginResponse } }
  - { name: c, mode: remote, remote: { address: "h:1" }, max-concurrent-calls: 65536, max-queued-calls: 65536 }
plugin:
  s: { option: { name: p, mode: remote, remote: { address: "h:1" }, retry: at-least-once } }
"#;
    let config = load_in(dir.path(), yaml).expect("valid");
    let a = &config.get("a").expect("present").call;
    assert_eq!(a.delivery, Delivery::AtLeastOnce);
    assert_eq!(a.max_concurrent.get(), 8);
    assert_eq!(a.max_queued, 0);
    assert_eq!(a.on_unavailable, OnUnavailable::FailFast);
    let fallback = a.fallback.as_ref().expect("a fallback");
    assert_eq!(fallback.type_name, "proto.RateLimitPluginResponse");
    let any = fallback.response.reply.as_ref().expect("a reply");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/proto.RateLimitPluginResponse"
    );
    assert_eq!(
        RateLimitPluginResponse::decode(any.value.as_slice()).expect("decodes"),
        RateLimitPluginResponse { allow: true }
    );
    // `json` defaults to the empty message.
    let b = config.get("b").expect("present").call.fallback.clone();
    let any = b.and_then(|f| f.response.reply).expect("a reply");
    assert_eq!(
        RateLimitPluginResponse::decode(any.value.as_slice()).expect("decodes"),
        RateLimitPluginResponse { allow: false }
    );
    let c = &config.get("c").expect("present").call;
    assert_eq!(
        (c.max_concurrent.get(), c.max_queued),
        (CallPolicy::LIMIT, CallPolicy::LIMIT)
    );
    // The Polaris form reads none of them: its option's other keys are the host's.
    assert_eq!(
        config.get("p").expect("present").call,
        CallPolicy::default()
    );
}

/// What loading produces passes `Config::validate`.
#[test]
fn a_loaded_config_passes_validate() {
    let dir = TempDir::new();
    dir.exe("bin/limiter");
    let config = load_in(dir.path(), NATIVE_FULL).expect("valid");
    if let Err(e) = config.validate() {
        panic!("{e}");
    }
}
