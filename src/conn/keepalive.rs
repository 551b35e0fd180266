//! HTTP/2 keepalive: while calls are in flight, a PING every interval; a connection whose
//! peer leaves one unanswered for the timeout is ended (a peer that vanished without
//! closing — a host gone to sleep, a dropped network path — fails its calls instead of
//! leaving them waiting for their deadlines). Never while idle: grpc-go servers answer
//! pings on an idle connection with GOAWAY (`too_many_pings`).

use std::time::Duration;

/// Why the keepalive ended the connection.
#[derive(Debug, thiserror::Error)]
pub(super) enum Silent {
    #[error("the plugin did not answer a keepalive ping within {0:?}")]
    Unanswered(Duration),
    #[error("the keepalive ping failed: {0}")]
    Failed(#[source] h2::Error),
}

/// Pings every `interval` while `busy()`; returns when a ping goes unanswered for
/// `timeout` or fails. Runs beside the connection's future (which sends the pings and
/// receives the answers) in its task.
pub(super) async fn watch(
    mut pings: h2::PingPong,
    interval: Duration,
    timeout: Duration,
    busy: impl Fn() -> bool,
) -> Silent {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !busy() {
            continue;
        }
        match tokio::time::timeout(timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return Silent::Failed(e),
            Err(_) => return Silent::Unanswered(timeout),
        }
    }
}
