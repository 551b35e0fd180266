//! Which interop toolchains this machine has: shared by `build.rs` (which
//! turns the interop tests on with `cfg(interop_go)` / `cfg(interop_python)`,
//! or leaves them ignored) and the interop tests.

use std::{
    ffi::OsStr,
    path::Path,
    process::{Command, Stdio},
};

/// Debian's go-plugin sources, which the Go peers build against offline.
pub(crate) const GO_PLUGIN_SRC: &str = "/usr/share/gocode/src/github.com/hashicorp/go-plugin";

/// The Python modules the Python plugin needs, and the Prometheus project's parser the
/// metrics test checks `/metrics` with.
pub(crate) const PY_CHECK: &str = "import grpc, grpc_health.v1.health, grpc_tools.protoc, grpc_reflection.v1alpha.reflection, prometheus_client.parser";

/// Why the Go peers cannot be built with `go` here, or `None` if they can.
pub(crate) fn go_missing(go: &OsStr) -> Option<String> {
    if !succeeds(Command::new(go).arg("version")) {
        return Some(format!("`{} version` does not run", go.display()));
    }
    if !Path::new(GO_PLUGIN_SRC).is_dir() {
        return Some(format!("no go-plugin sources at {GO_PLUGIN_SRC}"));
    }
    None
}

/// Why the Python plugin cannot run with `python` here, or `None` if it can.
pub(crate) fn python_missing(python: &OsStr) -> Option<String> {
    if !succeeds(Command::new(python).args(["-c", PY_CHECK])) {
        return Some(format!(
            "`{}` cannot import grpc, grpc_health, grpc_tools, grpc_reflection and prometheus_client",
            python.display()
        ));
    }
    None
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
