//! Compiles the examples' own proto (`proto/rate_limiter.proto`, package `api`) with
//! protox (no `protoc` needed) and tonic-prost-build, and writes its encoded
//! `FileDescriptorSet` for the plugin's gRPC reflection: what any plugin with its own
//! proto does (docs/writing-plugins.md, "Your own proto").

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["rate_limiter.proto"], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("api_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
