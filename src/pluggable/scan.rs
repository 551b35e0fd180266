//! Looking at the folder: which unix sockets are in it, each with its identity, so that a
//! replaced socket (a new file under the same name) is told from the same one.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs, io,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _},
    path::Path,
};

/// A socket file's identity: device and inode, and its change time (a socket bound anew
/// at a recycled inode still changes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The unix sockets in the folder by file name. Symbolic links are not followed (a link
/// to a socket elsewhere is not one of the folder's), and nothing else counts: regular
/// files, directories and FIFOs are left alone.
pub(crate) fn sockets(folder: &Path) -> io::Result<BTreeMap<OsString, Stamp>> {
    let mut found = BTreeMap::new();
    for entry in fs::read_dir(folder)? {
        let entry = entry?;
        // The entry may be gone already: skip it, the next look will not see it either.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.file_type().is_socket() {
            found.insert(entry.file_name(), Stamp::of(&meta));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::{ffi::OsStr, os::unix::net::UnixListener};

    use super::*;

    #[test]
    fn only_sockets_count_and_a_replaced_one_has_a_new_stamp() {
        let dir = std::env::temp_dir().join(format!("polaris-scan-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("file.sock"), "not a socket").unwrap();
        let _a = UnixListener::bind(dir.join("a.sock")).unwrap();
        let b = UnixListener::bind(dir.join("b.sock")).unwrap();
        std::os::unix::fs::symlink(dir.join("a.sock"), dir.join("link.sock")).unwrap();
        let first = sockets(&dir).unwrap();
        assert_eq!(
            first.keys().cloned().collect::<Vec<_>>(),
            [OsString::from("a.sock"), OsString::from("b.sock")]
        );
        drop(b);
        fs::remove_file(dir.join("b.sock")).unwrap();
        let _b = UnixListener::bind(dir.join("b.sock")).unwrap();
        let second = sockets(&dir).unwrap();
        let (a, b) = (OsStr::new("a.sock"), OsStr::new("b.sock"));
        assert_eq!(first[a], second[a]);
        assert_ne!(first[b], second[b]);
        let missing = sockets(&dir.join("nope")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        fs::remove_dir_all(&dir).unwrap();
    }
}
