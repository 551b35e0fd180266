//! What the command line prints: the status table, event lines, `check`'s summary.

use std::{fmt::Write as _, path::Path, process::ExitCode};

use polaris_plugin::config::{Config, CpuConfig, PluginKind, Sha256Digest, format_duration};
use serde_json::Value;

/// Prints the plugins (JSON views, as the admin API gives them) as a table or as JSON.
/// Failure when a plugin that is not disabled is not ready.
pub(crate) fn print_status(plugins: &[Value], as_json: bool) -> ExitCode {
    if as_json {
        println!("{}", serde_json::json!({ "plugins": plugins }));
    } else {
        print!("{}", status_table(plugins));
    }
    let not_ready: Vec<&str> = plugins
        .iter()
        .filter(|p| p["ready"] != Value::Bool(true) && p["state"] != "disabled")
        .filter_map(|p| p["name"].as_str())
        .collect();
    if not_ready.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("polaris-plugin: not ready: {}", not_ready.join(", "));
        ExitCode::FAILURE
    }
}

fn status_table(plugins: &[Value]) -> String {
    let header = [
        "NAME",
        "MODE",
        "STATE",
        "PID",
        "RESTARTS",
        "CALLS OK/ERR/TIMEOUT",
        "P99",
        "CPU",
        "RSS",
        "DETAIL",
    ];
    let rows: Vec<Vec<String>> = plugins.iter().map(row).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    line(&header.map(String::from));
    for r in &rows {
        line(r);
    }
    for p in plugins {
        endpoint_lines(&mut out, p);
    }
    out
}

