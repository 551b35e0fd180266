//! `status` and `call` without a running host: start CONFIG's plugins, act once, destroy
//! them. The plugins are fresh: their state (a rate limiter's counts) is not the running
//! host's.

use std::{process::ExitCode, time::Duration};

use polaris_plugin::{PluginHandle, Registry, admin::PluginView, config::Config, json};

use crate::{Result, host::Calling, table};

pub(crate) async fn status(config: Config, wait: Duration, as_json: bool) -> Result<ExitCode> {
    let registry = Registry::from_config(config)?;
    if let Err(e) = registry.wait_ready(wait).await {
        tracing::warn!("{e}");
    }
    let views: Vec<serde_json::Value> = registry
        .plugins()
        .iter()
        .map(|p| serde_json::to_value(PluginView::of(p)))
        .collect::<Result<_, _>>()?;
    registry.destroy().await;
    Ok(table::print_status(&views, as_json))
}

pub(crate) async fn call(
    config: Config,
    name: &str,
    what: &Calling,
    json_text: &str,
    timeout: Option<Duration>,
) -> Result<ExitCode> {
    let registry = Registry::from_config(config)?;
    let reply = match registry.plugin(name) {
        Ok(plugin) => call_one(&plugin, what, json_text, timeout).await,
        Err(e) => Err(e.into()),
    };
    registry.destroy().await;
    println!("{}", reply?);
    Ok(ExitCode::SUCCESS)
}

async fn call_one(
    plugin: &PluginHandle,
    what: &Calling,
    json_text: &str,
    timeout: Option<Duration>,
) -> Result<serde_json::Value> {
    let timeout = timeout.unwrap_or_else(|| plugin.call_timeout());
    match what {
        Calling::Message(message) => {
            let request = json::request_from_json(message, json_text)?;
            let reply = plugin.call_within(request, timeout).await?;
            let fallback = reply.is_fallback();
            let mut value = json::response_to_value(&reply.into_response())?;
            value["fallback"] = serde_json::json!(fallback);
            Ok(value)
        }
        Calling::Method {
            method,
            descriptor_set,
        } => {
            let mut description = plugin.describe().await?;
            if let Some(set) = descriptor_set {
                description.add_descriptors(set)?;
            }
            let reply = plugin
                .call_json(&description, method, json_text, timeout)
                .await?;
            Ok(serde_json::json!({ "method": method, "reply": reply }))
        }
    }
}

/// `describe` on a plugin of CONFIG started for the purpose.
pub(crate) async fn describe(config: Config, name: &str, as_json: bool) -> Result<ExitCode> {
    let registry = Registry::from_config(config)?;
    let description = match registry.plugin(name) {
        Ok(plugin) => plugin.describe().await,
        Err(e) => Err(e),
    };
    registry.destroy().await;
    table::print_description(name, &description?.to_value(), as_json);
    Ok(ExitCode::SUCCESS)
}
