//! Generates the gRPC/protobuf code from `proto/` with protox (a pure-Rust
//! protobuf compiler), so no `protoc` is needed on the machine. The encoded
//! descriptor set is also written out for prost-reflect (JSON <-> protobuf).

use std::{env, ffi::OsString, path::PathBuf, process::Command};

#[path = "build/interop.rs"]
mod interop;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    interop_cfgs();
    let files = [
        "plugin.proto",
        "rate_limit.proto",
        "go-plugin/grpc_controller.proto",
        "go-plugin/grpc_broker.proto",
        "go-plugin/grpc_stdio.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("polaris_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let mut config = prost_build::Config::new();
    // `impl prost::Name` for every message: full names and the
    // `type.googleapis.com/proto.X` type URLs the Go SDK uses.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        .compile_well_known_types(false)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}

/// `cfg(interop_go)` and `cfg(interop_python)` when the toolchains the interop
/// tests need are here: without them those tests are ignored, with a reason
/// that names `.ci/install-interop`, instead of failing. With
/// `POLARIS_PLUGIN_REQUIRE_INTEROP=1` (`.ci/run`) they always run, and fail
/// when a toolchain is missing. `POLARIS_PLUGIN_INTEROP_GO` and
/// `POLARIS_PLUGIN_INTEROP_PYTHON` name the commands checked (default `go`,
/// `python3`).
fn interop_cfgs() {
    for var in [
        "PATH",
        "POLARIS_PLUGIN_REQUIRE_INTEROP",
        "POLARIS_PLUGIN_INTEROP_GO",
        "POLARIS_PLUGIN_INTEROP_PYTHON",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // Installing a toolchain later runs this again: apt rewrites dpkg's
    // status file, pip adds to Python's site-packages.
    let python = env::var_os("POLARIS_PLUGIN_INTEROP_PYTHON").unwrap_or_else(|| "python3".into());
    let site = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    for watched in [Some(PathBuf::from("/var/lib/dpkg/status")), site]
        .into_iter()
        .flatten()
        .filter(|p| p.exists())
    {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let required = env::var_os("POLARIS_PLUGIN_REQUIRE_INTEROP").is_some_and(|v| v == "1");
    let go: OsString = env::var_os("POLARIS_PLUGIN_INTEROP_GO").unwrap_or_else(|| "go".into());
    for (cfg, missing) in [
        ("interop_go", interop::go_missing(&go)),
        ("interop_python", interop::python_missing(&python)),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        match missing {
            None => println!("cargo:rustc-cfg={cfg}"),
            Some(why) if required => {
                println!(
                    "cargo:warning={why}; the interop tests will fail (POLARIS_PLUGIN_REQUIRE_INTEROP=1): run .ci/install-interop"
                );
                println!("cargo:rustc-cfg={cfg}");
            }
            Some(why) => println!(
                "cargo:warning={why}: those interop tests are ignored; .ci/install-interop installs what they need"
            ),
        }
    }
}
