//! Commands against a running host, through its admin API.

use std::{process::ExitCode, time::Duration};

use http_body_util::BodyExt as _;
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    client::{Admin, ClientError, SseLines},
    table,
};

/// `status`: the table (or JSON); exit 1 when a plugin that is not disabled is not ready.
pub(crate) async fn status(admin: &Admin, json: bool) -> Result<ExitCode, ClientError> {
    let answer = admin
        .json(Method::GET, "/maintain/v1/plugins", None)
        .await?;
    let plugins = answer["plugins"].as_array().cloned().unwrap_or_default();
    Ok(table::print_status(&plugins, json))
}

/// What `call` sends.
pub(crate) enum Calling {
    /// A `proto.Plugin/Call` request of this message type.
    Message(String),
    /// Any unary method, with descriptors the plugin may not have.
    Method {
        method: String,
        descriptor_set: Option<Vec<u8>>,
    },
}

/// `call`: the reply as JSON on stdout.
pub(crate) async fn call(
    admin: &Admin,
    name: &str,
    what: &Calling,
    json_text: &str,
    timeout: Option<Duration>,
) -> Result<ExitCode, ClientError> {
    let request: Value = serde_json::from_str(json_text)
        .map_err(|e| ClientError::Http(format!("--json is not JSON: {e}")))?;
    let mut body = json!({ "json": request });
    match what {
        Calling::Message(message) => body["message"] = json!(message),
        Calling::Method {
            method,
            descriptor_set,
        } => {
            body["method"] = json!(method);
            if let Some(set) = descriptor_set {
                use base64::Engine as _;
                body["descriptor_set"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(set));
            }
        }
    }
    if let Some(t) = timeout {
        body["timeout"] = json!(format!("{}ms", t.as_millis().max(1)));
    }
    let reply = admin
        .json(Method::POST, &plugin_path(name, "call"), Some(body))
        .await?;
    println!("{reply}");
    Ok(ExitCode::SUCCESS)
}

/// `describe`: the plugin's services and methods, and where they came from.
pub(crate) async fn describe(
    admin: &Admin,
    name: &str,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let answer = admin
        .json(Method::GET, &plugin_path(name, "describe"), None)
        .await?;
    table::print_description(name, &answer, json);
    Ok(ExitCode::SUCCESS)
}

/// `enable`, `disable`, `restart`: returns when the host says it is done.
pub(crate) async fn command(admin: &Admin, name: &str, what: &str) -> Result<(), ClientError> {
    let view = admin
        .json(Method::PUT, &plugin_path(name, what), None)
        .await?;
    println!(
        "{name}: {what} done; now {}",
        view["state_detail"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// `reload`: the config (what changed), or one plugin's blue/green replacement.
pub(crate) async fn reload(admin: &Admin, plugin: Option<&str>) -> Result<ExitCode, ClientError> {
    let Some(name) = plugin else {
        let report = admin
            .json(Method::POST, "/maintain/v1/reload", None)
            .await?;
        for key in ["added", "removed", "changed", "replaced", "unchanged"] {
            let names: Vec<&str> = report[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !names.is_empty() {
                println!("{key}: {}", names.join(", "));
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    command(admin, name, "reload").await?;
    Ok(ExitCode::SUCCESS)
}

/// `events`: one line per event until the host stops (or Ctrl-C).
pub(crate) async fn events(
    admin: &Admin,
    after: Option<u64>,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let path = match after {
        Some(n) => format!("/maintain/v1/events?after={n}"),
        None => "/maintain/v1/events".to_owned(),
    };
    let mut body = admin.stream(&path).await?;
    let mut lines = SseLines::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        let Some(frame) = frame else {
            eprintln!("polaris-plugin: the host closed the event stream");
            return Ok(ExitCode::SUCCESS);
        };
        let frame = frame
            .map_err(|e| ClientError::Http(format!("{admin}: the event stream broke: {e}")))?;
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        for data in lines.push(chunk) {
            if json {
                println!("{data}");
            } else {
                match serde_json::from_str::<Value>(&data) {
                    Ok(event) => println!("{}", table::event_line(&event)),
                    Err(_) => println!("{data}"),
                }
            }
        }
    }
}

fn plugin_path(name: &str, what: &str) -> String {
    format!("/maintain/v1/plugins/{}/{what}", percent_encode(name))
}

/// Plugin names are printable but may hold characters a path cannot.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped_in_paths() {
        assert_eq!(
            super::plugin_path("a b/c", "call"),
            "/maintain/v1/plugins/a%20b%2Fc/call"
        );
    }
}
