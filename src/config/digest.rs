//! SHA-256 digests of plugin binaries ([`Sha256Digest`]): the pinned form
//! (`companion.sha256`, 64 hex digits), hashing a file, and the constant-time comparison the
//! host makes before every start.

use std::{fmt, fs::File, io, path::Path, str::FromStr};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A SHA-256 digest, as `sha256sum` prints it: 64 hex digits (either case when parsed,
/// lowercase when displayed).
///
/// `==` is an ordinary comparison (configurations are compared with it); the check before a
/// start uses [`matches`](Self::matches), which takes the same time wherever the digests
/// differ.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

/// Why a text is not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// Not 64 characters long.
    #[error("it has {0} characters, not 64")]
    Length(usize),
    /// A character that is not a hex digit, at this character position (from 1).
    #[error("character {position} ({found:?}) is not a hex digit")]
    NotHex {
        /// 1-based position.
        position: usize,
        /// The character.
        found: char,
    },
}

impl Sha256Digest {
    /// The digest with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest of everything `reader` yields.
    pub fn of_reader(mut reader: impl io::Read) -> io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&hasher.finalize());
        Ok(Self(bytes))
    }

    /// The digest of the file at `path`.
    pub fn of_file(path: &Path) -> io::Result<Self> {
        Self::of_reader(File::open(path)?)
    }

    /// Whether `self` and `other` are the same digest, in constant time (`subtle`).
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;

    /// 64 hex digits, either case, nothing around them.
    fn from_str(text: &str) -> Result<Self, DigestError> {
        let count = text.chars().count();
        if let Some((i, found)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            // A wrong length is the likelier mistake when the text is short or long, a stray
            // character when it has the right length.
            if count == 64 {
                return Err(DigestError::NotHex {
                    position: i + 1,
                    found,
                });
            }
        }
        if count != 64 {
            return Err(DigestError::Length(count));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            *byte = (hex(pair[0]) << 4) | hex(pair[1]);
        }
        Ok(Self(bytes))
    }
}

/// The value of an ASCII hex digit (checked by the caller).
fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `sha256sum` of the empty input and of `abc` (FIPS 180-2's example).
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_digests() {
        assert_eq!(
            Sha256Digest::of_reader(&b""[..]).unwrap().to_string(),
            EMPTY
        );
        assert_eq!(
            Sha256Digest::of_reader(&b"abc"[..]).unwrap().to_string(),
            ABC
        );
        // Longer than one read buffer.
        let long = vec![7u8; 200_000];
        let mut hasher = Sha256::new();
        hasher.update(&long);
        assert_eq!(
            Sha256Digest::of_reader(&long[..]).unwrap().as_bytes()[..],
            hasher.finalize()[..]
        );
    }

    #[test]
    fn parsing_says_what_is_wrong() {
        let abc: Sha256Digest = ABC.parse().unwrap();
        assert_eq!(ABC.to_uppercase().parse::<Sha256Digest>(), Ok(abc));
        assert_eq!("abc".parse::<Sha256Digest>(), Err(DigestError::Length(3)));
        assert_eq!(
            format!(" {ABC}").parse::<Sha256Digest>(),
            Err(DigestError::Length(65))
        );
        let bad = format!("{}g{}", &ABC[..10], &ABC[11..]);
        assert_eq!(
            bad.parse::<Sha256Digest>(),
            Err(DigestError::NotHex {
                position: 11,
                found: 'g'
            })
        );
        assert_eq!(
            DigestError::NotHex {
                position: 11,
                found: 'g'
            }
            .to_string(),
            "character 11 ('g') is not a hex digit"
        );
    }

    #[test]
    fn matches_compares_every_byte() {
        let a: Sha256Digest = ABC.parse().unwrap();
        assert!(a.matches(&a));
        for i in 0..32 {
            let mut bytes = *a.as_bytes();
            bytes[i] ^= 1;
            assert!(!a.matches(&Sha256Digest::from_bytes(bytes)), "byte {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Display and FromStr round-trip, and `matches` agrees with `==`.
        #[test]
        fn round_trip(bytes in any::<[u8; 32]>(), other in any::<[u8; 32]>(), upper in any::<bool>()) {
            let d = Sha256Digest::from_bytes(bytes);
            let text = if upper { d.to_string().to_uppercase() } else { d.to_string() };
            prop_assert_eq!(text.parse::<Sha256Digest>(), Ok(d));
            let o = Sha256Digest::from_bytes(other);
            prop_assert_eq!(d.matches(&o), d == o);
        }

        /// Arbitrary text parses only when it is 64 hex digits, and never panics.
        #[test]
        fn arbitrary_text(text in ".{0,80}") {
            let ok = text.chars().count() == 64 && text.chars().all(|c| c.is_ascii_hexdigit());
            prop_assert_eq!(text.parse::<Sha256Digest>().is_ok(), ok);
        }
    }
}
