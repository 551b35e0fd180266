//! Whole-document tests: both forms, binary lookup, and one test per error message.

mod errors;
mod fleet;
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

mod properties {
    use std::path::Path;

    use proptest::prelude::*;

    use crate::config::Config;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Loading may fail on anything, but never panics.
        #[test]
        fn from_yaml_str_never_panics(yaml in any::<String>().prop_map(|s| s.chars().take(64).collect::<String>())) {
            let _ = Config::from_yaml_str(&yaml, Path::new("/nonexistent"));
        }

        /// Nor on text that looks like a config, with YAML's punctuation in random places.
        #[test]
        fn from_yaml_str_never_panics_on_config_like_text(
            yaml in "(plugins|plugin|name|mode|companion|remote|fallback|type|json|call-timeout|max-procs|env|args|cpus|<<|&a|\\*a|!t|[-:{}\\[\\],' \n0-9a-z.])*"
                .prop_map(|s| s.chars().take(160).collect::<String>())
        ) {
            let _ = Config::from_yaml_str(&yaml, Path::new("/nonexistent"));
        }
    }
}
