//! The routes in process: a registry with a remote plugin nobody serves.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::{auth::Token, routes};
use crate::Registry;

async fn app(token: Option<Token>) -> (Router, Arc<Registry>) {
    // Port 1 on loopback: refused at once, so the plugin stays unreachable.
    let registry = Arc::new(
        Registry::from_yaml_str(
            "plugins:\n  - name: far\n    mode: remote\n    remote:\n      address: 127.0.0.1:1\n",
        )
        .await
        .unwrap(),
    );
    let state = routes::AppState::new(registry.clone(), CancellationToken::new());
    (routes::router(state, token), registry)
}

async fn send(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("accept", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

#[tokio::test]
async fn readiness_commands_and_errors() {
    let (app, registry) = app(None).await;
    let (status, v) = send(&app, "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["not_ready"][0]["plugin"], "far");

    let (status, v) = send(&app, "PUT", "/maintain/v1/plugins/far/disable", "").await;
    assert_eq!(
        (status, v["state"].clone()),
        (StatusCode::OK, "disabled".into()),
        "{v}"
    );
    let (status, _) = send(&app, "GET", "/readyz", "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "disabled plugins are not waited for"
    );
    let (status, v) = send(
        &app,
        "POST",
        "/maintain/v1/plugins/far/call",
        r#"{"message":"RateLimitPluginRequest"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["plugin"], "far");

    let (status, v) = send(&app, "POST", "/maintain/v1/plugins/far/call", "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = send(
        &app,
        "POST",
        "/maintain/v1/plugins/far/call",
        r#"{"message":"RateLimitPluginRequest","timeout":"soon"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("timeout"), "{v}");
    let (status, v) = send(&app, "GET", "/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("/maintain/v1/plugins"),
        "{v}"
    );
    let (status, _) = send(&app, "PUT", "/maintain/v1/plugins/far/explode", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the four commands");
    let (status, v) = send(&app, "PUT", "/maintain/v1/plugins/nope/enable", "").await;
    assert_eq!(
        (status, v["plugin"].clone()),
        (StatusCode::NOT_FOUND, "nope".into())
    );

    registry.destroy().await;
    let (status, v) = send(&app, "PUT", "/maintain/v1/plugins/far/enable", "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("cannot enable"),
        "{v}"
    );
    assert_eq!(v["plugin"], "far");
}

#[tokio::test]
async fn the_page_and_liveness_are_open_the_rest_needs_the_token() {
    let (app, registry) = app(Some(Token::new("tok"))).await;
    let (status, _) = send(&app, "GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK);
    let page = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    for uri in [
        "/maintain/v1/plugins",
        "/metrics",
        "/readyz",
        "/maintain/v1/events",
        "/nope",
    ] {
        let (status, v) = send(&app, "GET", uri, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {v}");
    }
    registry.destroy().await;
}