/// A remote fleet's endpoints under the table, one line each.
fn endpoint_lines(out: &mut String, p: &Value) {
    let Some(endpoints) = p["endpoints"].as_array().filter(|e| !e.is_empty()) else {
        return;
    };
    let _ = writeln!(out, "{} endpoints:", p["name"].as_str().unwrap_or("?"));
    let width = endpoints
        .iter()
        .filter_map(|e| e["address"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0);
    for e in endpoints {
        let mut line = format!(
            "  {:<width$}  {:<11}  calls {}  in-flight {}  ejections {}",
            e["address"].as_str().unwrap_or("?"),
            e["state"].as_str().unwrap_or("?"),
            e["calls"],
            e["in_flight"],
            e["ejections"],
        );
        if let Some(until) = e["until"].as_str() {
            let _ = write!(line, "  until {until}");
        }
        if let Some(error) = e["last_error"].as_str() {
            let _ = write!(line, "  last error: {error}");
        }
        out.push_str(&line);
        out.push('\n');
    }
}

fn row(p: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let calls = &p["calls"];
    let detail = [
        (p["state_detail"] != p["state"]).then(|| text(&p["state_detail"])),
        p["last_exit"].as_str().map(|e| format!("last exit: {e}")),
        p["last_error"].as_str().map(|e| format!("last error: {e}")),
        p["services"].as_array().map(|list| {
            let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            format!("services: {}", names.join(", "))
        }),
    ];
    vec![
        text(&p["name"]),
        text(&p["mode"]),
        text(&p["state"]),
        text(&p["pid"]),
        text(&p["restarts"]),
        format!(
            "{}/{}/{}",
            text(&calls["ok"]),
            text(&calls["error"]),
            text(&calls["timeout"])
        ),
        p["latency"]["p99_ms"]
            .as_f64()
            .map_or("-".into(), |ms| format!("{ms:.2}ms")),
        p["resources"]["cpu_percent"]
            .as_f64()
            .map_or("-".into(), |c| format!("{c:.1}%")),
        p["resources"]["rss_bytes"]
            .as_u64()
            .map_or("-".into(), |b| format!("{:.1}MiB", b as f64 / 1048576.0)),
        detail.into_iter().flatten().collect::<Vec<_>>().join("; "),
    ]
}

/// One event as a line: time, plugin, what, and its details.
pub(crate) fn event_line(e: &Value) -> String {
    if e["kind"] == "missed" {
        return format!("... {} events missed (the stream fell behind)", e["missed"]);
    }
    let mut line = format!(
        "{}  {}  {}",
        e["time"].as_str().unwrap_or("?"),
        e["plugin"].as_str().unwrap_or("?"),
        e["kind"].as_str().unwrap_or("?")
    );
    for key in ["run", "pid"] {
        if let Some(v) = e[key].as_u64() {
            let _ = write!(line, "  {key}={v}");
        }
    }
    for key in ["exit", "reason"] {
        if let Some(v) = e[key].as_str() {
            let _ = write!(line, "  {v}");
        }
    }
    if let Some(until) = e["until"].as_str() {
        let _ = write!(line, "  until {until}");
    }
    line
}

/// `check`'s summary: every plugin on one line (a companion's binary digest on the next, so
/// that it can be pinned), then the admin API. `false` when a pinned binary does not match.
pub(crate) fn summary(path: &Path, config: &Config) -> (String, bool) {
    let mut pins_hold = true;
    let mut out = format!(
        "{}: {} plugin(s), ok\n",
        path.display(),
        config.plugins.len()
    );
    let width = config
        .plugins
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    for p in &config.plugins {
        let (mode, what) = match &p.kind {
            PluginKind::Companion(c) => {
                let mut what = c.path.display().to_string();
                for a in &c.args {
                    what.push(' ');
                    what.push_str(a);
                }
                let cpus = match &c.cpu {
                    CpuConfig::MaxProcs(n) => format!("max-procs {n}"),
                    CpuConfig::Cpus(list) => format!("cpus {list:?}"),
                };
                ("companion", format!("{what}  ({cpus})"))
            }
            PluginKind::Remote(r) => (
                "remote",
                r.fleet
                    .as_ref()
                    .map_or_else(|| r.address.to_string(), |f| f.endpoints.to_string()),
            ),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {mode:<9}  {what}  call-timeout {}",
            p.name,
            format_duration(p.call_timeout)
        );
        if let PluginKind::Companion(c) = &p.kind {
            let (line, holds) = digest_line(&c.path, c.sha256.as_ref());
            pins_hold &= holds;
            let _ = writeln!(out, "  {:<width$}  {line}", "");
        }
    }
    if let Some(p) = &config.pluggable {
        let _ = writeln!(
            out,
            "pluggable: the unix sockets that appear in {} (each a plugin named after its file)",
            p.folder.display()
        );
    }
    match &config.admin {
        Some(a) => {
            let _ = writeln!(
                out,
                "admin API: {}{}",
                a.listen,
                if a.token_file.is_some() {
                    " (bearer token)"
                } else {
                    ""
                }
            );
        }
        None => out.push_str("admin API: not configured (`run` serves it on 127.0.0.1:9190)\n"),
    }
    (out, pins_hold)
}

/// `sha256 <digest>` of the binary, and whether it matches its pin (if it has one).
fn digest_line(path: &Path, pin: Option<&Sha256Digest>) -> (String, bool) {
    match (Sha256Digest::of_file(path), pin) {
        (Err(e), Some(_)) => (format!("sha256 unreadable ({e}); pinned, MISMATCH"), false),
        (Err(e), None) => (format!("sha256 unreadable ({e})"), true),
        (Ok(actual), None) => (format!("sha256 {actual}  (not pinned)"), true),
        (Ok(actual), Some(pin)) if actual.matches(pin) => {
            (format!("sha256 {actual}  (pinned, matches)"), true)
        }
        (Ok(actual), Some(pin)) => (
            format!(
                "sha256 {actual}  (pinned, MISMATCH: companion.sha256 is {pin}; it will not start)"
            ),
            false,
        ),
    }
}

/// `describe`'s output: JSON, or the services and methods as text with where they came
/// from.
pub(crate) fn print_description(name: &str, description: &Value, json: bool) {
    if json {
        println!("{description}");
        return;
    }
    print!("{}", description_text(name, description));
}

fn description_text(name: &str, d: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let source = match d["source"].as_str() {
        Some("reflection") => format!("from the plugin ({})", d["detail"].as_str().unwrap_or("")),
        _ => format!(
            "from the descriptors bundled with polaris-plugin: the plugin serves no gRPC reflection ({})",
            d["detail"].as_str().unwrap_or("")
        ),
    };
    let _ = writeln!(out, "{name}: services {source}");
    for service in d["services"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", service["name"].as_str().unwrap_or("?"));
        let Some(methods) = service["methods"].as_array() else {
            let _ = writeln!(out, "    (no descriptor)");
            continue;
        };
        for m in methods {
            let stream = |key: &str| {
                if m[key].as_bool() == Some(true) {
                    "stream "
                } else {
                    ""
                }
            };
            let _ = writeln!(
                out,
                "    {}({}{}) returns ({}{})",
                m["name"].as_str().unwrap_or("?"),
                stream("client_streaming"),
                m["input"].as_str().unwrap_or("?"),
                stream("server_streaming"),
                m["output"].as_str().unwrap_or("?"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_lists_its_endpoints_under_the_table() {
        let plugin = serde_json::json!({
            "name": "rl", "mode": "remote", "state": "ready", "state_detail": "ready",
            "ready": true, "calls": {"ok": 3, "error": 0, "timeout": 0},
            "endpoints": [
                {"address": "10.0.0.1:8972", "state": "ready", "calls": 2, "in_flight": 1,
                 "ejections": 0, "until": null, "last_error": null},
                {"address": "10.0.0.22:8972", "state": "ejected", "calls": 1, "in_flight": 0,
                 "ejections": 2, "until": "2026-12-01T14:00:00Z", "last_error": "refused"},
            ],
        });
        let table = status_table(&[plugin]);
        let lines: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "rl endpoints:",
                "  10.0.0.1:8972   ready        calls 2  in-flight 1  ejections 0",
                "  10.0.0.22:8972  ejected      calls 1  in-flight 0  ejections 2  until 2026-12-01T14:00:00Z  last error: refused",
            ]
        );
    }
}
