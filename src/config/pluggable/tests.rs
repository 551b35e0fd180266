//! The `pluggable:` section: defaults, the folder, the settings, and errors naming the key
//! and line.

use std::{path::Path, time::Duration};

use crate::config::{
    Config, ConfigError, DEFAULT_PLUGGABLE_FOLDER, Delivery, PluggableConfig, PluginKind,
    RemoteAddress,
};

fn load(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(yaml, Path::new("/etc/polaris"))
}

fn err(yaml: &str) -> String {
    load(yaml).expect_err("should be refused").to_string()
}

#[test]
fn the_section_is_optional_and_empty_means_defaults() {
    assert_eq!(load("plugins: []\n").unwrap().pluggable, None);
    for yaml in [
        "pluggable:\n",
        "pluggable: {}\n",
        "plugin: {}\npluggable: {}\n",
    ] {
        let p = load(yaml).unwrap().pluggable.expect(yaml);
        // The test process does not set the variable, so the default folder.
        if std::env::var_os(crate::config::PLUGGABLE_FOLDER_ENV).is_none() {
            assert_eq!(p.folder, Path::new(DEFAULT_PLUGGABLE_FOLDER), "{yaml}");
        }
        assert_eq!(p.settings, PluggableConfig::new("/x").settings, "{yaml}");
    }
}

#[test]
fn the_folder_is_relative_to_the_config_and_settings_apply_to_each_socket() {
    let yaml = "\
pluggable:
  folder: sockets
  call-timeout: 2s
  health: { interval: 250ms, failure-threshold: 2 }
  remote: { connect-timeout: 300ms, backoff: { initial: 50ms, max: 1s } }
  retry: at-least-once
  max-concurrent-calls: 8
";
    let p = load(yaml).unwrap().pluggable.unwrap();
    assert_eq!(p.folder, Path::new("/etc/polaris/sockets"));
    let plugin = p.plugin_at("auth", Path::new("/etc/polaris/sockets/auth.sock"));
    assert_eq!(plugin.name, "auth");
    assert_eq!(plugin.call_timeout, Duration::from_secs(2));
    assert_eq!(plugin.health.interval, Duration::from_millis(250));
    assert_eq!(plugin.health.failure_threshold, 2);
    assert_eq!(plugin.call.delivery, Delivery::AtLeastOnce);
    assert_eq!(plugin.call.max_concurrent.get(), 8);
    let PluginKind::Remote(remote) = &plugin.kind else {
        panic!("{plugin:?}")
    };
    assert_eq!(
        remote.address,
        RemoteAddress::Unix("/etc/polaris/sockets/auth.sock".into())
    );
    assert_eq!(remote.connect_timeout, Duration::from_millis(300));
    assert_eq!(remote.backoff.initial, Duration::from_millis(50));
    assert_eq!(remote.tls, None);
    // What a hand-built configuration is held to.
    let config = load(yaml).unwrap();
    config.validate().unwrap();
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_the_keys_there_are() {
    let e = err("plugins: []\npluggable:\n  folder: /s\n  fodler: /t\n");
    assert!(
        e.starts_with("pluggable.fodler at line 4") && e.contains("did you mean folder?"),
        "{e}"
    );
    let e = err("pluggable:\n  remote:\n    address: unix:/x\n");
    assert!(
        e.starts_with("pluggable.remote.address at line 3")
            && e.contains("connect-timeout, keepalive, connections, backoff"),
        "{e}"
    );
    let e = err("pluggable:\n  health: { intervall: 1s }\n");
    assert!(
        e.starts_with("pluggable.health.intervall at line 2")
            && e.contains("did you mean interval?"),
        "{e}"
    );
    // Keys of a plugin entry that make no sense here are unknown too.
    let e = err("pluggable:\n  fallback: { type: x }\n");
    assert!(e.starts_with("pluggable.fallback at line 2"), "{e}");
    let e = err("pluggable: [a]\n");
    assert!(e.starts_with("pluggable at line 1"), "{e}");
    let e = err("pluggable:\n  folder: [a, b]\n");
    assert!(e.starts_with("pluggable.folder at line 2"), "{e}");
}

#[test]
fn bad_values_are_named_like_a_plugin_entry_s() {
    let e = err("pluggable:\n  call-timeout: soon\n");
    assert!(
        e.starts_with("pluggable section: pluggable.call-timeout: \"soon\""),
        "{e}"
    );
    let e = err("pluggable:\n  health: { failure-threshold: 0 }\n");
    assert!(
        e.starts_with("pluggable section: pluggable.health.failure-threshold"),
        "{e}"
    );
    let e = err("pluggable:\n  remote: { backoff: { initial: 2s, max: 1s } }\n");
    assert!(e.contains("pluggable.remote.backoff"), "{e}");
    let e = err("pluggable:\n  folder: ''\n");
    assert!(
        e.starts_with("pluggable.folder: the folder is empty"),
        "{e}"
    );
    let hand_built = Config {
        pluggable: Some(PluggableConfig::new("")),
        ..Config::default()
    };
    let e = hand_built.validate().unwrap_err().to_string();
    assert!(e.starts_with("pluggable.folder"), "{e}");
}

#[test]
fn a_plugin_entry_cannot_be_pluggable_and_a_near_miss_of_the_section_is_caught() {
    let e = err("plugins:\n  - name: a\n    mode: pluggable\n");
    assert!(
        e.contains("mode: pluggable plugins are not listed") && e.contains("pluggable: section"),
        "{e}"
    );
    let e = err("plugin:\n  auth:\n    option: { name: a, mode: pluggable }\n");
    assert!(e.contains("option.mode: pluggable plugins"), "{e}");
    let e = err("plugable:\n  folder: /s\n");
    assert!(e.contains("pluggable"), "{e}");
}
