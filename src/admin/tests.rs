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

#[tokio::test]
async fn a_fleet_shows_its_endpoints_in_json_and_metrics() {
    // Two loopback ports nobody serves: both endpoints unreachable.
    let registry = Arc::new(
        Registry::from_yaml_str(
            "plugins:\n  - name: fleet\n    mode: remote\n    remote:\n      address: [127.0.0.1:1, 127.0.0.1:2]\n",
        )
        .await
        .unwrap(),
    );
    let plugin = registry.get("fleet").unwrap();
    let mut watch = plugin.watch();
    while !{
        let e = plugin.status().endpoints;
        e.len() == 2 && e.iter().all(|e| e.last_error.is_some())
    } {
        watch.changed().await.unwrap();
    }
    let state = routes::AppState::new(registry.clone(), CancellationToken::new());
    let app = routes::router(state, None);
    let (status, v) = send(&app, "GET", "/maintain/v1/plugins/fleet", "").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["address"], "127.0.0.1:1, 127.0.0.1:2");
    let endpoints = v["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2, "{v}");
    assert_eq!(endpoints[0]["address"], "127.0.0.1:1");
    assert!(
        ["unreachable", "ejected", "connecting"].contains(&endpoints[0]["state"].as_str().unwrap()),
        "{v}"
    );
    for key in [
        "calls",
        "in_flight",
        "ejections",
        "last_error",
        "until",
        "generation",
    ] {
        assert!(endpoints[1].get(key).is_some(), "{key} in {v}");
    }

    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "polaris_plugin_endpoint_up{plugin=\"fleet\",endpoint=\"127.0.0.1:1\"} 0",
        "polaris_plugin_endpoint_calls_total{plugin=\"fleet\",endpoint=\"127.0.0.1:2\"} 0",
        "polaris_plugin_endpoint_state{plugin=\"fleet\",endpoint=\"127.0.0.1:2\",state=\"ready\"} 0",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(text.contains("polaris_plugin_endpoint_ejections_total{plugin=\"fleet\""));
    registry.destroy().await;
}
