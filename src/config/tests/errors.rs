//! Every validation error, with its message. `$DIR` stands for the config's directory.

use std::path::Path;

use super::support::{TempDir, context, error, load_in};
use crate::config::{
    Config, ConfigError, Location, PluginRef, load,
    raw::{
        BACKOFF_KEYS, COMPANION_KEYS, HEALTH_KEYS, PLUGIN_KEYS, REMOTE_KEYS, RESTART_KEYS, TLS_KEYS,
    },
};

/// A native companion entry named `a` (binary `plugins/p`) with `extra` lines added to its
/// `companion:` section.
fn companion_with(extra: &str) -> String {
    let mut yaml =
        "plugins:\n  - name: a\n    mode: companion\n    companion:\n      path: plugins/p\n"
            .to_owned();
    for line in extra.lines() {
        yaml.push_str("      ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

/// A native remote entry named `r` with `remote: {remote}`.
fn remote_with(remote: &str) -> String {
    format!("plugins:\n  - {{ name: r, mode: remote, remote: {remote} }}\n")
}

#[test]
fn yaml_syntax_error_has_file_line_and_column() {
    let dir = TempDir::new();
    let file = dir.path().join("host.yaml");
    std::fs::write(&file, "plugins:\n  - name: a\n    mode: [companion\n").expect("write");
    let err = Config::from_file(&file).expect_err("invalid YAML");
    let ConfigError::Syntax {
        location,
        file: Some(in_file),
        ..
    } = &err
    else {
        panic!("not a syntax error: {err:?}");
    };
    assert_eq!(in_file, &file);
    assert_eq!(*location, Some(Location { line: 4, column: 1 }));
    assert_eq!(
        err.to_string()
            .replace(&dir.path().display().to_string(), "$DIR"),
        "config file $DIR/host.yaml is not valid YAML: did not find expected ',' or ']' at line 4 column 1, while parsing a flow sequence at line 3 column 11"
    );
}

#[test]
fn duplicate_yaml_keys_are_a_syntax_error() {
    assert_eq!(
        error(&companion_with("env: { A: 1, A: 2 }")),
        "the config is not valid YAML: plugins[0].companion.env: duplicate entry with key \"A\" at line 6 column 12"
    );
}

#[test]
fn the_top_level_must_be_a_mapping() {
    assert_eq!(
        error("- a\n- b\n"),
        "the config must be a YAML mapping (`key: value` lines) at the top level, but it is a list"
    );
}

#[test]
fn plugins_must_be_a_list() {
    assert_eq!(
        error("plugins:\n  name: a\n"),
        "plugins at line 2 column 3: invalid type: map, expected a sequence; plugins is a list of plugin entries, each starting with `- name:`"
    );
}

#[test]
fn unknown_mode() {
    assert_eq!(
        error("plugin:\n  rl: { option: { name: x, mode: local } }\n"),
        "plugin \"x\": option.mode: \"local\" is not a plugin mode; use companion or remote (or no mode for a plugin the host runs itself)"
    );
    assert_eq!(
        error("plugin:\n  rl: { option: { mode: 5 } }\n"),
        "plugin at plugin.rl: option.mode: 5 is not a plugin mode; use companion or remote (or no mode for a plugin the host runs itself)"
    );
    assert_eq!(
        error("plugins:\n  - { name: x, mode: Companion }\n"),
        "plugin \"x\": mode: \"Companion\" is not a plugin mode; use companion or remote"
    );
}

#[test]
fn unknown_key_in_the_native_form() {
    assert_eq!(
        error(&companion_with("maxprocs: 4")),
        "plugin \"a\": unknown key companion.maxprocs at line 6 column 7; did you mean max-procs? companion has the keys path, args, env, max-procs, cpus, start-timeout, stop-grace, restart, sha256, watch, auto-mtls, env-inherit, limits"
    );
    assert_eq!(
        error("plugins:\n  - name: a\n    mode: remote\n    colour: blue\n"),
        "plugin \"a\": unknown key colour at line 4 column 5; a plugin entry has the keys name, mode, call-timeout, drain-timeout, health, companion, remote, retry, max-concurrent-calls, max-queued-calls, on-unavailable, fallback"
    );
    assert_eq!(
        error(&companion_with("restart:\n  backoff: { jiter: 0.1 }")),
        "plugin \"a\": unknown key companion.restart.backoff.jiter at line 7 column 20; did you mean jitter? companion.restart.backoff has the keys initial, factor, max, jitter"
    );
    assert_eq!(
        error("plugins:\n  - { mode: remote, remote: { adress: 'h:1' } }\n"),
        "plugin at plugins[0]: unknown key remote.adress at line 2 column 31; did you mean address? remote has the keys address, connect-timeout, keepalive, connections, backoff, tls, resolve-interval, consecutive-failures, base-ejection-time, max-ejection-time, max-ejection-percent"
    );
}

#[test]
fn unknown_key_after_a_merge_has_no_position() {
    assert_eq!(
        error(
            "d: &d { mode: remote }\nplugins:\n  - { <<: *d, name: r, remote: { address: 'h:1', colour: red } }\n"
        ),
        "plugin \"r\": unknown key remote.colour; remote has the keys address, connect-timeout, keepalive, connections, backoff, tls, resolve-interval, consecutive-failures, base-ejection-time, max-ejection-time, max-ejection-percent"
    );
}

#[test]
fn unknown_keys_are_tolerated_in_the_polaris_form() {
    let dir = TempDir::new();
    dir.exe("p");
    let yaml = "plugin:\n  s:\n    extra: 1\n    option: { name: a, mode: companion, flavour: x, companion: { path: p, hot-reload: true } }\n";
    assert!(super::support::load_in(dir.path(), yaml).is_ok());
}

#[test]
fn the_valid_key_lists_match_the_serde_types() {
    let sections = [
        ("bogus: 1", PLUGIN_KEYS),
        ("health: { bogus: 1 }", HEALTH_KEYS),
        ("companion: { bogus: 1 }", COMPANION_KEYS),
        ("companion: { restart: { bogus: 1 } }", RESTART_KEYS),
        (
            "companion: { restart: { backoff: { bogus: 1 } } }",
            BACKOFF_KEYS,
        ),
        ("remote: { bogus: 1 }", REMOTE_KEYS),
        ("remote: { tls: { bogus: 1 } }", TLS_KEYS),
    ];
    for (yaml, keys) in sections {
        let yaml = format!("plugins:\n  - {{ name: a, {yaml} }}\n");
        let raw = yaml_serde::from_str::<crate::config::raw::RawDocument>(&yaml)
            .expect_err("unknown key")
            .to_string();
        let listed = keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            raw.contains(&format!("expected one of {listed}")),
            "{raw}\nvs {listed}"
        );
        let ours = error(&yaml);
        assert!(ours.ends_with(&keys.join(", ")), "{ours}");
    }
}

#[test]
fn auto_mtls_is_a_boolean() {
    assert_eq!(
        error(&companion_with("auto-mtls: yes please")),
        "plugin \"a\": companion.auto-mtls at line 6 column 18: invalid type: string \"yes please\", expected a boolean"
    );
}

#[test]
fn wrong_value_type_has_key_and_position() {
    assert_eq!(
        error(&companion_with("max-procs: [4]")),
        "plugin \"a\": companion.max-procs at line 6 column 18: invalid type: sequence, expected an integer"
    );
    assert_eq!(
        error(&companion_with("cpus: 0")),
        "plugin \"a\": companion.cpus at line 6 column 13: invalid type: integer `0`, expected a sequence"
    );
    assert_eq!(
        error(
            "plugin:\n  s: { option: { name: x, mode: companion, companion: { max-procs: four } } }\n"
        ),
        "plugin \"x\": option.companion.max-procs must be an integer from 0 to 1024, got four"
    );
    assert_eq!(
        error("plugins:\n  - just-a-name\n"),
        "plugin at plugins[0] at line 2 column 5: invalid type: string \"just-a-name\", expected a mapping (key: value lines)"
    );
}

#[test]
fn duplicate_names_across_forms() {
    assert_eq!(
        error(
            "plugin:\n  slot: { option: { name: a, mode: remote, remote: { address: 'h:1' } } }\nplugins:\n  - { name: a, mode: remote, remote: { address: 'h:2' } }\n"
        ),
        "plugin \"a\" is configured twice, at plugin.slot and at plugins[0]; plugin names must be unique"
    );
    assert_eq!(
        error(
            "plugins:\n  - { name: a, mode: remote, remote: { address: 'h:1' } }\n  - { name: a, mode: remote, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"a\" is configured twice, at plugins[0] and at plugins[1]; plugin names must be unique"
    );
}

#[test]
fn missing_binary_names_every_path_tried() {
    assert_eq!(
        error("plugins:\n  - { name: a, mode: companion, companion: { path: bin/nope } }\n"),
        "plugin \"a\": companion.path: no file at $DIR/bin/nope; fix the path (absolute, or relative to the config file's directory)"
    );
    let exe_dir = TempDir::new();
    let config_dir = TempDir::new();
    let err = load(
        "plugin:\n  s: { option: { name: ghost, mode: companion } }\n",
        None,
        context(config_dir.path(), Some(exe_dir.path())),
    )
    .expect_err("no binary");
    assert_eq!(
        err.to_string(),
        format!(
            "plugin \"ghost\": no plugin binary found (tried {}/ghost, {}/ghost); set option.companion.path (absolute, or relative to the config file's directory)",
            exe_dir.path().display(),
            config_dir.path().display()
        )
    );
    assert!(
        matches!(err, ConfigError::BinaryNotFound { tried, configured: false, .. } if tried.len() == 2)
    );
}

#[test]
fn binary_must_be_an_executable_regular_file() {
    assert_eq!(
        error("plugins:\n  - { name: a, mode: companion, companion: { path: plugins } }\n"),
        "plugin \"a\": companion.path: $DIR/plugins is not a regular file; point companion.path at the plugin binary"
    );
    let dir = TempDir::new();
    dir.file("plain", 0o644);
    let err = super::support::load_in(
        dir.path(),
        "plugins:\n  - { name: a, mode: companion, companion: { path: plain } }\n",
    )
    .expect_err("not executable");
    assert_eq!(
        err.to_string()
            .replace(&dir.path().display().to_string(), "$DIR"),
        "plugin \"a\": companion.path: $DIR/plain is not executable (mode 644); make it so with `chmod +x $DIR/plain`"
    );
}

#[test]
fn max_procs_out_of_range() {
    assert_eq!(
        error(
            "plugin:\n  ratelimit:\n    option: { name: rate-limit-server-v2, mode: companion, companion: { path: plugins/p, max-procs: 2000 } }\n"
        ),
        "plugin \"rate-limit-server-v2\": option.companion.max-procs must be an integer from 0 to 1024, got 2000"
    );
    assert_eq!(
        error(&companion_with("max-procs: -1")),
        "plugin \"a\": companion.max-procs must be an integer from 0 to 1024, got -1"
    );
}

#[test]
fn cpu_list_problems() {
    assert_eq!(
        error(&companion_with("cpus: []")),
        "plugin \"a\": companion.cpus is empty; list CPU numbers, like [0, 1], or use max-procs instead"
    );
    assert_eq!(
        error(&companion_with("cpus: [0, 1, 0]")),
        "plugin \"a\": companion.cpus: CPU 0 is listed twice; list each CPU once"
    );
    assert_eq!(
        error(&companion_with("max-procs: 2\ncpus: [0, 1]")),
        "plugin \"a\": companion.max-procs and companion.cpus are both set; use max-procs for a number of CPUs or cpus for a fixed list, not both"
    );
    assert_eq!(
        error(&companion_with("cpus: [1, -1]")),
        "plugin \"a\": companion.cpus[1] must be an integer from 0 to 1023, got -1"
    );
    assert_eq!(
        error(&companion_with("cpus: [7]")),
        "plugin \"a\": companion.cpus: CPU 7 is not available to this process; available: 0, 1"
    );
}

#[test]
fn unparsable_addresses() {
    let cases = [
        (
            "8972",
            "plugin \"r\": remote.address: \"8972\" is not an address: it has no host; write 127.0.0.1:8972 or localhost:8972",
        ),
        (
            "'host:'",
            "plugin \"r\": remote.address: \"host:\" is not an address: it has no port; write host:PORT with a port in 1..=65535",
        ),
        (
            "'host:99999'",
            "plugin \"r\": remote.address: \"host:99999\" is not an address: port \"99999\" is not a number in 1..=65535",
        ),
        (
            "'unix:relative.sock'",
            "plugin \"r\": remote.address: \"unix:relative.sock\" is not an address: a unix socket path must be absolute, as in unix:/run/plugin.sock; got \"relative.sock\"",
        ),
    ];
    for (address, message) in cases {
        assert_eq!(
            error(&remote_with(&format!("{{ address: {address} }}"))),
            message
        );
    }
    assert_eq!(
        error(
            "plugin:\n  v3: { option: { name: v3, mode: remote, remote: { address: 'http://h:1' } } }\n"
        ),
        "plugin \"v3\": option.remote.address: \"http://h:1\" is not an address: drop the http:// prefix; write host:port (e.g. 127.0.0.1:8972) or unix:/absolute/path"
    );
}

#[test]
fn unparsable_durations() {
    assert_eq!(
        error(
            "plugins:\n  - { name: r, mode: remote, call-timeout: 5, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"r\": call-timeout: \"5\" is not a duration: 5 has no unit; add one, like 5s or 5ms (units: h, m, s, ms, us, ns)"
    );
    assert_eq!(
        error(&companion_with("restart: { window: 5min }")),
        "plugin \"a\": companion.restart.window: \"5min\" is not a duration: \"min\" is not a unit; use one of h, m, s, ms, us, ns"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1', keepalive: forever }")),
        "plugin \"r\": remote.keepalive: \"forever\" is not a duration: expected a number at \"forever\"; durations look like 500ms, 5s, 2m or 1m30s"
    );
}

#[test]
fn connections_out_of_range_or_not_a_number() {
    for value in ["0", "17", "many"] {
        assert_eq!(
            error(&remote_with(&format!(
                "{{ address: 'h:1', connections: {value} }}"
            ))),
            format!(
                "plugin \"r\": remote.connections must be an integer from 1 to 16, got {value}"
            )
        );
    }
}

#[test]
fn zero_durations_and_thresholds() {
    assert_eq!(
        error(
            "plugins:\n  - { name: r, mode: remote, health: { interval: 0s }, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"r\": health.interval: 0s is out of range (greater than zero)"
    );
    assert_eq!(
        error(
            "plugins:\n  - { name: r, mode: remote, health: { failure-threshold: 0 }, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"r\": health.failure-threshold must be an integer from 1 to 4294967295, got 0"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1', keepalive: 0ms }")),
        "plugin \"r\": remote.keepalive: 0s is out of range (greater than zero, or off)"
    );
}

#[test]
fn backoff_parameters() {
    assert_eq!(
        error(&companion_with("restart: { backoff: { jitter: 1.5 } }")),
        "plugin \"a\": companion.restart.backoff.jitter: 1.5 is out of range (0 <= jitter < 1)"
    );
    assert_eq!(
        error(&companion_with("restart: { backoff: { jitter: -0.1 } }")),
        "plugin \"a\": companion.restart.backoff.jitter: -0.1 is out of range (0 <= jitter < 1)"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1', backoff: { factor: 0.5 } }")),
        "plugin \"r\": remote.backoff.factor: 0.5 is out of range (1 or more)"
    );
    assert_eq!(
        error(&remote_with(
            "{ address: 'h:1', backoff: { initial: 10s } }"
        )),
        "plugin \"r\": remote.backoff: initial (10s) is greater than max (5s); raise max or lower initial"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1', backoff: { initial: 0s } }")),
        "plugin \"r\": remote.backoff.initial: 0s is out of range (greater than zero)"
    );
}

#[test]
fn remote_without_address() {
    assert_eq!(
        error("plugins:\n  - { name: r, mode: remote }\n"),
        "plugin \"r\": remote.address is required; a remote plugin needs an address: host:port (e.g. 127.0.0.1:8972), unix:/absolute/path, a list of them, or dns:///name:port"
    );
    assert_eq!(
        error("plugin:\n  s: { option: { name: r, mode: remote, remote: {} } }\n"),
        "plugin \"r\": option.remote.address is required; a remote plugin needs an address: host:port (e.g. 127.0.0.1:8972), unix:/absolute/path, a list of them, or dns:///name:port"
    );
}

#[test]
fn a_section_for_the_other_mode() {
    assert_eq!(
        error(
            "plugins:\n  - { name: a, mode: companion, companion: { path: plugins/p }, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"a\": the mode is companion but remote is also given; remove remote or set the mode to remote"
    );
    assert_eq!(
        error(
            "plugin:\n  s: { option: { name: r, mode: remote, remote: { address: 'h:1' }, companion: { path: x } } }\n"
        ),
        "plugin \"r\": the mode is remote but option.companion is also given; remove option.companion or set the mode to companion"
    );
}

#[test]
fn names_and_modes_are_required() {
    assert_eq!(
        error("plugins:\n  - { mode: remote, remote: { address: 'h:1' } }\n"),
        "plugin at plugins[0]: name is required; every plugin needs a name: it is what calls use and the binary's file name"
    );
    assert_eq!(
        error("plugin:\n  rl: { option: { mode: companion } }\n"),
        "plugin at plugin.rl: option.name is required; every plugin needs a name: it is what calls use and the binary's file name"
    );
    assert_eq!(
        error("plugins:\n  - { name: a }\n"),
        "plugin \"a\": mode is required; write mode: companion (the host runs the binary) or mode: remote (a server at an address)"
    );
    assert_eq!(
        error("plugins:\n  - { name: a/b, mode: companion }\n"),
        "plugin at plugins[0]: name: \"a/b\" is not a usable plugin name: it contains `/`; the name is also the binary's file name, so put directories in companion.path"
    );
    assert_eq!(
        error("plugins:\n  - { name: '', mode: companion }\n"),
        "plugin at plugins[0]: name: \"\" is not a usable plugin name: it is empty"
    );
}

#[test]
fn restart_policy_and_env() {
    assert_eq!(
        error(&companion_with("restart: { policy: sometimes }")),
        "plugin \"a\": companion.restart.policy: \"sometimes\" is not a restart policy; use always, on-failure or never"
    );
    assert_eq!(
        error(&companion_with("env: { 'A=B': 1 }")),
        "plugin \"a\": companion.env: variable \"A=B\" contains `=`, which cannot be part of a variable name"
    );
    assert_eq!(
        error(&companion_with("env: { GOMAXPROCS: 4 }")),
        "plugin \"a\": companion.env: variable \"GOMAXPROCS\" is set by the host from max-procs or cpus; set those instead"
    );
    assert_eq!(
        error(&companion_with("env: { PLUGIN_NAME: other }")),
        "plugin \"a\": companion.env: variable \"PLUGIN_NAME\" is set by the host to the plugin's name; remove it"
    );
    assert_eq!(
        error(&companion_with("max-restarts: 3")),
        "plugin \"a\": unknown key companion.max-restarts at line 6 column 7; companion has the keys path, args, env, max-procs, cpus, start-timeout, stop-grace, restart, sha256, watch, auto-mtls, env-inherit, limits"
    );
}

#[test]
fn unreadable_file() {
    let err = Config::from_file(Path::new("/nonexistent/host.yaml")).expect_err("missing");
    assert!(
        matches!(&err, ConfigError::Read { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
    );
    assert_eq!(
        err.to_string(),
        "cannot read config file /nonexistent/host.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn errors_expose_the_plugin() {
    let dir = TempDir::new();
    let err = super::support::load_in(dir.path(), "plugins:\n  - { name: r, mode: remote }\n")
        .expect_err("no address");
    let plugin = err.plugin().expect("about a plugin");
    assert_eq!(plugin.name.as_deref(), Some("r"));
    assert_eq!(plugin.origin, "plugins[0]");
    assert_eq!(
        err.plugin().map(PluginRef::to_string).as_deref(),
        Some("plugin \"r\"")
    );
}

#[test]
fn durations_are_capped() {
    assert_eq!(
        error(
            "plugins:\n  - { name: r, mode: remote, call-timeout: 3000000000000000h, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"r\": call-timeout: 3000000000000000h is longer than the limit of 8760h (365 days); use a shorter duration"
    );
    assert_eq!(
        error(&remote_with(
            "{ address: 'h:1', backoff: { max: 99999999999999999999999999h } }"
        )),
        "plugin \"r\": remote.backoff.max: 99999999999999999999999999h is longer than the limit of 8760h (365 days); use a shorter duration"
    );
    assert_eq!(
        error(&companion_with("restart: { backoff: { max: 8761h } }")),
        "plugin \"a\": companion.restart.backoff.max: 8761h is longer than the limit of 8760h (365 days); use a shorter duration"
    );
    let dir = TempDir::new();
    let at_the_limit = "plugins:\n  - { name: r, mode: remote, call-timeout: 8760h, drain-timeout: 365h8395h, remote: { address: 'h:1', keepalive: 8760h } }\n";
    assert!(super::support::load_in(dir.path(), at_the_limit).is_ok());
}

#[test]
fn integers_say_their_range() {
    let health = |n: &str| {
        format!(
            "plugins:\n  - {{ name: r, mode: remote, health: {{ failure-threshold: {n} }}, remote: {{ address: 'h:1' }} }}\n"
        )
    };
    assert_eq!(
        error(&health("99999999999999999999")),
        "plugin \"r\": health.failure-threshold must be an integer from 1 to 4294967295, got 99999999999999999999"
    );
    assert_eq!(
        error(&health("1.5")),
        "plugin \"r\": health.failure-threshold must be an integer from 1 to 4294967295, got 1.5"
    );
    assert_eq!(
        error(&companion_with("restart: { max-restarts: 4294967296 }")),
        "plugin \"a\": companion.restart.max-restarts must be an integer from 0 to 4294967295, got 4294967296"
    );
    assert_eq!(
        error(&companion_with("cpus: [0, one]")),
        "plugin \"a\": companion.cpus[1] must be an integer from 0 to 1023, got one"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1' }, max-concurrent-calls: 0")),
        "plugin \"r\": max-concurrent-calls must be an integer from 1 to 65536, got 0"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1' }, max-queued-calls: 65537")),
        "plugin \"r\": max-queued-calls must be an integer from 0 to 65536, got 65537"
    );
}

#[test]
fn call_policy_spellings() {
    assert_eq!(
        error(&remote_with("{ address: 'h:1' }, retry: twice")),
        "plugin \"r\": retry: \"twice\" is not valid here; expected one of at-most-once, at-least-once"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1' }, on-unavailable: fail")),
        "plugin \"r\": on-unavailable: \"fail\" is not valid here; expected one of wait, fail-fast"
    );
}

#[test]
fn fallback_problems() {
    assert_eq!(
        error(&remote_with(
            "{ address: 'h:1' }, fallback: { type: RateLimitPluginResponse }"
        )),
        "plugin \"r\": fallback.type: \"RateLimitPluginResponse\" is not a protobuf message type this host knows; write a full name, one of proto.Request, proto.Response, proto.RateLimitPluginRequest, proto.RateLimitPluginResponse"
    );
    assert_eq!(
        error(&remote_with("{ address: 'h:1' }, fallback: { json: {} }")),
        "plugin \"r\": fallback.type is required; a fallback names the reply's protobuf message type, like type: proto.RateLimitPluginResponse"
    );
    assert_eq!(
        error(&remote_with(
            "{ address: 'h:1' }, fallback: { type: proto.RateLimitPluginResponse, json: { alow: true } }"
        )),
        "plugin \"r\": fallback.json is not a valid proto.RateLimitPluginResponse: unrecognized field name 'alow'"
    );
    assert_eq!(
        error(&remote_with(
            "{ address: 'h:1' }, fallback: { type: proto.RateLimitPluginResponse, json: 'allow' }"
        )),
        "plugin \"r\": fallback.json is not a valid proto.RateLimitPluginResponse: it must be a mapping of the message's fields, like { field: value }, but it is a string"
    );
    assert_eq!(
        error(&remote_with(
            "{ address: 'h:1' }, fallback: { type: proto.RateLimitPluginResponse, jsn: {} }"
        )),
        "plugin \"r\": unknown key fallback.jsn at line 2 column 107; did you mean json? fallback has the keys type, json"
    );
}

#[test]
fn names_args_and_env_are_bounded() {
    let long = "n".repeat(129);
    assert_eq!(
        error(&format!("plugins:\n  - {{ name: {long}, mode: remote }}\n")),
        "plugin at plugins[0]: name is 129 bytes long; the limit is 128 bytes"
    );
    let arg = "x".repeat(32 * 1024 + 1);
    assert_eq!(
        error(&companion_with(&format!("args: [a, {arg}]"))),
        "plugin \"a\": companion.args[1] is 32769 bytes long; the limit is 32768 bytes"
    );
    let value = "v".repeat(32 * 1024);
    assert_eq!(
        error(&companion_with(&format!("env: {{ A: {value} }}"))),
        "plugin \"a\": companion.env.A is 32770 bytes long; the limit is 32768 bytes"
    );
    let args = vec!["y".repeat(30_000); 9].join(", ");
    assert_eq!(
        error(&companion_with(&format!("args: [{args}]"))),
        "plugin \"a\": companion.args and companion.env together take 270009 bytes; the limit is 262144 bytes (the kernel refuses to start a process with too large an argument list and environment)"
    );
}

#[test]
fn go_plugin_variables_are_reserved() {
    let cases = [
        (
            "PLUGIN_MULTIPLEX_GRPC",
            "asks a go-plugin (1.6 or later) plugin for gRPC broker multiplexing, which this host does not speak: the plugin would expect a multiplexed connection; remove it",
        ),
        (
            "PLUGIN_MIN_PORT",
            "is set by the host to go-plugin's TCP port range (10000 to 25000) for the plugin's listener; remove it",
        ),
        (
            "PLUGIN_MAX_PORT",
            "is set by the host to go-plugin's TCP port range (10000 to 25000) for the plugin's listener; remove it",
        ),
        (
            "PLUGIN_CLIENT_CERT",
            "is set by the host for each run when companion.auto-mtls is true (a fresh certificate each time); set that instead",
        ),
        (
            "PLUGIN_UNIX_SOCKET_DIR",
            "is a go-plugin host setting for the plugin's unix socket, which this host leaves unset (the plugin picks a private directory); remove it",
        ),
        (
            "PLUGIN_UNIX_SOCKET_GROUP",
            "is a go-plugin host setting for the plugin's unix socket, which this host leaves unset (the plugin picks a private directory); remove it",
        ),
        (
            "PLUGIN_PROTOCOL_VERSIONS",
            "is set by the host for the go-plugin handshake; remove it",
        ),
        (
            "POLARIS_PLUGIN",
            "is set by the host for the go-plugin handshake; remove it",
        ),
    ];
    for (name, reason) in cases {
        assert_eq!(
            error(&companion_with(&format!("env: {{ {name}: 1 }}"))),
            format!("plugin \"a\": companion.env: variable \"{name}\" {reason}")
        );
    }
}

#[test]
fn misspelt_top_level_sections() {
    let native = "  - { name: r, mode: remote, remote: { address: 'h:1' } }\n";
    assert_eq!(
        error(&format!("Plugins:\n{native}")),
        "the config has a top-level key \"Plugins\", which is not read; did you mean plugins? (plugins: is the native list of plugins, plugin: the Polaris plugin section)"
    );
    assert_eq!(
        error(&format!("pluigns:\n{native}")),
        "the config has a top-level key \"pluigns\", which is not read; did you mean plugins? (plugins: is the native list of plugins, plugin: the Polaris plugin section)"
    );
    assert_eq!(
        error("plugn:\n  s: { option: { name: x, mode: remote } }\n"),
        "the config has a top-level key \"plugn\", which is not read; did you mean plugin? (plugins: is the native list of plugins, plugin: the Polaris plugin section)"
    );
    assert_eq!(
        error(&format!("plugin:\n{native}")),
        "the config has plugin: as a list, but the Polaris plugin section is a mapping of slots, like plugin: { ratelimit: { option: { name: x, mode: companion } } }; for a list of plugins, write plugins:"
    );
}

#[test]
fn misspelt_mode_in_a_polaris_option() {
    assert_eq!(
        error(
            "plugin:\n  rl: { option: { name: x, mod: companion, companion: { path: plugins/p } } }\n"
        ),
        "plugin \"x\": option.mod is not read and option.mode is missing; did you mean option.mode? (companion or remote)"
    );
    assert_eq!(
        error(
            "plugin:\n  h:\n    entries:\n      - option: { name: y, Mode: remote, remote: { address: 'h:1' } }\n"
        ),
        "plugin \"y\": option.Mode is not read and option.mode is missing; did you mean option.mode? (companion or remote)"
    );
    // Without a companion or remote section, or without a key near `mode`, the option is
    // the host's, whatever its keys.
    let dir = TempDir::new();
    let config = super::support::load_in(
        dir.path(),
        "plugin:\n  a: { option: { name: x, mod: 1, node: 2 } }\n  b: { option: { name: y, kind: remote, remote: { address: 'h:1' } } }\n",
    )
    .expect("the host's own options");
    assert!(config.plugins.is_empty());
}

/// `Config::validate` on configs built in code: the same rules and messages as loading, with
/// the plugin's index as its place.
#[test]
fn hand_built_configs_are_validated() {
    use std::{num::NonZeroUsize, time::Duration};

    use crate::config::{
        CompanionConfig, CpuConfig, Fallback, MAX_DURATION, PluginConfig, PluginKind,
        RemoteAddress, RemoteConfig,
    };
    use crate::proto::polaris::Response;

    let remote = || {
        PluginConfig::new(
            "r",
            PluginKind::Remote(RemoteConfig::new(RemoteAddress::Tcp {
                host: "localhost".into(),
                port: 1,
            })),
        )
    };
    let companion = |f: fn(&mut CompanionConfig)| {
        let mut c = CompanionConfig::new("/bin/true");
        f(&mut c);
        PluginConfig::new("c", PluginKind::Companion(c))
    };
    let check = |plugins: Vec<PluginConfig>| {
        Config {
            plugins,
            ..Config::default()
        }
        .validate()
        .map_err(|e| e.to_string())
    };

    assert_eq!(check(vec![]), Ok(()));
    assert_eq!(check(vec![remote(), companion(|_| {})]), Ok(()));
    assert_eq!(
        check(vec![remote(), remote()]),
        Err("plugin \"r\" is configured twice, at plugins[0] and at plugins[1]; plugin names must be unique".into())
    );
    let mut p = remote();
    p.name = "a/b".into();
    assert_eq!(
        check(vec![p]),
        Err("plugin at plugins[0]: name: \"a/b\" is not a usable plugin name: it contains `/`; the name is also the binary's file name, so put directories in companion.path".into())
    );
    let mut p = remote();
    p.call_timeout = Duration::ZERO;
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": call-timeout: 0s is out of range (greater than zero)".into())
    );
    let mut p = remote();
    p.drain_timeout = MAX_DURATION + Duration::from_nanos(1);
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": drain-timeout: 8760h1ns is longer than the limit of 8760h (365 days); use a shorter duration".into())
    );
    let mut p = remote();
    p.health.failure_threshold = 0;
    assert_eq!(
        check(vec![p]),
        Err(
            "plugin \"r\": health.failure-threshold must be an integer from 1 to 4294967295, got 0"
                .into()
        )
    );
    let mut p = remote();
    p.call.max_concurrent = NonZeroUsize::new(100_000).expect("non-zero");
    assert_eq!(
        check(vec![p]),
        Err(
            "plugin \"r\": max-concurrent-calls must be an integer from 1 to 65536, got 100000"
                .into()
        )
    );
    let mut p = remote();
    p.call.max_queued = 65_537;
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": max-queued-calls must be an integer from 0 to 65536, got 65537".into())
    );
    let mut p = remote();
    p.call.fallback = Some(Fallback {
        type_name: "proto.Nope".into(),
        response: Response::default(),
    });
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": fallback.type: \"proto.Nope\" is not a protobuf message type this host knows; write a full name, one of proto.Request, proto.Response, proto.RateLimitPluginRequest, proto.RateLimitPluginResponse".into())
    );
    let mut p = remote();
    p.call.fallback = Some(Fallback {
        type_name: "proto.RateLimitPluginResponse".into(),
        response: Response::default(),
    });
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": fallback: the packed reply is not a proto.RateLimitPluginResponse: the response has no reply".into())
    );
    let mut p = remote();
    p.call.fallback = Some(Fallback {
        type_name: "proto.RateLimitPluginResponse".into(),
        response: Response {
            reply: Some(prost_types::Any {
                type_url: "type.googleapis.com/proto.Request".into(),
                value: vec![],
            }),
        },
    });
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": fallback: the packed reply is not a proto.RateLimitPluginResponse: its type URL is \"type.googleapis.com/proto.Request\"; it must be \"type.googleapis.com/proto.RateLimitPluginResponse\"".into())
    );
    let mut p = remote();
    p.call.fallback = Some(Fallback {
        type_name: "proto.RateLimitPluginResponse".into(),
        response: Response {
            reply: Some(prost_types::Any {
                type_url: "type.googleapis.com/proto.RateLimitPluginResponse".into(),
                value: vec![0xff],
            }),
        },
    });
    let err = check(vec![p]).expect_err("undecodable");
    assert!(
        err.starts_with("plugin \"r\": fallback: the packed reply is not a proto.RateLimitPluginResponse: its bytes do not decode: "),
        "{err}"
    );
    let mut p = remote();
    if let PluginKind::Remote(r) = &mut p.kind {
        r.address = RemoteAddress::Tcp {
            host: "localhost".into(),
            port: 0,
        };
    }
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": remote.address: \"localhost:0\" is not an address: port \"0\" is not a number in 1..=65535".into())
    );
    let mut p = remote();
    if let PluginKind::Remote(r) = &mut p.kind {
        r.keepalive = Some(Duration::ZERO);
    }
    assert_eq!(
        check(vec![p]),
        Err(
            "plugin \"r\": remote.keepalive: 0s is out of range (greater than zero, or off)".into()
        )
    );
    let mut p = remote();
    if let PluginKind::Remote(r) = &mut p.kind {
        r.backoff.jitter = f64::NAN;
    }
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": remote.backoff.jitter: NaN is out of range (0 <= jitter < 1)".into())
    );
    let mut p = remote();
    if let PluginKind::Remote(r) = &mut p.kind {
        r.backoff.initial = Duration::from_secs(10);
    }
    assert_eq!(
        check(vec![p]),
        Err("plugin \"r\": remote.backoff: initial (10s) is greater than max (5s); raise max or lower initial".into())
    );
    assert_eq!(
        check(vec![companion(|c| c.restart.backoff.factor = 0.5)]),
        Err(
            "plugin \"c\": companion.restart.backoff.factor: 0.5 is out of range (1 or more)"
                .into()
        )
    );
    assert_eq!(
        check(vec![companion(|c| c.env = vec![("PLUGIN_MULTIPLEX_GRPC".into(), "1".into())])]),
        Err("plugin \"c\": companion.env: variable \"PLUGIN_MULTIPLEX_GRPC\" asks a go-plugin (1.6 or later) plugin for gRPC broker multiplexing, which this host does not speak: the plugin would expect a multiplexed connection; remove it".into())
    );
    assert_eq!(
        check(vec![companion(
            |c| c.env = vec![("A".into(), "1".into()), ("A".into(), "2".into())]
        )]),
        Err("plugin \"c\": companion.env: variable \"A\" is set twice; keep one".into())
    );
    assert_eq!(
        check(vec![companion(|c| c.args = vec!["a\0b".into()])]),
        Err("plugin \"c\": companion.args[0]: contains a NUL character, which a process argument cannot hold".into())
    );
    assert_eq!(
        check(vec![companion(|c| c.cpu = CpuConfig::Cpus(vec![]))]),
        Err("plugin \"c\": companion.cpus is empty; list CPU numbers, like [0, 1], or use max-procs instead".into())
    );
    assert_eq!(
        check(vec![companion(|c| c.cpu = CpuConfig::Cpus(vec![0, 1024]))]),
        Err("plugin \"c\": companion.cpus[1] must be an integer from 0 to 1023, got 1024".into())
    );
    assert_eq!(
        check(vec![companion(|c| c.cpu = CpuConfig::MaxProcs(
            NonZeroUsize::new(1025).expect("non-zero")
        ))]),
        Err("plugin \"c\": companion.max-procs must be an integer from 0 to 1024, got 1025".into())
    );
    assert_eq!(
        check(vec![companion(|c| c.restart.window = Duration::ZERO)]),
        Err(
            "plugin \"c\": companion.restart.window: 0s is out of range (greater than zero)".into()
        )
    );
}

