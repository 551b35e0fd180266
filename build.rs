//! Generates the gRPC/protobuf code from `proto/` with protox (a pure-Rust
//! protobuf compiler), so no `protoc` is needed on the machine. The encoded
//! descriptor set is also written out for prost-reflect (JSON <-> protobuf).

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
