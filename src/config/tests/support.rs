//! Temporary directories with fake plugin binaries, and loading with a fixed context.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::config::{Config, ConfigError, load, validate::Context};

/// A directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("polaris-config-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Creates `rel` (and its parents) with the given permission bits.
    pub(super) fn file(&self, rel: &str, mode: u32) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().expect("has parent")).expect("create parent");
        fs::write(&path, "#!/bin/sh\nexit 0\n").expect("write file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// An executable at `rel`.
    pub(super) fn exe(&self, rel: &str) -> PathBuf {
        self.file(rel, 0o755)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A context with `base` as the config's directory, `exe_dir` as the host executable's, and
/// CPUs 0 and 1 available.
pub(super) fn context(base: &Path, exe_dir: Option<&Path>) -> Context {
    Context {
        base_dir: base.to_owned(),
        exe_dir: exe_dir.map(Path::to_path_buf),
        allowed_cpus: Some(vec![0, 1]),
        check_files: true,
    }
}

/// Loads `yaml` as if it were a file in `base`.
pub(super) fn load_in(base: &Path, yaml: &str) -> Result<Config, ConfigError> {
    load(yaml, None, context(base, None))
}

/// The error message of loading `yaml` in a directory holding an executable `plugins/p`
/// (so companion entries with `path: plugins/p` are valid).
pub(super) fn error(yaml: &str) -> String {
    let dir = TempDir::new();
    dir.exe("plugins/p");
    match load_in(dir.path(), yaml) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(e) => e
            .to_string()
            .replace(&dir.path().display().to_string(), "$DIR"),
    }
}
