//! The admin API's routes and handlers.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    middleware,
    response::{
        Html, IntoResponse, Response,
        sse::{self, KeepAlive, Sse},
    },
    routing::{get, post, put},
};
use futures_util::{Stream, StreamExt as _, stream};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    auth,
    metrics::Metrics,
    view::{self, PluginView},
};
use crate::{
    Error, PluginHandle, PluginState, Registry,
    events::{Next, Subscription},
    json,
};

/// The status page: one file, no build step, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");

/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub(super) struct AppState {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl AppState {
    pub(super) fn new(registry: Arc<Registry>, stop: CancellationToken) -> Self {
        AppState {
            metrics: Arc::new(Metrics::new(registry.clone())),
            registry,
            stop,
        }
    }

    fn plugin(&self, name: &str) -> Result<PluginHandle, ApiError> {
        self.registry.get(name).ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "no plugin named {name:?}; configured: {}",
                self.registry.names().join(", ")
            ),
            plugin: Some(name.to_owned()),
        })
    }
}

pub(super) fn router(state: AppState, token: Option<auth::Token>) -> Router {
    let api = Router::new()
        .route("/maintain/v1/plugins", get(list))
        .route("/maintain/v1/plugins/{name}", get(one))
        .route("/maintain/v1/plugins/{name}/{command}", put(command))
        .route(
            "/maintain/v1/reload",
            post(reload_config).get(reload_status),
        )
        .route("/maintain/v1/plugins/{name}/call", post(call))
        .route("/maintain/v1/plugins/{name}/describe", get(describe))
        .route("/maintain/v1/events", get(events))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state);
    let api = match token {
        Some(token) => api.layer(middleware::from_fn_with_state(token, auth::require)),
        None => api,
    };
    // The page and liveness carry no data: open, so a browser can load the page and ask
    // for the token, and a supervisor can probe the host.
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(api)
}

/// An error answer: `{"error": message, "plugin": name}` with `status`.
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    plugin: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message, self.plugin.as_deref())
    }
}

/// `{"error": message, "plugin": name}` with `status`.
pub(super) fn error_response(status: StatusCode, message: &str, plugin: Option<&str>) -> Response {
    let body = match plugin {
        Some(plugin) => json!({ "error": message, "plugin": plugin }),
        None => json!({ "error": message }),
    };
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "no such route; see docs/operations.md (GET /maintain/v1/plugins, /maintain/v1/events, /metrics, /healthz, /readyz)",
        None,
    )
}

async fn list(State(app): State<AppState>) -> Json<serde_json::Value> {
    let plugins: Vec<PluginView> = app.registry.plugins().iter().map(PluginView::of).collect();
    Json(json!({ "plugins": plugins, "reloads": view::reloads(&app.registry.reloads()) }))
}

async fn one(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    Ok(Json(PluginView::of(&app.plugin(&name)?)))
}

/// How long `enable` and `restart` wait for the plugin to be ready, unless `?wait=` says.
const READY_WAIT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct CommandQuery {
    wait: Option<String>,
}

/// `PUT /maintain/v1/plugins/{name}/{command}`: `enable`, `disable`, `restart` or `reload`
/// (blue/green: a new process or connection takes over once ready). Answers with the
/// plugin's status when it is done — for enable and restart, when the plugin is ready
/// again — or 409 with why not.
async fn command(
    State(app): State<AppState>,
    Path((name, what)): Path<(String, String)>,
    Query(query): Query<CommandQuery>,
) -> Response {
    if !["enable", "disable", "restart", "reload"].contains(&what.as_str()) {
        return not_found().await;
    }
    let plugin = match app.plugin(&name) {
        Ok(plugin) => plugin,
        Err(e) => return e.into_response(),
    };
    let conflict = |message: String| error_response(StatusCode::CONFLICT, &message, Some(&name));
    let wait = match query.wait.as_deref().map(crate::config::parse_duration) {
        None => READY_WAIT,
        Some(Ok(wait)) => wait,
        Some(Err(e)) => {
            return error_response(StatusCode::BAD_REQUEST, &format!("wait: {e}"), Some(&name));
        }
    };
    let done = match what.as_str() {
        "enable" => plugin.enable().await,
        "disable" => plugin.disable().await,
        "restart" => plugin.restart().await,
        _ => plugin.upgrade().await,
    };
    if let Err(e) = done {
        return conflict(format!("cannot {what}: {e}"));
    }
    tracing::info!(plugin = %name, "admin API: {what} done");
    // An upgrade answers once the new process serves; enable and restart once it is ready.
    if matches!(what.as_str(), "enable" | "restart")
        && let Err(e) = plugin.wait_ready(wait).await
    {
        return conflict(format!("{what} done, but the plugin is not ready: {e}"));
    }
    Json(PluginView::of(&plugin)).into_response()
}

