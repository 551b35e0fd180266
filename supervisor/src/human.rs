//! Durations for people: `1.5s`, `230ms`, `2m5s`, rounded to what a reader
//! uses, in logs and error messages (`Debug` prints `1.234567891s`).

use std::{fmt, time::Duration};

/// Displays a duration rounded for reading: below a second in milliseconds
/// (microseconds below one), below a minute in seconds with at most three
/// decimals, above that in minutes and whole seconds (hours and minutes from
/// an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if secs >= 3600 {
            let m = (secs % 3600) / 60;
            return match m {
                0 => write!(f, "{}h", secs / 3600),
                m => write!(f, "{}h{m}m", secs / 3600),
            };
        }
        if secs >= 60 {
            return match secs % 60 {
                0 => write!(f, "{}m", secs / 60),
                s => write!(f, "{}m{s}s", secs / 60),
            };
        }
        let (value, unit) = if secs >= 1 {
            (d.as_secs_f64(), "s")
        } else if d >= Duration::from_millis(1) {
            (d.as_secs_f64() * 1e3, "ms")
        } else {
            (d.as_secs_f64() * 1e6, "µs")
        };
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{text}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_for_reading() {
        let cases = [
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_nanos(5_001_134_576), "5.001s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(230), "230ms"),
            (Duration::from_micros(1250), "1.25ms"),
            (Duration::from_nanos(1_734_598), "1.735ms"),
            (Duration::from_nanos(800), "0.8µs"),
            (Duration::ZERO, "0µs"),
            (Duration::from_secs(125), "2m5s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600 + 120 + 7), "1h2m"),
            (Duration::from_secs(7200), "2h"),
        ];
        for (d, want) in cases {
            assert_eq!(HumanDuration(d).to_string(), want, "{d:?}");
        }
    }
}
