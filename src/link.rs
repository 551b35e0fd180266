//! Connections to a plugin, shared by the companion and remote owners: the
//! client calls use, dialing with a bound, and the health probe.

use std::time::Duration;

use tokio::time::timeout;

use crate::{
    conn::{self, Conn, Dest, origin},
    tls::ClientTls,
};

/// Opens one connection to `dest` (over TLS with `tls`) within `within`, then checks health once
/// within `health_timeout`: a connection is handed out only once it answers.
pub(crate) async fn dial(
    dest: &Dest,
    tls: Option<&ClientTls>,
    within: Duration,
    options: conn::Options,
    health_timeout: Duration,
) -> Result<Conn, String> {
    let conn = match timeout(within, conn::connect(dest, tls, options)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(format!("cannot connect to {dest}: {}", error_chain(&e))),
        Err(_) => {
            return Err(format!(
                "cannot connect to {dest}: no connection within {within:?}"
            ));
        }
    };
    match timeout(health_timeout, check_health(conn.clone())).await {
        Ok(Ok(())) => Ok(conn),
        // The check failed on the connection (rather than getting no answer): when the
        // connection itself failed under it (e.g. the server's TLS alert after a TLS 1.3
        // handshake, such as a refused client certificate), say why.
        Ok(Err(error)) => match conn.failure(health_timeout).await {
            Some(why) => Err(format!("{error}; the connection failed: {why}")),
            None => Err(error),
        },
        Err(_) => Err(format!(
            "health check got no answer within {health_timeout:?}"
        )),
    }
}

/// One health check bounded by `within`.
pub(crate) async fn probe(conn: Conn, within: Duration) -> Result<(), String> {
    match timeout(within, check_health(conn)).await {
        Ok(result) => result,
        Err(_) => Err(format!("health check got no answer within {within:?}")),
    }
}

/// One grpc.health.v1 check of service `"plugin"`. A plugin without the
/// health service (UNIMPLEMENTED) or without the `"plugin"` entry
/// (NOT_FOUND) answered over a working connection, so it counts as alive.
pub(crate) async fn check_health(conn: Conn) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let reply = HealthClient::with_origin(conn, origin())
        .check(HealthCheckRequest {
            service: crate::protocol::HEALTH_SERVICE.to_owned(),
        })
        .await;
    match reply {
        Ok(r) => match r.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("health check says {}", other.as_str_name())),
        },
        Err(s) if matches!(s.code(), tonic::Code::Unimplemented | tonic::Code::NotFound) => Ok(()),
        Err(s) => Err(format!(
            "health check failed: {}: {}",
            s.code(),
            s.message()
        )),
    }
}

/// An error with its sources, `a: b: c` (a source whose text the previous
/// one already ends with is skipped).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}
