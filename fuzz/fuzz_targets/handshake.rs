//! `Handshake::from_str` on arbitrary UTF-8: must never panic, and errors stay small.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polaris_plugin::handshake::Handshake;

fuzz_target!(|line: &str| {
    if let Err(error) = line.parse::<Handshake>() {
        // Errors quote at most a short prefix of the line (fault F9).
        assert!(error.to_string().len() < 2048);
    }
});
