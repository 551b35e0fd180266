//! Pinned binaries (`companion.sha256`) with real processes: a match starts, a mismatch is
//! `Failed` without an exec (first start, restart after a crash, upgrade).

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use polaris_plugin::{
    PluginHandle, PluginState, Registry,
    config::{Config, Sha256Digest},
    proto::polaris::{RateLimitPluginRequest, RatelimitType},
};

use crate::support::{self, pid_gone, scratch_dir};

const WAIT: Duration = Duration::from_secs(20);

/// A copy of `source` put at `path` by rename; `salt` trailing bytes make it a different
/// file.
pub(crate) fn deploy(source: &Path, path: &Path, salt: usize) {
    let mut bytes = std::fs::read(source).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, salt));
    install(path, &bytes, 0o755);
}

/// `bytes` put at `path` by rename, with `mode`.
pub(crate) fn install(path: &Path, bytes: &[u8], mode: u32) {
    let staging = path.with_extension("staging");
    std::fs::write(&staging, bytes).unwrap();
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// A script that leaves `marker` when it runs, then becomes the fixture plugin.
pub(crate) fn marking_script(marker: &Path) -> Vec<u8> {
    format!(
        "#!/bin/sh\ntouch {}\nexec {} \"$@\"\n",
        marker.display(),
        support::bin("fixture-plugin").display()
    )
    .into_bytes()
}

fn digest(path: &Path) -> Sha256Digest {
    Sha256Digest::of_file(path).unwrap()
}

/// A registry with one companion `pin` running `binary`, with `extra` companion lines.
pub(crate) fn pinned_registry(dir: &Path, binary: &Path, extra: &str) -> (Registry, PluginHandle) {
    let yaml = support::companion_yaml("pin", binary, &[], extra);
    let config = Config::from_yaml_str(&yaml, dir).unwrap();
    let registry = Registry::from_config(config).unwrap();
    let plugin = registry.get("pin").unwrap();
    (registry, plugin)
}

pub(crate) async fn call(plugin: &PluginHandle) -> Result<(), polaris_plugin::Error> {
    plugin
        .call_typed(&RateLimitPluginRequest {
            r#type: RatelimitType::ApiRatelimit as i32,
            key: "k".into(),
        })
        .await
        .map(|_: polaris_plugin::proto::polaris::RateLimitPluginResponse| ())
}

/// Waits (bounded) for `Failed` and returns its reason's text.
async fn failed(plugin: &PluginHandle) -> String {
    let mut watch = plugin.watch();
    let state = tokio::time::timeout(
        WAIT,
        watch.wait_for(|s| matches!(s, PluginState::Failed { .. })),
    )
    .await
    .unwrap_or_else(|_| panic!("not Failed: {:?}", plugin.status().state))
    .unwrap();
    let PluginState::Failed { reason } = state else {
        unreachable!()
    };
    reason.to_string()
}

fn mismatch(path: &Path, actual: &Sha256Digest, pin: &Sha256Digest) -> String {
    format!(
        "binary {} has sha256 {actual} but companion.sha256 pins {pin}; not started",
        path.display()
    )
}

#[tokio::test]
async fn a_pinned_binary_starts_and_a_mismatch_is_never_executed() {
    let dir = scratch_dir("pin");
    let binary: PathBuf = dir.join("plugin");
    deploy(&support::bin("fixture-plugin"), &binary, 0);
    let pin = digest(&binary);
    let (registry, plugin) = pinned_registry(&dir, &binary, &format!("      sha256: {pin}\n"));
    plugin.wait_ready(WAIT).await.unwrap();
    call(&plugin).await.unwrap();
    registry.destroy().await;

    // A binary that is not the pinned one: it would leave a marker if it ran.
    let marker = dir.join("ran");
    install(&binary, &marking_script(&marker), 0o755);
    let actual = digest(&binary);
    let (registry, plugin) = pinned_registry(&dir, &binary, &format!("      sha256: {pin}\n"));
    let reason = failed(&plugin).await;
    assert_eq!(reason, mismatch(&binary, &actual, &pin));
    assert!(plugin.status().pid.is_none());
    // Calls fail at once, saying why.
    let err = call(&plugin).await.unwrap_err().to_string();
    assert!(err.contains("companion.sha256 pins"), "{err}");
    registry.destroy().await;
    assert!(!marker.exists(), "the mismatching binary was executed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pinned plugin serving, and then its binary replaced by a marking script.
struct Swapped {
    dir: PathBuf,
    binary: PathBuf,
    pin: Sha256Digest,
    /// The replacement's digest.
    actual: Sha256Digest,
    /// Left by the replacement if it ever runs.
    marker: PathBuf,
    registry: Registry,
    plugin: PluginHandle,
    /// The serving process.
    pid: u32,
}

async fn serving_then_swapped(tag: &str) -> Swapped {
    let dir = scratch_dir(tag);
    let binary = dir.join("plugin");
    deploy(&support::bin("fixture-plugin"), &binary, 0);
    let pin = digest(&binary);
    let (registry, plugin) = pinned_registry(&dir, &binary, &format!("      sha256: {pin}\n"));
    plugin.wait_ready(WAIT).await.unwrap();
    let pid = plugin.status().pid.unwrap();
    let marker = dir.join("ran");
    install(&binary, &marking_script(&marker), 0o755);
    let actual = digest(&binary);
    Swapped {
        dir,
        binary,
        pin,
        actual,
        marker,
        registry,
        plugin,
        pid,
    }
}

#[tokio::test]
async fn a_restart_after_a_crash_checks_the_binary_again() {
    // The binary is replaced, then the process crashes: the restart must not run the new file.
    let Swapped {
        dir,
        binary,
        pin,
        actual,
        marker,
        registry,
        plugin,
        pid,
    } = serving_then_swapped("pin-restart").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let reason = failed(&plugin).await;
    assert!(
        reason.starts_with(&mismatch(&binary, &actual, &pin)),
        "{reason}"
    );
    assert!(reason.contains("last run killed by SIGKILL"), "{reason}");
    assert!(pid_gone(pid));
    assert!(!marker.exists(), "the restart executed the replaced binary");
    registry.destroy().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_upgrade_to_a_mismatching_binary_fails_and_the_old_process_serves_on() {
    let Swapped {
        dir,
        binary,
        pin,
        actual,
        marker,
        registry,
        plugin,
        pid,
    } = serving_then_swapped("pin-upgrade").await;
    let err = plugin.upgrade().await.unwrap_err().to_string();
    assert!(err.contains(&mismatch(&binary, &actual, &pin)), "{err}");
    assert!(err.contains("goes on serving"), "{err}");
    call(&plugin).await.unwrap();
    let status = plugin.status();
    assert_eq!(status.pid, Some(pid));
    assert_eq!(status.upgrades.failed, 1);
    assert!(status.others.is_empty(), "{:?}", status.others);
    assert!(!marker.exists(), "the mismatching binary was executed");

    // The pinned binary back in place: the upgrade goes through.
    deploy(&support::bin("fixture-plugin"), &binary, 0);
    plugin.upgrade().await.unwrap();
    assert_ne!(plugin.status().pid, Some(pid));
    registry.destroy().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
