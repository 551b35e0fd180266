//! What one attempt's failure means for the call (the retry policy, apart
//! from the mechanism in `call.rs`).

use crate::{config::Delivery, conn::ConnError};

/// How an attempt that got no answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The request provably never reached the plugin.
    NotProcessed,
    /// The connection failed after the request was sent.
    MaybeProcessed,
    /// Not sent: the connection was retired (its process is being replaced by a new
    /// one); the next connection is already published or about to be.
    Retired,
    /// The request itself could not be sent (its body failed, or it is malformed): sending
    /// it again would fail the same way, so it is not, under either delivery.
    Refused,
}

impl Attempt {
    /// Classifies an attempt that got no response head: the connection's error says
    /// whether the plugin can have seen the request.
    pub(crate) fn of(error: &ConnError) -> Self {
        match error {
            ConnError::Retired => Attempt::Retired,
            ConnError::Request(_) | ConnError::Malformed(_) => Attempt::Refused,
            e if e.not_processed() => Attempt::NotProcessed,
            _ => Attempt::MaybeProcessed,
        }
    }

    /// Whether the call is sent again (on the next connection) under `delivery`.
    pub(crate) fn retry(self, delivery: Delivery) -> bool {
        match self {
            Attempt::NotProcessed | Attempt::Retired => true,
            Attempt::MaybeProcessed => delivery == Delivery::AtLeastOnce,
            Attempt::Refused => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_may_have_processed_the_request() {
        assert_eq!(Attempt::of(&ConnError::Closed), Attempt::MaybeProcessed);
        assert!(!Attempt::MaybeProcessed.retry(Delivery::AtMostOnce));
        assert!(Attempt::MaybeProcessed.retry(Delivery::AtLeastOnce));
        assert_eq!(Attempt::of(&ConnError::Retired), Attempt::Retired);
        assert!(Attempt::Retired.retry(Delivery::AtMostOnce));
    }

    #[test]
    fn a_request_that_cannot_be_sent_is_never_sent_again() {
        let error = ConnError::Request(tonic::Status::internal("encoder broke"));
        assert_eq!(Attempt::of(&error), Attempt::Refused);
        assert!(!Attempt::Refused.retry(Delivery::AtMostOnce));
        assert!(!Attempt::Refused.retry(Delivery::AtLeastOnce));
    }

    #[test]
    fn not_processed_is_retried_under_either_delivery() {
        assert!(Attempt::NotProcessed.retry(Delivery::AtMostOnce));
        assert!(Attempt::NotProcessed.retry(Delivery::AtLeastOnce));
    }
}
