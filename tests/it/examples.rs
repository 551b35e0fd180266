//! The README's main job, `examples/run-host.sh`, and `examples/host.yaml`
//! work with any cargo target directory (checked without a release build).

use std::{path::Path, process::Command};

use crate::support::bin;

/// `run-host.sh --print-paths` with `env`: its `bin_dir=` line.
fn script_bin_dir(env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/run-host.sh");
    let mut cmd = Command::new(script);
    cmd.arg("--print-paths").env_remove("PROFILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("bin_dir="))
        .unwrap_or_else(|| panic!("no bin_dir in {stdout:?}"))
        .to_owned()
}

#[test]
fn run_host_finds_the_binaries_wherever_cargo_builds() {
    let elsewhere = std::env::temp_dir().join("polaris-it-elsewhere");
    let elsewhere = elsewhere.to_str().unwrap();
    assert_eq!(
        script_bin_dir(&[("CARGO_TARGET_DIR", elsewhere)]),
        format!("{elsewhere}/release")
    );
    // This test's own build: the script points where its binaries are.
    let built = bin("polaris-plugin");
    assert_eq!(
        script_bin_dir(&[("PROFILE", "dev")]),
        built.parent().unwrap().to_str().unwrap()
    );
}

#[test]
fn host_yaml_finds_its_companion_next_to_the_host() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/host.yaml");
    let out = Command::new(bin("polaris-plugin"))
        .arg("check")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for companion in ["rate-limit-server-v2", "rate-limit-typed"] {
        let beside = bin(companion);
        assert!(stdout.contains(beside.to_str().unwrap()), "{stdout}");
    }
}
