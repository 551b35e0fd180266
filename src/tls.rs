//! TLS for plugin connections: go-plugin's AutoMTLS (per-run self-signed certificates,
//! each side pinned to exactly the other's) on rustls with the `aws-lc-rs` provider.
//!
//! Go's AutoMTLS certificates are self-signed with `IsCA=true` (webpki refuses a CA as an
//! end-entity) and ECDSA P-521 (the `ring` provider cannot verify it), so verification
//! here is a comparison with the DER the peer announced, plus the handshake signature
//! checked with the provider's algorithms (`pinned.rs`).

mod auto;
mod cert;
mod pinned;
pub(crate) mod remote;

pub(crate) use auto::{ClientTls, auto_client, auto_server, parse_client_cert_pem};
pub(crate) use cert::Identity;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider every TLS config here uses (`aws-lc-rs`), whatever process default
/// another crate may have installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS 1.2 and 1.3 (go-plugin: `MinVersion: tls.VersionTLS12`).
pub(crate) const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What a failed TLS handshake says, with the reason a verifier here gave in words
/// (rustls prints a custom certificate error with its `Debug` form).
pub(crate) fn explain(error: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::Other(other))) => {
            format!("invalid peer certificate: {}", other.0)
        }
        _ => error.to_string(),
    }
}

/// ALPN `h2`, offered and selected on every TLS connection: grpc-go 1.67 and later refuse
/// TLS without it.
pub(crate) fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec()]
}
