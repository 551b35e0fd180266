//! Verifiers that accept exactly one certificate: the one the peer announced (the plugin in
//! its handshake, the host in `PLUGIN_CLIENT_CERT`).
//!
//! The handshake signature is still checked, with the provider's algorithms, so a peer must
//! hold the pinned certificate's private key. Chains, names, key usages and validity dates
//! are not: the certificate was handed over on a channel the host already trusts (the
//! child's environment and stdout), which is what go-plugin's AutoMTLS relies on too.

use std::{fmt, sync::Arc};

use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

/// Accepts exactly `pinned` as the peer's end-entity certificate.
pub(crate) struct Pinned {
    pinned: CertificateDer<'static>,
    /// Who announced the certificate, for the error ("its handshake", `PLUGIN_CLIENT_CERT`).
    announced_in: &'static str,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("pinned_len", &self.pinned.len())
            .field("announced_in", &self.announced_in)
            .finish()
    }
}

/// The peer presented a certificate other than the announced one.
#[derive(Debug, thiserror::Error)]
#[error("the peer presented a certificate other than the one announced in {0}")]
pub(crate) struct NotPinned(&'static str);

impl Pinned {
    pub(crate) fn new(pinned: CertificateDer<'static>, announced_in: &'static str) -> Arc<Self> {
        Arc::new(Pinned {
            pinned,
            announced_in,
            algorithms: super::provider().signature_verification_algorithms,
        })
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotPinned(self.announced_in))),
            )))
        }
    }
}

/// The handshake-signature methods, the same in both verifier traits: the provider's
/// algorithms, checked against the presented (and by then pinned) certificate.
macro_rules! signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}
pub(super) use signatures;

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    signatures!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    signatures!();
}
