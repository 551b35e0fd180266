//! Sizes in bytes as written in the config: `256MiB`, `1.5GiB`, `512KiB`, `4096B`.
//!
//! Binary units only (a `MB` would be ambiguous), and always a unit: a bare `256` is an
//! error that suggests `256MiB`.

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SizeError(String);

const UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

/// Reads a size such as `256MiB` or `1.5GiB` into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let decimal_unit = ["KB", "MB", "GB", "TB", "kB", "mb", "gb", "K", "M", "G", "T"]
        .iter()
        .any(|u| t.ends_with(u));
    if decimal_unit {
        return Err(SizeError(format!(
            "{text:?} is not a size here: binary units only: KiB, MiB, GiB, TiB (or B)"
        )));
    }
    let Some((number, scale)) = UNITS
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n.trim(), *scale)))
    else {
        let hint = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            format!("; write a unit, such as {t}MiB")
        } else if t.ends_with("MB")
            || t.ends_with("GB")
            || t.ends_with("KB")
            || t.ends_with('M')
            || t.ends_with('G')
        {
            "; binary units only: KiB, MiB, GiB, TiB".to_owned()
        } else {
            String::new()
        };
        return Err(SizeError(format!(
            "{text:?} is not a size (a number and a unit: B, KiB, MiB, GiB or TiB){hint}"
        )));
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0 && !number.starts_with('+'))
        .ok_or_else(|| {
            SizeError(format!(
                "{text:?} is not a size: {number:?} is not a number"
            ))
        })?;
    let bytes = value * scale as f64;
    if bytes >= u64::MAX as f64 {
        return Err(SizeError(format!("{text:?} is too large")));
    }
    Ok(bytes as u64)
}

/// A size for people: the largest unit that keeps it whole, else bytes.
pub fn format_size(bytes: u64) -> String {
    UNITS
        .iter()
        .find(|(_, scale)| bytes >= *scale && bytes.is_multiple_of(*scale))
        .map_or_else(
            || format!("{bytes}B"),
            |(unit, scale)| format!("{}{unit}", bytes / scale),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_read_with_binary_units_only() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 4096 B "), Ok(4096));
        assert_eq!(parse_size("0B"), Ok(0));
        for (bad, says) in [
            ("256", "write a unit, such as 256MiB"),
            ("256MB", "binary units only"),
            ("MiB", "is not a number"),
            ("-1MiB", "is not a number"),
            ("lots", "is not a size"),
            ("99999999TiB", "too large"),
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn formatted_sizes_read_back(bytes in 0u64..(1 << 50)) {
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn any_text_is_a_size_or_an_error(text in ".{0,20}") {
            let _ = parse_size(&text);
        }
    }
}
