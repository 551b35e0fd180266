//! What the host reads of a peer's gRPC framing: `grpc-timeout` values, statuses from
//! headers, a length-prefixed message. Never panics; a timeout survives re-encoding
//! without getting shorter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polaris_plugin::protocol::grpc;

fuzz_target!(|bytes: &[u8]| {
    if let Some(timeout) = grpc::parse_timeout(bytes) {
        let again = grpc::parse_timeout(grpc::encode_timeout(timeout).as_bytes()).unwrap();
        assert!(again >= timeout);
    }
    if let Ok(value) = http::HeaderValue::from_bytes(bytes) {
        let mut headers = http::HeaderMap::new();
        for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            headers.insert(name, value.clone());
        }
        let _ = grpc::from_headers(&headers);
    }
    let _ = grpc::unframe(bytes::Bytes::copy_from_slice(bytes));
});
