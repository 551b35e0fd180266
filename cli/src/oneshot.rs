//! `status` and `call` without a running host: start CONFIG's plugins, act once, destroy
//! them. The plugins are fresh: their state (a rate limiter's counts) is not the running
//! host's.

use std::{process::ExitCode, time::Duration};

use polaris_plugin::{Registry, admin::PluginView, config::Config, json, proto::polaris::Request};

use crate::{Result, table};

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
    request: Request,
    timeout: Option<Duration>,
) -> Result<ExitCode> {
    let registry = Registry::from_config(config)?;
    let reply = match registry.plugin(name) {
        Ok(plugin) => {
            let timeout = timeout.unwrap_or_else(|| plugin.call_timeout());
            plugin.call_within(request, timeout).await
        }
        Err(e) => Err(e),
    };
    registry.destroy().await;
    let reply = reply?;
    let fallback = reply.is_fallback();
    let mut value = json::response_to_value(&reply.into_response())?;
    value["fallback"] = serde_json::json!(fallback);
    println!("{value}");
    Ok(ExitCode::SUCCESS)
}
