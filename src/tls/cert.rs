//! The per-run self-signed certificate, go-plugin's AutoMTLS recipe.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its private key, made for one run.
#[derive(Debug)]
pub(crate) struct Identity {
    /// The certificate, DER.
    pub(crate) cert: CertificateDer<'static>,
    /// The certificate, PEM (what `PLUGIN_CLIENT_CERT` carries).
    pub(crate) pem: String,
    key: PrivatePkcs8KeyDer<'static>,
}

/// go-plugin's validity: from 30 s ago to 262980 h (about 30 years) ahead.
const BACKDATE: time::Duration = time::Duration::seconds(30);
const VALIDITY: time::Duration = time::Duration::hours(262_980);

impl Identity {
    /// A fresh self-signed certificate as go-plugin makes them (`mtls.go`): subject and SAN
    /// `localhost`, `CA=true`, key usages digital signature, key encipherment, key agreement
    /// and cert sign, EKUs server and client auth, a random 128-bit serial. The key is ECDSA
    /// P-256 rather than Go's P-521: Go accepts it (it trusts a leaf that is itself in its
    /// root pool), and it is cheaper to make and to sign with.
    pub(crate) fn generate() -> Result<Self, rcgen::Error> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose, SerialNumber,
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "polaris-plugin");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + VALIDITY;
        // Positive (top bit clear), 128 bits, as Go's `rand.Int(rand.Reader, 2^128)`. The serial
        // only has to differ between certificates; the key comes from aws-lc's CSPRNG.
        let mut serial = fastrand::u128(..).to_be_bytes();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params.self_signed(&key)?;
        Ok(Identity {
            pem: cert.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The private key, for a rustls config.
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn each_identity_is_fresh_and_its_pem_is_its_der() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.cert, b.cert);
        let from_pem = CertificateDer::from_pem_slice(a.pem.as_bytes()).unwrap();
        assert_eq!(from_pem, a.cert);
    }
}