#[test]
fn sha256_must_be_64_hex_digits() {
    let hint =
        "write the 64 hex digits that `sha256sum BINARY` or `polaris-plugin check CONFIG` prints";
    assert_eq!(
        error(&companion_with("sha256: abc123")),
        format!(
            "plugin \"a\": companion.sha256 at line 6 column 15: \"abc123\" is not a SHA-256 digest: it has 6 characters, not 64; {hint}"
        )
    );
    let bad = format!("{}z", "0".repeat(63));
    assert_eq!(
        error(&companion_with(&format!("sha256: {bad}"))),
        format!(
            "plugin \"a\": companion.sha256 at line 6 column 15: \"{bad}\" is not a SHA-256 digest: character 64 ('z') is not a hex digit; {hint}"
        )
    );
    assert_eq!(
        error(&companion_with("sha256: [a]")),
        "plugin \"a\": companion.sha256 at line 6 column 15: invalid type: sequence, expected a string"
    );
    // The Polaris form: the same message, without a position.
    assert_eq!(
        error(
            "plugin:\n  s: { option: { name: a, mode: companion, companion: { path: plugins/p, sha256: 12 } } }\n"
        ),
        format!(
            "plugin \"a\": option.companion.sha256: \"12\" is not a SHA-256 digest: it has 2 characters, not 64; {hint}"
        )
    );
}

