//! `--proto` and `--descriptor-set`: descriptors for methods a plugin serves but does not
//! describe, merged into one encoded `FileDescriptorSet`.

use std::path::{Path, PathBuf};

use polaris_plugin::{prost::Message as _, prost_types::FileDescriptorSet};

use crate::Result;

/// The files given, as one encoded set; `None` when none were given. `.proto` files are
/// compiled with protox (their imports found in `import_paths`, else their directory).
pub(crate) fn load(
    protos: &[PathBuf],
    import_paths: &[PathBuf],
    sets: &[PathBuf],
) -> Result<Option<Vec<u8>>> {
    if protos.is_empty() && sets.is_empty() {
        return Ok(None);
    }
    let mut merged = FileDescriptorSet::default();
    for path in sets {
        let bytes =
            std::fs::read(path).map_err(|e| format!("--descriptor-set {}: {e}", path.display()))?;
        let set = FileDescriptorSet::decode(bytes.as_slice()).map_err(|e| {
            format!(
                "--descriptor-set {}: not an encoded FileDescriptorSet ({e}); write one with protoc -o FILE --include_imports",
                path.display()
            )
        })?;
        merged.file.extend(set.file);
    }
    if !protos.is_empty() {
        let includes: Vec<PathBuf> = if import_paths.is_empty() {
            let mut dirs: Vec<PathBuf> = protos
                .iter()
                .map(|p| {
                    p.parent()
                        .map_or_else(|| PathBuf::from("."), Path::to_owned)
                })
                .map(|d| {
                    if d.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        d
                    }
                })
                .collect();
            dirs.dedup();
            dirs
        } else {
            import_paths.to_vec()
        };
        let files: Vec<&Path> = protos.iter().map(PathBuf::as_path).collect();
        let set = protox::compile(files, includes).map_err(|e| format!("--proto: {e}"))?;
        merged.file.extend(set.file);
    }
    // The same file from two sources once.
    let mut seen = std::collections::HashSet::new();
    merged.file.retain(|f| seen.insert(f.name().to_owned()));
    Ok(Some(merged.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proto_file_compiles_and_a_bad_set_is_named() {
        let dir = std::env::temp_dir().join(format!("polaris-cli-desc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let proto = dir.join("auth.proto");
        std::fs::write(
            &proto,
            "syntax = \"proto3\"; package auth; message A { string who = 1; } service Auth { rpc Check(A) returns (A); }",
        )
        .unwrap();
        let set = load(std::slice::from_ref(&proto), &[], &[])
            .unwrap()
            .unwrap();
        let set = FileDescriptorSet::decode(set.as_slice()).unwrap();
        assert_eq!(set.file[0].package(), "auth");
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, b"\xff\xff").unwrap();
        let err = load(&[], &[], &[bad]).unwrap_err().to_string();
        assert!(
            err.contains("bad.bin") && err.contains("FileDescriptorSet"),
            "{err}"
        );
        assert!(load(&[], &[], &[]).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
