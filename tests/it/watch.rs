//! The binary watch (`companion.watch: true`) with real processes: a replacement by rename
//! upgrades the plugin under a steady caller; a file that is not executable, still being
//! written, or failing its pin is not started. Waits are on outcomes (events, counters),
//! bounded; the only pause is the writer's own, between the two halves of a file.

use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path, time::Duration};

use polaris_plugin::{PluginHandle, Registry, config::Sha256Digest, events::EventKind};

use crate::{
    pin::{call, deploy, install, pinned_registry},
    support::{self, eventually_async, pid_gone, scratch_dir},
};

const WAIT: Duration = Duration::from_secs(30);

/// Waits (bounded) until the plugin has done `n` upgrades.
async fn upgrades_done(plugin: &PluginHandle, n: u64) {
    eventually_async(WAIT, &format!("{n} upgrade(s)"), || {
        plugin.status().upgrades.done >= n
    })
    .await;
}

/// Waits (bounded) for a `binary_ignored` event whose reason contains `says`.
async fn ignored(registry: &Registry, says: &str) -> String {
    let mut found = None;
    eventually_async(
        WAIT,
        &format!("a binary_ignored event saying {says:?}"),
        || {
            found = registry
                .events()
                .recent()
                .into_iter()
                .filter(|e| e.kind == EventKind::BinaryIgnored)
                .filter_map(|e| e.reason)
                .find(|r| r.contains(says));
            found.is_some()
        },
    )
    .await;
    found.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_watched_binary_by_rename_upgrades_it_without_a_failed_call() {
    let dir = scratch_dir("watch");
    let binary = dir.join("plugin");
    let fixture = support::bin("fixture-plugin");
    deploy(&fixture, &binary, 0);
    let (registry, plugin) = pinned_registry(&dir, &binary, "      watch: true\n");
    plugin.wait_ready(WAIT).await.unwrap();
    let old = plugin.status().pid.unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let caller = {
        let (plugin, stop) = (plugin.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            while !stop.is_cancelled() {
                match call(&plugin).await {
                    Ok(()) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };

    deploy(&fixture, &binary, 1);
    upgrades_done(&plugin, 1).await;
    let status = plugin.status();
    let new = status.pid.unwrap();
    assert_ne!(new, old);
    assert_eq!(status.upgrades.failed, 0);
    eventually_async(WAIT, "the old process to be gone", || pid_gone(old)).await;
    // Calls go on on the new process.
    call(&plugin).await.unwrap();
    stop.cancel();
    let (ok, failed) = caller.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} calls failed: {failed:?}",
        failed.len()
    );
    assert!(ok > 0);
    registry.destroy().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `bytes` as a new file at `path` (the old one unlinked: it may be running) in two
/// halves with a pause between them, shorter than the watch's settle time.
fn write_in_two_steps(path: &Path, bytes: &[u8]) {
    std::fs::remove_file(path).unwrap();
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)
        .unwrap();
    let (first, second) = bytes.split_at(bytes.len() / 2);
    file.write_all(first).unwrap();
    file.flush().unwrap();
    // The writer's pause (not a synchronisation): the debouncer must wait it out.
    std::thread::sleep(Duration::from_millis(300));
    file.write_all(second).unwrap();
}

#[tokio::test]
async fn a_watched_binary_not_executable_or_half_written_is_not_started() {
    let dir = scratch_dir("watch-bad");
    let binary = dir.join("plugin");
    let fixture = support::bin("fixture-plugin");
    deploy(&fixture, &binary, 0);
    let (registry, plugin) = pinned_registry(&dir, &binary, "      watch: true\n");
    plugin.wait_ready(WAIT).await.unwrap();
    let pid = plugin.status().pid.unwrap();

    // Not executable: ignored, saying so; made executable: upgraded.
    let mut bytes = std::fs::read(&fixture).unwrap();
    bytes.push(1);
    install(&binary, &bytes, 0o644);
    let why = ignored(&registry, "is not executable").await;
    assert_eq!(
        why,
        format!("binary {} is not executable (mode 644)", binary.display())
    );
    assert_eq!(plugin.status().pid, Some(pid));
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    upgrades_done(&plugin, 1).await;
    let second = plugin.status().pid.unwrap();
    assert_ne!(second, pid);

    // Written in two steps: only the whole file is started (a half one would fail to).
    bytes.push(2);
    let (path, whole) = (binary.clone(), bytes.clone());
    // On a blocking thread: the host's tasks run on this test's runtime meanwhile.
    tokio::task::spawn_blocking(move || write_in_two_steps(&path, &whole))
        .await
        .unwrap();
    upgrades_done(&plugin, 2).await;
    let status = plugin.status();
    assert_ne!(status.pid, Some(second));
    assert_eq!(
        status.upgrades.failed, 0,
        "a file that was not fit was started: {:?}",
        status.upgrades.last
    );
    call(&plugin).await.unwrap();
    registry.destroy().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_watched_binary_failing_its_pin_is_not_started() {
    let dir = scratch_dir("watch-pin");
    let binary = dir.join("plugin");
    let fixture = support::bin("fixture-plugin");
    deploy(&fixture, &binary, 0);
    let pin = Sha256Digest::of_file(&binary).unwrap();
    let (registry, plugin) = pinned_registry(
        &dir,
        &binary,
        &format!("      watch: true\n      sha256: {pin}\n"),
    );
    plugin.wait_ready(WAIT).await.unwrap();
    let pid = plugin.status().pid.unwrap();

    deploy(&fixture, &binary, 1);
    let other = Sha256Digest::of_file(&binary).unwrap();
    let why = ignored(&registry, "companion.sha256 pins").await;
    assert_eq!(
        why,
        format!(
            "binary {} has sha256 {other} but companion.sha256 pins {pin}; not started",
            binary.display()
        )
    );
    assert_eq!(plugin.status().pid, Some(pid));

    // The pinned build deployed again: that one is started.
    deploy(&fixture, &binary, 0);
    upgrades_done(&plugin, 1).await;
    let status = plugin.status();
    assert_ne!(status.pid, Some(pid));
    assert_eq!(status.upgrades.failed, 0, "{:?}", status.upgrades.last);
    registry.destroy().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
