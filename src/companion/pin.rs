//! Pinned binaries: before every start of a companion with `companion.sha256`, the binary is
//! opened, hashed from that open file and compared in constant time; the supervisor then
//! executes that same open file (see `supervisor::Hooks::before_spawn`), so a binary
//! replaced between the check and the exec is not what runs.

use std::{fs::File, path::Path};

use crate::config::Sha256Digest;

/// The binary at `path`, opened and checked against `pin`; or why it must not run.
pub(crate) fn open_checked(path: &Path, pin: &Sha256Digest) -> Result<File, String> {
    let unreadable = |e: std::io::Error| {
        format!(
            "binary {} cannot be read to check it against companion.sha256: {e}; not started",
            path.display()
        )
    };
    let file = File::open(path).map_err(unreadable)?;
    let actual = Sha256Digest::of_reader(&file).map_err(unreadable)?;
    if !actual.matches(pin) {
        return Err(mismatch(path, &actual, pin));
    }
    Ok(file)
}

/// The message for a binary whose digest is not the pinned one.
pub(crate) fn mismatch(path: &Path, actual: &Sha256Digest, pin: &Sha256Digest) -> String {
    format!(
        "binary {} has sha256 {actual} but companion.sha256 pins {pin}; not started",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_opens_only_with_its_own_digest() {
        let dir = std::env::temp_dir().join(format!("polaris-pin-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bin");
        std::fs::write(&path, b"abc").unwrap();
        let abc: Sha256Digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            .parse()
            .unwrap();
        assert!(open_checked(&path, &abc).is_ok());
        let other = Sha256Digest::from_bytes([0; 32]);
        let err = open_checked(&path, &other).unwrap_err();
        assert_eq!(
            err,
            format!(
                "binary {} has sha256 {abc} but companion.sha256 pins {other}; not started",
                path.display()
            )
        );
        let err = open_checked(&dir.join("missing"), &abc).unwrap_err();
        assert!(
            err.contains("cannot be read") && err.contains("not started"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
