//! What one attempt's failure means for the call (the retry policy, apart
//! from the mechanism in `call.rs`).

use crate::{config::Delivery, conn::ConnError};

/// How an attempt that got a gRPC status ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The plugin answered with this status itself.
    Plugin,
    /// The request provably never reached the plugin.
    NotProcessed,
    /// The connection failed after the request was sent.
    MaybeProcessed,
    /// Not sent: the connection was retired (its process is being replaced by a new
    /// one); the next connection is already published or about to be.
    Retired,
}

impl Attempt {
    /// Classifies a failed attempt: a status the plugin sent never carries a
    /// source; one tonic made from the connection's error carries a
    /// [`ConnError`] (failed before a response) or a `hyper`/`h2` error
    /// (failed while reading the response: the plugin had answered).
    pub(crate) fn of(status: &tonic::Status) -> Self {
        let Some(source) = std::error::Error::source(status) else {
            return Attempt::Plugin;
        };
        match source.downcast_ref::<ConnError>() {
            Some(ConnError::Retired) => Attempt::Retired,
            Some(e) if e.not_processed() => Attempt::NotProcessed,
            Some(_) => Attempt::MaybeProcessed,
            None if is_transport(source) => Attempt::MaybeProcessed,
            None => Attempt::Plugin,
        }
    }

    /// Whether the call is sent again (on the next connection) under `delivery`.
    pub(crate) fn retry(self, delivery: Delivery) -> bool {
        match self {
            Attempt::Plugin => false,
            Attempt::NotProcessed | Attempt::Retired => true,
            Attempt::MaybeProcessed => delivery == Delivery::AtLeastOnce,
        }
    }
}

fn is_transport(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<hyper::Error>() || e.is::<h2::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_status_is_never_retried() {
        let status = tonic::Status::unavailable("the plugin says so");
        assert_eq!(Attempt::of(&status), Attempt::Plugin);
        assert!(!Attempt::Plugin.retry(Delivery::AtLeastOnce));
    }

    #[test]
    fn an_io_error_under_the_status_may_have_been_processed() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = tonic::Status::from_error(Box::new(io));
        assert_eq!(Attempt::of(&status), Attempt::MaybeProcessed);
        assert!(!Attempt::MaybeProcessed.retry(Delivery::AtMostOnce));
        assert!(Attempt::MaybeProcessed.retry(Delivery::AtLeastOnce));
    }

    #[test]
    fn not_processed_is_retried_under_either_delivery() {
        assert!(Attempt::NotProcessed.retry(Delivery::AtMostOnce));
        assert!(Attempt::NotProcessed.retry(Delivery::AtLeastOnce));
    }
}
