//! Durations as written in the config: `500ms`, `5s`, `2m`, `1h`, `1m30s`, `250us`.
//!
//! The grammar is Go's `time.ParseDuration` without signs: one or more `<number><unit>` pairs,
//! where the number may have a fraction (`1.5s`) and the unit is one of `h`, `m`, `s`, `ms`,
//! `us` (or `µs`), `ns`. A bare number, even `0`, is rejected: the unit is never implied.
//! Nothing longer than [`MAX_DURATION`] is accepted, so a parsed duration can always be added
//! to an `Instant`.

use std::time::Duration;

/// Why a duration could not be parsed. The [`Display`](std::fmt::Display) text says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is empty.
    #[error("it is empty; write a number with a unit, like 5s or 500ms")]
    Empty,
    /// A number without a unit, like `5`.
    #[error("{number} has no unit; add one, like {number}s or {number}ms (units: {UNITS})")]
    MissingUnit {
        /// The number that lacks a unit.
        number: String,
    },
    /// A unit that is not one of `h`, `m`, `s`, `ms`, `us`, `ns`.
    #[error("{unit:?} is not a unit; use one of {UNITS}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// A leading `-`.
    #[error("it is negative; durations are zero or more, like 0s or 500ms")]
    Negative,
    /// Something that is not a number where a number was expected.
    #[error("expected a number at {rest:?}; durations look like 500ms, 5s, 2m or 1m30s")]
    Malformed {
        /// The text from the point where parsing failed.
        rest: String,
    },
    /// Longer than [`MAX_DURATION`] (or too long to represent at all).
    #[error(
        "it is longer than the limit of {} (365 days)",
        format_duration(MAX_DURATION)
    )]
    TooLong,
}

/// The longest duration accepted anywhere in the config: 365 days (`8760h`).
///
/// Every timeout, interval and backoff is at most this, so deadlines computed from them
/// (`Instant::now() + d`) cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The units, for messages.
const UNITS: &str = "h, m, s, ms, us, ns";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Nanoseconds per unit, or `None` for an unknown unit.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "h" => 3600 * NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "s" => NANOS_PER_SEC,
        "ms" => 1_000_000,
        "us" | "µs" | "μs" => 1_000,
        "ns" => 1,
        _ => return None,
    })
}

fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || c == '.'
}

/// Parses a duration such as `500ms`, `5s`, `1m30s` or `1.5h`. Surrounding whitespace is ignored.
/// The result is at most [`MAX_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use polaris_plugin::config::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("5").is_err()); // a unit is required
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest.find(|c| !is_number_char(c)).unwrap_or(rest.len());
        let number = &rest[..number_end];
        let unit_end = rest[number_end..]
            .find(is_number_char)
            .map_or(rest.len(), |i| number_end + i);
        let unit = &rest[number_end..unit_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Malformed { rest: rest.into() });
        }
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                number: number.into(),
            });
        }
        let per_unit =
            unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit { unit: unit.into() })?;
        total = total
            .checked_add(scaled(number, per_unit)?)
            .ok_or(DurationError::TooLong)?;
        rest = &rest[unit_end..];
    }
    if total > MAX_DURATION.as_nanos() {
        return Err(DurationError::TooLong);
    }
    // Below MAX_DURATION, so the seconds fit a u64; the remainder is below 10^9.
    let secs = (total / NANOS_PER_SEC) as u64;
    let nanos = (total % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, nanos))
}

/// `number` (digits with at most one `.`) times `per_unit` nanoseconds, rounded down.
fn scaled(number: &str, per_unit: u128) -> Result<u128, DurationError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| DurationError::TooLong)?
    };
    let mut nanos = whole.checked_mul(per_unit).ok_or(DurationError::TooLong)?;
    // Digits past the 18th cannot change the result by a nanosecond for any unit up to an hour.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| DurationError::TooLong)?;
        let scale = 10u128.pow(fraction.len() as u32);
        nanos = nanos
            .checked_add(digits * per_unit / scale)
            .ok_or(DurationError::TooLong)?;
    }
    Ok(nanos)
}

/// Formats a duration in the syntax [`parse_duration`] reads, e.g. `1m30s`, `500ms`, `0s`.
///
/// ```
/// use std::time::Duration;
/// use polaris_plugin::config::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30s500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let secs = duration.as_secs();
    let sub = duration.subsec_nanos();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(sub / 1_000_000), "ms"),
        (u64::from(sub / 1_000 % 1_000), "us"),
        (u64::from(sub % 1_000), "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("5s"), Ok(ms(5_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_compound_fractional_and_padded() {
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0.001ms"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_duration("  5s \n"), Ok(ms(5_000)));
    }

    #[test]
    fn a_bare_number_needs_a_unit() {
        let err = parse_duration("5").unwrap_err();
        assert_eq!(err, DurationError::MissingUnit { number: "5".into() });
        assert_eq!(
            err.to_string(),
            "5 has no unit; add one, like 5s or 5ms (units: h, m, s, ms, us, ns)"
        );
        assert!(matches!(
            parse_duration("0"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(
            matches!(parse_duration("1m30"), Err(DurationError::MissingUnit { number }) if &*number == "30")
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("   "), Err(DurationError::Empty));
        assert_eq!(parse_duration("-5s"), Err(DurationError::Negative));
        assert_eq!(
            parse_duration("5 s"),
            Err(DurationError::UnknownUnit { unit: " s".into() })
        );
        assert_eq!(
            parse_duration("5sec"),
            Err(DurationError::UnknownUnit { unit: "sec".into() })
        );
        assert_eq!(
            parse_duration("5S").unwrap_err().to_string(),
            "\"S\" is not a unit; use one of h, m, s, ms, us, ns"
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::Malformed { rest: "s".into() })
        );
        assert_eq!(
            parse_duration("1..5s"),
            Err(DurationError::Malformed {
                rest: "1..5s".into()
            })
        );
        assert_eq!(
            parse_duration("5s."),
            Err(DurationError::Malformed { rest: ".".into() })
        );
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("999999999999999999999999999999999999999999s"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("3000000000000000h").unwrap_err().to_string(),
            "it is longer than the limit of 8760h (365 days)"
        );
    }

    #[test]
    fn the_limit_is_accepted_and_a_nanosecond_more_is_not() {
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("365h8395h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("8760h1ns"), Err(DurationError::TooLong));
        assert_eq!(format_duration(MAX_DURATION), "8760h");
    }

    #[test]
    fn formats_in_the_parsed_syntax() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(3_600_000)), "1h");
        assert_eq!(format_duration(Duration::from_micros(250)), "250us");
        assert_eq!(format_duration(Duration::from_nanos(1_000_001)), "1ms1ns");
        for d in [
            ms(1),
            ms(1_500),
            ms(3_723_004),
            Duration::from_nanos(123_456_789_012),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn format_then_parse_is_the_identity(nanos in 0..=MAX_DURATION.as_nanos() as u64) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics_and_stays_under_the_cap(text in any::<String>()) {
            if let Ok(d) = parse_duration(&text) {
                prop_assert!(d <= MAX_DURATION);
            }
        }

        #[test]
        fn duration_like_text_stays_under_the_cap(text in "[0-9.]{0,25}(h|m|s|ms|us|µs|ns|x)?([0-9.]{0,25}(h|m|s|ms|us|ns))?") {
            if let Ok(d) = parse_duration(&text) {
                prop_assert!(d <= MAX_DURATION);
            }
        }
    }
}