/// Reads the host's config file again and applies it.
async fn reload_config(State(app): State<AppState>) -> Response {
    match app.registry.reload_file().await {
        Ok(report) if report.failed.is_empty() => Json(view::report(&report)).into_response(),
        Ok(report) => {
            let mut body = view::report(&report);
            let why: Vec<String> = report
                .failed
                .iter()
                .map(|(plugin, error)| format!("{plugin}: {error}"))
                .collect();
            body["error"] = json!(format!(
                "reloaded, but {} plugin(s) could not change and go on as before: {}",
                why.len(),
                why.join("; ")
            ));
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        Err(Error::NoSource) => {
            error_response(StatusCode::CONFLICT, &Error::NoSource.to_string(), None)
        }
        Err(e) => error_response(
            StatusCode::BAD_REQUEST,
            &format!("reload refused, nothing changed: {e}"),
            None,
        ),
    }
}

async fn reload_status(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(view::reloads(&app.registry.reloads()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// A `proto.Plugin/Call` request: the payload's message type.
    #[serde(default)]
    message: Option<String>,
    /// Any unary method instead (`package.Service/Method`), through the plugin's
    /// descriptors.
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    json: Option<serde_json::Value>,
    #[serde(default)]
    timeout: Option<String>,
    /// With `method`: an encoded `FileDescriptorSet`, base64, for services the plugin
    /// does not describe.
    #[serde(default)]
    descriptor_set: Option<String>,
}

const CALL_BODY_SHAPE: &str = r#"{"message": "RateLimitPluginRequest", "json": {...}, "timeout": "2s"} or {"method": "api.RateLimiter/Allow", "json": {...}}"#;

async fn call(State(app): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let plugin = match app.plugin(&name) {
        Ok(plugin) => plugin,
        Err(e) => return e.into_response(),
    };
    let bad = |message: String| error_response(StatusCode::BAD_REQUEST, &message, Some(&name));
    let body: CallBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return bad(format!("the body must be JSON like {CALL_BODY_SHAPE}: {e}")),
    };
    let timeout = match body.timeout.as_deref().map(crate::config::parse_duration) {
        None => plugin.call_timeout(),
        Some(Ok(t)) if !t.is_zero() => t,
        Some(Ok(_)) => return bad("timeout must be greater than zero".into()),
        Some(Err(e)) => return bad(format!("timeout: {e}")),
    };
    let json = body.json.unwrap_or_else(|| json!({}));
    let message = match (body.message, body.method) {
        (Some(message), None) => message,
        (None, Some(method)) => {
            return call_method(
                &plugin,
                &method,
                &json,
                body.descriptor_set.as_deref(),
                timeout,
            )
            .await;
        }
        _ => return bad(format!("give one of message and method: {CALL_BODY_SHAPE}")),
    };
    let request = match json::request_from_value(&message, &json) {
        Ok(request) => request,
        Err(e) => return bad(e.to_string()),
    };
    match plugin.call_within(request, timeout).await {
        Ok(reply) => {
            let fallback = reply.is_fallback();
            match json::response_to_value(&reply.into_response()) {
                Ok(mut value) => {
                    value["fallback"] = json!(fallback);
                    Json(value).into_response()
                }
                Err(e) => error_response(StatusCode::BAD_GATEWAY, &e.to_string(), Some(&name)),
            }
        }
        Err(e) => error_response(call_status(&e), &e.to_string(), Some(&name)),
    }
}

/// Any unary method with JSON, through the plugin's descriptors (and `descriptor_set`).
async fn call_method(
    plugin: &PluginHandle,
    method: &str,
    json: &serde_json::Value,
    descriptor_set: Option<&str>,
    timeout: Duration,
) -> Response {
    let name = plugin.name();
    let mut description = match plugin.describe().await {
        Ok(d) => d,
        Err(e) => return error_response(call_status(&e), &e.to_string(), Some(name)),
    };
    if let Some(set) = descriptor_set {
        use base64::Engine as _;
        let added = base64::engine::general_purpose::STANDARD
            .decode(set)
            .map_err(|e| format!("descriptor_set is not base64: {e}"))
            .and_then(|set| description.add_descriptors(&set));
        if let Err(e) = added {
            return error_response(StatusCode::BAD_REQUEST, &e, Some(name));
        }
    }
    match plugin
        .call_json(&description, method, &json.to_string(), timeout)
        .await
    {
        Ok(reply) => Json(json!({ "method": method, "reply": reply })).into_response(),
        Err(e) => error_response(call_status(&e), &e.to_string(), Some(name)),
    }
}

async fn describe(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    let plugin = match app.plugin(&name) {
        Ok(plugin) => plugin,
        Err(e) => return e.into_response(),
    };
    match plugin.describe().await {
        Ok(d) => {
            let mut value = d.to_value();
            value["plugin"] = json!(name);
            Json(value).into_response()
        }
        Err(e) => error_response(call_status(&e), &e.to_string(), Some(&name)),
    }
}

/// The HTTP status for a failed call.
fn call_status(e: &Error) -> StatusCode {
    match e {
        Error::UnknownPlugin { .. } => StatusCode::NOT_FOUND,
        Error::Config(_) | Error::Request { .. } => StatusCode::BAD_REQUEST,
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::Unavailable { .. }
        | Error::Disabled { .. }
        | Error::Destroyed { .. }
        | Error::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

async fn events(
    State(app): State<AppState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/event-stream"));
    if wants_json {
        let after = query.after.unwrap_or(0);
        let events: Vec<_> = app
            .registry
            .events()
            .recent()
            .into_iter()
            .filter(|e| e.seq > after)
            .collect();
        return Json(json!({ "events": events })).into_response();
    }
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let subscription = app.registry.events().subscribe(last_id.or(query.after));
    Sse::new(event_stream(subscription, app.stop.clone()))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The subscription as server-sent events (`id:` the sequence number, `data:` the event as
/// JSON), until the log closes or the server stops.
fn event_stream(
    subscription: Subscription,
    stop: CancellationToken,
) -> impl Stream<Item = Result<sse::Event, Infallible>> {
    stream::unfold(subscription, |mut sub| async move {
        let event = match sub.next().await {
            Next::Event(e) => sse::Event::default()
                .id(e.seq.to_string())
                .json_data(&e)
                .unwrap_or_else(|_| sse::Event::default().comment("unencodable event")),
            Next::Missed(n) => sse::Event::default()
                .json_data(json!({ "kind": "missed", "missed": n }))
                .unwrap_or_default(),
            Next::Closed => return None,
        };
        Some((Ok(event), sub))
    })
    .take_until(stop.cancelled_owned())
}

async fn metrics(State(app): State<AppState>) -> Response {
    match app.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e, None),
    }
}

/// 200 when every plugin that should serve (all but those an operator disabled) is ready.
async fn readyz(State(app): State<AppState>) -> Response {
    let not_ready: Vec<_> = app
        .registry
        .plugins()
        .iter()
        .filter_map(|p| {
            let state = p.status().state;
            match state {
                PluginState::Ready | PluginState::Disabled => None,
                other => Some(json!({ "plugin": p.name(), "state": other.to_string() })),
            }
        })
        .collect();
    if not_ready.is_empty() {
        Json(json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "not_ready": not_ready })),
        )
            .into_response()
    }
}
