//! `Config::from_yaml_str` on arbitrary UTF-8: must never panic (serde_yaml, merge keys,
//! durations, validation).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use polaris_plugin::config::Config;

fuzz_target!(|text: &str| {
    let _ = Config::from_yaml_str(text, Path::new("/"));
});