#[test]
fn watch_is_a_boolean() {
    assert_eq!(
        error(&companion_with("watch: yes")),
        "plugin \"a\": companion.watch at line 6 column 14: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn env_inherit_takes_all_none_or_names_the_host_does_not_set() {
    let load = |value: &str| {
        let yaml = format!(
            "plugins:\n  - name: a\n    mode: companion\n    companion:\n      path: /bin/sh\n      env-inherit: {value}\n"
        );
        crate::config::Config::from_yaml_str(&yaml, std::path::Path::new("/"))
            .map(|c| match &c.plugins[0].kind {
                crate::config::PluginKind::Companion(c) => c.env_inherit.clone(),
                _ => unreachable!(),
            })
            .map_err(|e| e.to_string())
    };
    use crate::config::EnvInherit;
    assert_eq!(load("all"), Ok(EnvInherit::All));
    assert_eq!(load("none"), Ok(EnvInherit::None));
    assert_eq!(
        load("[PATH, HOME]"),
        Ok(EnvInherit::Only(vec!["PATH".into(), "HOME".into()]))
    );
    assert_eq!(load("[]"), Ok(EnvInherit::Only(vec![])));
    for (value, says) in [
        (
            "some",
            "\"some\" is not valid here; expected one of all, none, a list of variable names",
        ),
        (
            "[PLUGIN_X]",
            "variable \"PLUGIN_X\" is set by the host itself",
        ),
        (
            "[POLARIS_PLUGIN]",
            "variable \"POLARIS_PLUGIN\" is set by the host itself",
        ),
        ("[PATH, PATH]", "variable \"PATH\" is listed twice"),
        ("[\"A=B\"]", "contains `=`"),
        (
            "{ a: 1 }",
            "expected all, none, or a list of variable names such as [PATH, HOME], got a mapping",
        ),
        ("true", "got a boolean"),
    ] {
        let e = load(value).unwrap_err();
        assert!(
            e.contains("companion.env-inherit") && e.contains(says),
            "{value}: {e}"
        );
    }
}

#[test]
fn remote_tls_settings_are_checked_with_the_plugin_and_the_key() {
    // An https:// address turns TLS on; without a CA (and without insecure-skip-verify) it
    // cannot verify anything.
    let e = error(&remote_with("{ address: 'https://h:1' }"));
    assert!(e.contains("remote.tls.ca-file is required"), "{e}");
    assert!(e.contains("\"r\""), "{e}");
    let e = error(&remote_with(
        "{ address: 'h:1', tls: { insecure-skip-verify: true, cert-file: c.pem } }",
    ));
    assert!(e.contains("remote.tls.key-file is required"), "{e}");
    assert!(e.contains("set both or neither"), "{e}");
    let e = error(&remote_with(
        "{ address: 'tls://h:1', tls: { ca-file: ca.pem } }",
    ));
    assert!(
        e.contains("remote.tls.ca-file: cannot read $DIR/ca.pem"),
        "{e}"
    );
    let dir = TempDir::new();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").expect("write");
    let e = load_in(
        dir.path(),
        &remote_with("{ address: 'h:1', tls: { ca-file: ca.pem } }"),
    )
    .expect_err("not PEM")
    .to_string();
    assert!(
        e.contains("remote.tls.ca-file") && e.contains("no PEM CERTIFICATE block"),
        "{e}"
    );
    let e = error(&remote_with(
        "{ address: 'h:1', tls: { insecure-skip-verify: true, server-name: 'a b' } }",
    ));
    assert!(
        e.contains("remote.tls.server-name") && e.contains("not a DNS name"),
        "{e}"
    );
}

#[test]
fn remote_tls_files_are_relative_to_the_config_and_https_turns_tls_on() {
    use crate::config::{PluginKind, RemoteAddress};
    let dir = TempDir::new();
    let ca = rcgen::CertificateParams::new(vec!["ca".to_owned()])
        .expect("params")
        .self_signed(&rcgen::KeyPair::generate().expect("key"))
        .expect("cert");
    std::fs::create_dir_all(dir.path().join("tls")).expect("mkdir");
    std::fs::write(dir.path().join("tls/ca.pem"), ca.pem()).expect("write");
    let config = load_in(
        dir.path(),
        &remote_with("{ address: 'https://localhost:8443', tls: { ca-file: tls/ca.pem } }"),
    )
    .expect("valid");
    let PluginKind::Remote(remote) = &config.get("r").expect("r").kind else {
        panic!("remote");
    };
    assert_eq!(
        remote.address,
        RemoteAddress::Tcp {
            host: "localhost".into(),
            port: 8443
        }
    );
    let tls = remote.tls.as_ref().expect("TLS on");
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(dir.path().join("tls/ca.pem").as_path())
    );
    assert!(!tls.insecure_skip_verify);
    // A plain address without a tls section stays plaintext.
    let config = load_in(dir.path(), &remote_with("{ address: 'localhost:8443' }")).expect("valid");
    assert_eq!(
        config.get("r").expect("r").remote().expect("remote").tls,
        None
    );
}

#[test]
fn limits_are_sizes_and_counts_in_range() {
    let load = |value: &str| {
        let yaml = format!(
            "plugins:\n  - name: a\n    mode: companion\n    companion:\n      path: /bin/sh\n      limits: {value}\n"
        );
        crate::config::Config::from_yaml_str(&yaml, std::path::Path::new("/"))
            .map(|c| match &c.plugins[0].kind {
                crate::config::PluginKind::Companion(c) => c.limits,
                _ => unreachable!(),
            })
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        load("{ memory: 1GiB }").map(|l| l.memory),
        Ok(Some(1 << 30))
    );
    for (value, says) in [
        (
            "{ memory: 256 }",
            "companion.limits.memory: \"256\" is not a size",
        ),
        ("{ memory: 1MiB }", "below 16MiB"),
        (
            "{ open-files: 2 }",
            "companion.limits.open-files must be an integer from 8",
        ),
        (
            "{ processes: 0 }",
            "companion.limits.processes must be an integer from 1",
        ),
        ("{ cpu: 1 }", "unknown key companion.limits.cpu"),
    ] {
        let e = load(value).unwrap_err();
        assert!(e.contains(says), "{value}: {e}");
    }
}
