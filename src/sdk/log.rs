//! Plugin logging: `tracing` events written to stderr as hclog JSON lines
//! (`@level`, `@message`, `@timestamp`, `@module`, plus the event's fields), the
//! shape go-plugin hosts parse, so a Go host (or ours) shows each line at its
//! level. stdout is never written: it belongs to the handshake.

use std::{fmt::Write as _, io::Write as _};

use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};
use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{EnvFilter, Layer, layer::Context, prelude::*};

/// go-plugin's timestamp layout `2006-01-02T15:04:05.000000Z07:00` in UTC:
/// exactly six fractional digits, then `Z`.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Installs the hclog JSON logger as the global `tracing` subscriber.
/// The filter comes from `POLARIS_PLUGIN_LOG` (default `info`). Does nothing
/// if a subscriber is already installed (a plugin that set up its own).
pub(crate) fn init(module: &str) {
    let filter = std::env::var(crate::protocol::env::LOG)
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let layer = HclogLayer {
        module: module.to_owned(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// A `tracing` layer that writes one hclog JSON object per event to stderr.
pub(crate) struct HclogLayer {
    module: String,
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let line = format_line(
            *event.metadata().level(),
            &self.module,
            OffsetDateTime::now_utc(),
            &fields,
        );
        // One write per line, so concurrent events never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

fn format_line(level: Level, module: &str, now: OffsetDateTime, fields: &JsonFields) -> String {
    let ts = now.format(TIMESTAMP).unwrap_or_default();
    let mut obj = serde_json::Map::new();
    obj.insert("@level".into(), level_name(level).into());
    obj.insert("@message".into(), fields.message.clone().into());
    obj.insert("@module".into(), module.into());
    obj.insert("@timestamp".into(), ts.into());
    for (k, v) in &fields.others {
        obj.insert(k.clone(), v.clone());
    }
    let mut line = serde_json::Value::Object(obj).to_string();
    line.push('\n');
    line
}

#[derive(Default)]
struct JsonFields {
    message: String,
    others: Vec<(String, serde_json::Value)>,
}

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, s.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.others.push((field.name().to_owned(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_hclog_shape() {
        let now = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let fields = JsonFields {
            message: "serving".into(),
            others: vec![
                ("addr".into(), "unix:/tmp/x".into()),
                ("n".into(), 3u64.into()),
            ],
        };
        let line = format_line(Level::WARN, "rate-limit", now, &fields);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "serving");
        assert_eq!(v["@module"], "rate-limit");
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["addr"], "unix:/tmp/x");
        assert_eq!(v["n"], 3);
    }
}
