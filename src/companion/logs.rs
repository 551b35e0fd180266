//! A plugin's stderr lines into `tracing`, under the plugin's name, with
//! hclog JSON levels mapped (go-plugin's rules, made lenient: a malformed
//! line never fails, it is logged as text). Lines without a level (plain
//! text, JSON without `@level`) are logged at INFO, not go-plugin's DEBUG:
//! they are usually why a plugin failed (a Rust panic, a Python traceback, a
//! message before exiting), and must be visible at the default filter.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Level;

/// Per-plugin forwarding state.
#[derive(Debug, Default)]
pub(crate) struct StderrForwarder {
    /// After a Go `panic: ` or `fatal error: ` line, plain lines are errors
    /// (the stack trace that follows).
    panicking: AtomicBool,
}

/// One parsed line: its level, message and extra `key=value` fields.
#[derive(Debug, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) level: Level,
    pub(crate) message: String,
    pub(crate) fields: String,
}

impl StderrForwarder {
    /// A new run starts: a previous run's panic no longer colours its lines.
    pub(crate) fn new_run(&self) {
        self.panicking.store(false, Ordering::Relaxed);
    }

    pub(crate) fn forward(&self, plugin: &str, line: &str) {
        let Parsed {
            level,
            message,
            fields,
        } = self.parse(line);
        macro_rules! emit {
            ($lvl:expr) => {
                if fields.is_empty() {
                    tracing::event!(target: "plugin", $lvl, plugin, "{message}")
                } else {
                    tracing::event!(target: "plugin", $lvl, plugin, "{message} {fields}")
                }
            };
        }
        match level {
            Level::TRACE => emit!(Level::TRACE),
            Level::DEBUG => emit!(Level::DEBUG),
            Level::INFO => emit!(Level::INFO),
            Level::WARN => emit!(Level::WARN),
            Level::ERROR => emit!(Level::ERROR),
        }
    }

    pub(crate) fn parse(&self, line: &str) -> Parsed {
        let trimmed = line.trim_end();
        if trimmed.starts_with('{')
            && let Some(parsed) = parse_hclog_json(trimmed)
        {
            return parsed;
        }
        if trimmed.starts_with("panic: ") || trimmed.starts_with("fatal error: ") {
            self.panicking.store(true, Ordering::Relaxed);
        }
        let (level, message) = plain_level(trimmed);
        let level = level.unwrap_or(if self.panicking.load(Ordering::Relaxed) {
            Level::ERROR
        } else {
            Level::INFO
        });
        Parsed {
            level,
            message: message.to_owned(),
            fields: String::new(),
        }
    }
}

fn level_named(name: &str) -> Option<Level> {
    Some(match name.to_ascii_lowercase().as_str() {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "info" => Level::INFO,
        "warn" | "warning" => Level::WARN,
        "error" => Level::ERROR,
        _ => return None,
    })
}

/// hclog JSON: `@level`, `@message`, `@timestamp`, other keys as fields. A
/// line without a known level is logged verbatim at INFO, like plain text.
fn parse_hclog_json(line: &str) -> Option<Parsed> {
    let serde_json::Value::Object(map) = serde_json::from_str(line).ok()? else {
        return None;
    };
    let level = map
        .get("@level")
        .and_then(|l| l.as_str())
        .and_then(level_named);
    let Some(level) = level else {
        return Some(Parsed {
            level: Level::INFO,
            message: line.to_owned(),
            fields: String::new(),
        });
    };
    let message = match map.get("@message") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut fields = String::new();
    for (k, v) in &map {
        if matches!(k.as_str(), "@level" | "@message" | "@timestamp") {
            continue;
        }
        if !fields.is_empty() {
            fields.push(' ');
        }
        fields.push_str(k);
        fields.push('=');
        match v {
            serde_json::Value::String(s) => fields.push_str(s),
            other => fields.push_str(&other.to_string()),
        }
    }
    Some(Parsed {
        level,
        message,
        fields,
    })
}

/// go-plugin's plain-text prefixes: `[TRACE]`, `[DEBUG]`, `[INFO]`, `[WARN]`, `[ERROR]`.
fn plain_level(line: &str) -> (Option<Level>, &str) {
    for (prefix, level) in [
        ("[TRACE]", Level::TRACE),
        ("[DEBUG]", Level::DEBUG),
        ("[INFO]", Level::INFO),
        ("[WARN]", Level::WARN),
        ("[ERROR]", Level::ERROR),
    ] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return (Some(level), rest.trim_start());
        }
    }
    (None, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Vec<(Level, String, String)> {
        let f = StderrForwarder::default();
        lines
            .iter()
            .map(|l| {
                let p = f.parse(l);
                (p.level, p.message, p.fields)
            })
            .collect()
    }

    #[test]
    fn hclog_json_levels_and_fields() {
        let got = parse(&[
            r#"{"@level":"warn","@message":"slow","@timestamp":"2026-01-02T03:04:05.000000Z","@module":"rl","n":3}"#,
            r#"{"@level":"ERROR","@message":"boom"}"#,
            r#"{"@level":"trace","@message":"t"}"#,
            // No known level: verbatim at info. Non-string message: lenient.
            r#"{"@message":"x"}"#,
            r#"{"@level":"info","@message":42}"#,
        ]);
        assert_eq!(
            got[0],
            (Level::WARN, "slow".into(), "@module=rl n=3".into())
        );
        assert_eq!(got[1], (Level::ERROR, "boom".into(), String::new()));
        assert_eq!(got[2].0, Level::TRACE);
        assert_eq!(
            got[3],
            (Level::INFO, r#"{"@message":"x"}"#.into(), String::new())
        );
        assert_eq!(got[4], (Level::INFO, "42".into(), String::new()));
    }

    #[test]
    fn plain_text_prefixes_and_panics() {
        let got = parse(&[
            "[INFO] hello",
            "thread 'main' panicked at src/main.rs:3:5",
            "{not json",
            "panic: runtime error: index out of range",
            "goroutine 1 [running]:",
            "[WARN] still warn",
        ]);
        let levels: Vec<Level> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            levels,
            [
                Level::INFO,
                Level::INFO,
                Level::INFO,
                Level::ERROR,
                Level::ERROR,
                Level::WARN
            ]
        );
        assert_eq!(got[0].1, "hello");
    }
}
