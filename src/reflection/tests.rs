//! Describing in-process servers with reflection v1, v1alpha only, or none, and calling
//! a method with JSON through the descriptors found.

use tokio_util::task::AbortOnDropHandle;
use tonic::service::RoutesBuilder;

use super::*;
use crate::conn::{self, Conn};

const WITHIN: Duration = Duration::from_secs(5);

enum Reflect {
    V1AndV1Alpha,
    V1AlphaOnly,
    None,
}

/// A server with grpc.health.v1 and the reflection `reflect` says, over one in-process
/// connection.
async fn server(reflect: Reflect) -> (Conn, AbortOnDropHandle<()>) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let mut routes = RoutesBuilder::default();
    routes.add_service(health);
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
    };
    match reflect {
        Reflect::V1AndV1Alpha => {
            routes.add_service(builder().build_v1().unwrap());
            routes.add_service(builder().build_v1alpha().unwrap());
        }
        Reflect::V1AlphaOnly => {
            routes.add_service(builder().build_v1alpha().unwrap());
        }
        Reflect::None => {}
    }
    let (client, server) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let _keep = _reporter;
        let _ = tonic::transport::Server::builder()
            .add_routes(routes.routes())
            .serve_with_incoming(futures_util::stream::iter([Ok::<_, std::io::Error>(
                server,
            )]))
            .await;
    });
    let conn = conn::over(client, None).await.unwrap();
    (conn, AbortOnDropHandle::new(task))
}

#[tokio::test]
async fn reflection_lists_the_services_and_describes_their_methods() {
    let (conn, _server) = server(Reflect::V1AndV1Alpha).await;
    let d = describe(conn.clone(), WITHIN).await.unwrap();
    assert_eq!(d.source(), &Source::Reflection { version: "v1" });
    let mut names = d.service_names().to_vec();
    names.sort();
    // Every service in the registered descriptors; reflection's own left out.
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"proto.Plugin".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("reflection")), "{names:?}");
    let check = d.method("grpc.health.v1.Health/Check").unwrap();
    assert_eq!(
        check.input().full_name(),
        "grpc.health.v1.HealthCheckRequest"
    );
    assert_eq!(
        d.method("/grpc.health.v1.Health.Watch").unwrap().name(),
        "Watch"
    );
    let reply = call_json(conn, &check, r#"{"service": ""}"#, WITHIN)
        .await
        .unwrap();
    assert_eq!(reply["status"], "SERVING");
}

#[tokio::test]
async fn v1alpha_serves_when_v1_is_missing() {
    let (conn, _server) = server(Reflect::V1AlphaOnly).await;
    let d = describe(conn, WITHIN).await.unwrap();
    assert_eq!(d.source(), &Source::Reflection { version: "v1alpha" });
    assert!(d.method("grpc.health.v1.Health/Check").is_ok());
}

#[tokio::test]
async fn without_reflection_the_bundled_descriptors_answer_and_say_so() {
    let (conn, _server) = server(Reflect::None).await;
    let d = describe(conn, WITHIN).await.unwrap();
    let Source::Bundled { why } = d.source() else {
        panic!("{:?}", d.source());
    };
    assert!(
        why.contains("Unimplemented") || why.contains("unimplemented"),
        "{why}"
    );
    assert!(d.source().to_string().contains("bundled"));
    for service in [
        "proto.Plugin",
        "plugin.GRPCController",
        "grpc.health.v1.Health",
    ] {
        assert!(d.services().any(|s| s.full_name() == service), "{service}");
    }
}

#[tokio::test]
async fn unknown_methods_and_bad_requests_say_what_there_is() {
    let (conn, _server) = server(Reflect::V1AndV1Alpha).await;
    let d = describe(conn.clone(), WITHIN).await.unwrap();
    let err = d.method("api.RateLimiter/Allow").unwrap_err();
    assert!(
        err.contains("no service \"api.RateLimiter\"") && err.contains("grpc.health.v1.Health"),
        "{err}"
    );
    let err = d.method("grpc.health.v1.Health/Nope").unwrap_err();
    assert!(err.contains("Check") && err.contains("Watch"), "{err}");
    assert!(d.method("Check").is_err());
    let check = d.method("grpc.health.v1.Health/Check").unwrap();
    let status = call_json(conn.clone(), &check, r#"{"servce": ""}"#, WITHIN)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("servce"), "{status:?}");
    let watch = d.method("grpc.health.v1.Health/Watch").unwrap();
    let status = call_json(conn, &watch, "{}", WITHIN).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[test]
fn descriptor_sets_added_by_hand_extend_the_description() {
    let mut d = Description::bundled("test".into());
    assert!(d.add_descriptors(b"\xff not a descriptor set").is_err());
    d.add_descriptors(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .unwrap();
    assert!(
        d.pool()
            .get_service_by_name("grpc.health.v1.Health")
            .is_some()
    );
}
