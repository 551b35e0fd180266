//! The gRPC-over-HTTP/2 details the call path reads and writes itself: message framing,
//! the status of a response (from its trailers, or its head when it has no body), and the
//! `grpc-timeout` header (PROTOCOL-HTTP2.md in grpc/grpc). Pure functions; nothing here
//! panics on what a peer sends.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use tonic::{Code, Status, metadata::MetadataMap};

/// The `grpc-timeout` header.
pub(crate) const TIMEOUT: &str = "grpc-timeout";

/// One length-prefixed message: the compressed flag (0), the length, the bytes.
pub(crate) fn frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer with the room it asked for cannot fail.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// The one message of a unary response body.
pub fn unframe(mut body: Bytes) -> Result<Bytes, Status> {
    if body.len() < 5 {
        return Err(Status::internal(format!(
            "the reply is not a gRPC message ({} bytes where at least 5 are needed)",
            body.len()
        )));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::internal(
            "the reply is compressed, but no compression was offered",
        ));
    }
    if body.len() != len {
        return Err(Status::internal(format!(
            "the reply's frame says {len} bytes but {} followed",
            body.len()
        )));
    }
    Ok(body)
}

/// The status a response ended with: the trailers' `grpc-status` (or the head's, for a
/// trailers-only response); without one, the HTTP status mapped as gRPC's
/// http-grpc-status-mapping.md says.
pub(crate) fn status_of(head: &http::response::Parts, trailers: Option<&HeaderMap>) -> Status {
    let headers = trailers
        .filter(|t| t.contains_key("grpc-status"))
        .unwrap_or(&head.headers);
    // The common case, OK, without building a status from the headers' metadata.
    if code(headers) == Some(Code::Ok) {
        return Status::ok("");
    }
    if let Some(status) = from_headers(headers) {
        return status;
    }
    let code = match head.status {
        StatusCode::OK => {
            return Status::internal("the reply ended without a grpc-status");
        }
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!("HTTP status {} without gRPC status", head.status),
    )
}

/// The code of `grpc-status`, if there is one (cheap: no status is built).
pub(crate) fn code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// A status from `grpc-status`, `grpc-message` (percent-decoded) and
/// `grpc-status-details-bin`; `None` without `grpc-status`. Unlike tonic's
/// `Status::from_header_map`, malformed details are dropped instead of panicking.
pub fn from_headers(headers: &HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    let details = headers
        .get("grpc-status-details-bin")
        .and_then(|d| base64_decode(d.as_bytes()))
        .unwrap_or_default();
    let mut metadata = headers.clone();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        metadata.remove(name);
    }
    Some(Status::with_details_and_metadata(
        code,
        message,
        details.into(),
        MetadataMap::from_headers(metadata),
    ))
}

fn base64_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    // Senders may or may not pad (the gRPC spec allows both).
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(
            bytes
                .strip_suffix(b"==")
                .or(bytes.strip_suffix(b"="))
                .unwrap_or(bytes),
        )
        .ok()
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `grpc-timeout`'s value for `timeout`: at most 8 digits, in the finest unit that fits,
/// rounded up (a deadline is never shortened to nothing).
pub fn encode_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(per, unit)| (nanos.div_ceil(per), unit))
        .find(|&(value, _)| value <= MAX)
        .unwrap_or((MAX, 'H'));
    // Digits and one letter: always a valid header value.
    HeaderValue::from_str(&format!("{value}{unit}")).unwrap_or(HeaderValue::from_static("1n"))
}

/// The timeout a `grpc-timeout` value asks for; `None` when malformed (1 to 8 digits and
/// one of `H M S m u n`).
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timeouts_use_the_finest_unit_that_fits_in_eight_digits() {
        assert_eq!(encode_timeout(Duration::from_millis(1500)), "1500000u");
        assert_eq!(encode_timeout(Duration::from_secs(3600)), "3600000m");
        assert_eq!(encode_timeout(Duration::from_nanos(5)), "5n");
        assert_eq!(encode_timeout(Duration::MAX), "99999999H");
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        for bad in [
            &b""[..],
            b"m",
            b"123456789m",
            b"12x",
            b"-1m",
            b"1.5S",
            b"\xff",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn a_timeout_survives_the_header_never_shortened(nanos in any::<u64>()) {
            let timeout = Duration::from_nanos(nanos);
            let parsed = parse_timeout(encode_timeout(timeout).as_bytes()).unwrap();
            prop_assert!(parsed >= timeout);
            // Rounded up by less than one unit of the finest that fits.
            prop_assert!(parsed - timeout < Duration::from_nanos(nanos / 99_999 + 1));
        }

        #[test]
        fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = parse_timeout(&bytes);
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                headers.insert("grpc-status", v.clone());
                headers.insert("grpc-message", v.clone());
                headers.insert("grpc-status-details-bin", v);
            }
            let _ = from_headers(&headers);
            let _ = unframe(Bytes::from(bytes));
        }
    }

    #[test]
    fn a_status_comes_from_the_trailers_then_the_head_then_the_http_status() {
        let (mut head, ()) = http::Response::new(()).into_parts();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("7"));
        trailers.insert("grpc-message", HeaderValue::from_static("no%20way"));
        trailers.insert("grpc-status-details-bin", HeaderValue::from_static("!!"));
        let s = status_of(&head, Some(&trailers));
        assert_eq!((s.code(), s.message()), (Code::PermissionDenied, "no way"));
        assert!(s.details().is_empty());
        assert_eq!(status_of(&head, None).code(), Code::Internal);
        head.status = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(status_of(&head, None).code(), Code::Unavailable);
        head.headers
            .insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(status_of(&head, None).code(), Code::Ok);
    }

    #[test]
    fn a_framed_message_unframes() {
        let message = prost_types::Duration {
            seconds: 3,
            nanos: 4,
        };
        let framed = frame(&message);
        let body = unframe(framed.clone()).unwrap();
        assert_eq!(
            <prost_types::Duration as prost::Message>::decode(body).unwrap(),
            message
        );
        assert!(unframe(framed.slice(..framed.len() - 1)).is_err());
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert!(unframe(compressed.into()).is_err());
    }
}
