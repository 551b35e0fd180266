use std::{
    os::unix::{
        fs::{PermissionsExt as _, symlink},
        net::UnixListener,
    },
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::*;

/// A directory for one test under the temp dir, removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("rdt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TestDir(path)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// The per-uid parent host directories are made in.
    fn uid_parent(&self) -> PathBuf {
        self.join(&format!("{UID_DIR_PREFIX}{}", geteuid()))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn host(base: &TestDir) -> Arc<HostDir> {
    Arc::new(HostDir::create_in(&base.0).unwrap())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn entries(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_level_is_private() {
    let base = TestDir::new("modes");
    let host = host(&base);
    let plugin = host.plugin_dir("rate-limit").unwrap();
    assert_eq!(host.path().parent(), Some(base.uid_parent().as_path()));
    assert_eq!(plugin.path().parent(), Some(host.path()));
    for dir in [base.uid_parent().as_path(), host.path(), plugin.path()] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&host.path().join(LOCK_FILE)), 0o600);
}

#[test]
fn a_loose_parent_of_ours_is_made_private() {
    let base = TestDir::new("loose");
    std::fs::create_dir(base.uid_parent()).unwrap();
    std::fs::set_permissions(base.uid_parent(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let _host = host(&base);
    assert_eq!(mode(&base.uid_parent()), 0o700);
}

#[test]
fn a_symlinked_parent_is_refused() {
    let base = TestDir::new("symparent");
    let elsewhere = base.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, base.uid_parent()).unwrap();
    let e = HostDir::create_in(&base.0).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("is a symlink"), "{e}");
    assert!(entries(&elsewhere).is_empty());
}

#[test]
fn a_parent_owned_by_another_user_is_refused() {
    if !geteuid().is_root() {
        eprintln!("skipped: needs root to give a directory to another user");
        return;
    }
    let base = TestDir::new("otheruid");
    std::fs::create_dir(base.uid_parent()).unwrap();
    nix::unistd::chown(&base.uid_parent(), Some(Uid::from_raw(65534)), None).unwrap();
    let e = HostDir::create_in(&base.0).unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

#[test]
fn plugin_dirs_have_short_unique_names() {
    let base = TestDir::new("names");
    let host = host(&base);
    let long = "a/very ../long plugin name that would not fit in a socket path at all";
    let a = host.plugin_dir(long).unwrap();
    let b = host.plugin_dir(long).unwrap();
    let c = host.plugin_dir("../..").unwrap();
    assert_ne!(a.path(), b.path());
    assert_eq!(a.path().file_name().unwrap(), "1-averylon");
    assert_eq!(b.path().file_name().unwrap(), "2-averylon");
    assert_eq!(c.path().file_name().unwrap(), "3");
    assert_eq!(c.path().parent(), Some(host.path()));
}

#[test]
fn env_names_the_dir_for_sockets_and_temp_files() {
    let base = TestDir::new("env");
    let plugin = host(&base).plugin_dir("p").unwrap();
    let dir = OsString::from(plugin.path());
    assert_eq!(
        plugin.env(),
        [
            ("PLUGIN_UNIX_SOCKET_DIR".into(), dir.clone()),
            ("TMPDIR".into(), dir)
        ]
    );
}

#[test]
fn clear_removes_everything_inside_but_follows_no_symlink() {
    let base = TestDir::new("clear");
    let victim = base.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    let plugin = host(&base).plugin_dir("p").unwrap();
    let dir = plugin.path();
    // A Go plugin's socket, the SDK's directory and socket, temp files, nesting.
    let _go = UnixListener::bind(dir.join("plugin123456789")).unwrap();
    std::fs::create_dir(dir.join("polaris-plugin-AbCdEf")).unwrap();
    let _sdk = UnixListener::bind(dir.join("polaris-plugin-AbCdEf/plugin.sock")).unwrap();
    std::fs::create_dir_all(dir.join("a/b/c")).unwrap();
    std::fs::write(dir.join("a/b/c/tmp"), "x").unwrap();
    std::fs::write(dir.join("tmp123"), "x").unwrap();
    // A read-only directory still goes (its owner may unlink inside after all).
    std::fs::set_permissions(dir.join("a/b"), std::fs::Permissions::from_mode(0o500)).unwrap();
    // Symlinks planted inside, to a directory and a file outside.
    symlink(&victim, dir.join("link")).unwrap();
    symlink(victim.join("keep.txt"), dir.join("a/filelink")).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    plugin.clear().unwrap();

    assert!(entries(dir).is_empty(), "{:?}", entries(dir));
    assert_eq!(mode(dir), 0o700);
    assert_eq!(entries(&victim), ["keep.txt"]);
    assert_eq!(
        std::fs::read_to_string(victim.join("keep.txt")).unwrap(),
        "keep"
    );
}

#[test]
fn clear_recreates_a_dir_the_plugin_removed_or_replaced() {
    let base = TestDir::new("recreate");
    let victim = base.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    let plugin = host(&base).plugin_dir("p").unwrap();

    std::fs::remove_dir(plugin.path()).unwrap();
    plugin.clear().unwrap();
    assert_eq!(mode(plugin.path()), 0o700);

    std::fs::remove_dir(plugin.path()).unwrap();
    symlink(&victim, plugin.path()).unwrap();
    plugin.clear().unwrap();
    assert!(std::fs::symlink_metadata(plugin.path()).unwrap().is_dir());
    assert_eq!(mode(plugin.path()), 0o700);
    assert_eq!(entries(&victim), ["keep.txt"]);
}

#[test]
fn clear_leaves_what_another_user_owns() {
    if !geteuid().is_root() {
        eprintln!("skipped: needs root to give a file to another user");
        return;
    }
    let base = TestDir::new("foreign");
    let plugin = host(&base).plugin_dir("p").unwrap();
    let foreign = plugin.path().join("foreign");
    std::fs::write(&foreign, "x").unwrap();
    std::fs::write(plugin.path().join("mine"), "x").unwrap();
    nix::unistd::chown(&foreign, Some(Uid::from_raw(65534)), None).unwrap();
    let e = plugin.clear().unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    assert_eq!(entries(plugin.path()), ["foreign"]);
}

#[test]
fn owns_only_paths_inside_by_their_real_parent() {
    let base = TestDir::new("owns");
    let outside = base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let host = host(&base);
    let plugin = host.plugin_dir("p").unwrap();
    let other = host.plugin_dir("q").unwrap();
    let dir = plugin.path();
    std::fs::create_dir(dir.join("polaris-plugin-AbCdEf")).unwrap();
    symlink(&outside, dir.join("link")).unwrap();
    let alias = base.join("alias");
    symlink(dir, &alias).unwrap();

    // Inside, whether the file exists or not, directly or one level down.
    assert!(plugin.owns(&dir.join("plugin123456789")));
    assert!(plugin.owns(&dir.join("polaris-plugin-AbCdEf/plugin.sock")));
    // Reached through a symlink to the directory: the file is still inside.
    assert!(plugin.owns(&alias.join("plugin.sock")));

    // The directory itself, its parent, a sibling, elsewhere.
    assert!(!plugin.owns(dir));
    assert!(!plugin.owns(&host.path().join("lock")));
    assert!(!plugin.owns(&other.path().join("plugin.sock")));
    assert!(!plugin.owns(&outside.join("server.sock")));
    assert!(!plugin.owns(Path::new("/run/other-server.sock")));
    // `..`, even when it would resolve back inside.
    assert!(!plugin.owns(&dir.join("../q/plugin.sock")));
    assert!(!plugin.owns(&dir.join("a/../plugin.sock")));
    // A symlink inside pointing outside.
    assert!(!plugin.owns(&dir.join("link/server.sock")));
    // A string prefix is not a parent: `<dir>x/…`.
    let sibling = PathBuf::from(format!("{}x", dir.display()));
    std::fs::create_dir(&sibling).unwrap();
    assert!(!plugin.owns(&sibling.join("plugin.sock")));
    // Relative paths and a parent that does not exist.
    assert!(!plugin.owns(Path::new("plugin.sock")));
    assert!(!plugin.owns(&dir.join("missing/plugin.sock")));
}

#[test]
fn drop_removes_the_plugin_dir_and_the_last_one_the_host_dir() {
    let base = TestDir::new("drop");
    let host = host(&base);
    let host_path = host.path().to_path_buf();
    let plugin = host.plugin_dir("p").unwrap();
    let plugin_path = plugin.path().to_path_buf();
    drop(host);
    std::fs::write(plugin_path.join("tmp"), "x").unwrap();
    let _sock = UnixListener::bind(plugin_path.join("plugin.sock")).unwrap();
    drop(plugin);
    assert!(!plugin_path.exists());
    assert!(!host_path.exists());
    assert_eq!(entries(&base.uid_parent()), [PARENT_LOCK]);
}

#[test]
fn shared_is_one_dir_per_process_while_in_use() {
    let a = HostDir::shared().unwrap();
    let b = HostDir::shared().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(a.path().is_dir());
}

/// A directory in the per-uid parent that looks like a host's, with its
/// lock file and something inside.
fn fake_host_dir(base: &TestDir, name: &str, with_lock: bool) -> PathBuf {
    let dir = base.uid_parent().join(name);
    std::fs::create_dir_all(dir.join("1-p/polaris-plugin-AbCdEf")).unwrap();
    std::fs::write(dir.join("1-p/plugin123456789"), "").unwrap();
    if with_lock {
        std::fs::write(dir.join(LOCK_FILE), "").unwrap();
    }
    dir
}

#[test]
fn sweep_removes_dead_hosts_dirs_and_leaves_live_ones() {
    let base = TestDir::new("sweep");
    let first = host(&base);
    let dead = fake_host_dir(&base, "dead01", true);
    let half_made = fake_host_dir(&base, "half01", false);
    let live = fake_host_dir(&base, "live01", true);
    let _live_lock = tree::lock(&live.join(LOCK_FILE), false).unwrap();
    // Not a directory of ours: a symlink to elsewhere is not followed.
    let outside = base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), "").unwrap();
    symlink(&outside, base.uid_parent().join("evil01")).unwrap();

    let second = host(&base);

    assert!(!dead.exists());
    assert!(!half_made.exists());
    assert!(live.join("1-p/plugin123456789").exists());
    assert!(
        first.path().join(LOCK_FILE).exists(),
        "a live host of this process"
    );
    assert!(second.path().is_dir());
    assert_eq!(entries(&outside), ["keep.txt"]);
}

/// A child a test spawned, SIGKILLed and reaped however the test ends (a
/// leaked `sleep` would hold the test harness's output pipe open).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The whole point: a host killed with SIGKILL releases its lock, and the
/// next host removes its directory. `sh` stands in for the host: it opens
/// the lock file, `flock(1)` locks it, and `sleep` (exec'd, same process)
/// holds it until killed.
#[test]
fn a_sigkilled_hosts_dir_is_swept() {
    if Command::new("flock").arg("-V").output().is_err() {
        eprintln!("skipped: no flock(1) (util-linux)");
        return;
    }
    let base = TestDir::new("sigkill");
    let _first = host(&base);
    let dir = fake_host_dir(&base, "killed", false);
    let lock = dir.join(LOCK_FILE);
    let mut child = Reaped(
        Command::new("sh")
            .args(["-c", r#"exec 9>>"$1" && flock 9 && exec sleep 1000"#, "sh"])
            .arg(&lock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait (bounded) until the child holds the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(tree::liveness(&dir), Ok(tree::HostLiveness::Live)) {
        assert!(Instant::now() < deadline, "the child never took the lock");
        assert!(child.0.try_wait().unwrap().is_none(), "the child exited");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _second = host(&base);
    assert!(
        dir.join("1-p/plugin123456789").exists(),
        "swept a live host's dir"
    );

    child.0.kill().unwrap(); // SIGKILL, to the pid we spawned
    child.0.wait().unwrap();
    let _third = host(&base);
    assert!(!dir.exists(), "a SIGKILLed host's dir stays");
}

#[test]
fn socket_paths_must_fit() {
    let room = MAX_SOCKET_PATH - SOCKET_NAME_ROOM;
    assert!(fits_socket(Path::new(&format!("/{}", "d".repeat(room - 1)))).is_ok());
    let e = fits_socket(Path::new(&format!("/{}", "d".repeat(room)))).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("TMPDIR"), "{e}");

    // A base too long for any socket: the plugin dir is refused, not made.
    let base = TestDir::new("long");
    let long = base.join(&"l".repeat(60));
    std::fs::create_dir(&long).unwrap();
    let host = Arc::new(HostDir::create_in(&long).unwrap());
    let e = host.plugin_dir("p").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(entries(host.path()), [LOCK_FILE]);
}

#[test]
fn xdg_runtime_dir_only_when_usable() {
    let base = TestDir::new("xdg");
    let file = base.join("file");
    std::fs::write(&file, "").unwrap();
    assert_eq!(runtime_dir(None), None);
    assert_eq!(runtime_dir(Some("relative".into())), None);
    assert_eq!(runtime_dir(Some(base.join("missing").into())), None);
    assert_eq!(runtime_dir(Some(file.into())), None);
    assert_eq!(
        runtime_dir(Some(base.0.clone().into())),
        Some(base.0.clone())
    );
}
