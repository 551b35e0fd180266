//! Whole-document tests: both forms, binary lookup, and one test per error message.

mod errors;
mod forms;
mod support;

/// `ConfigError` stays small, so that `Result<_, ConfigError>` and error enums wrapping it pass
/// `clippy::result_large_err` (128 bytes).
#[test]
fn config_error_stays_small() {
    assert!(
        size_of::<super::ConfigError>() <= 96,
        "{}",
        size_of::<super::ConfigError>()
    );
}
