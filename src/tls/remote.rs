//! TLS to remote plugins (`remote.tls`): the plugin's certificate verified against a CA
//! file (webpki: chain, validity, name), an optional client certificate for mTLS, and the
//! files read again at each connection attempt so that rotated ones take effect without a
//! restart.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use parking_lot::Mutex;
use rustls::{
    ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        ResolvesClientCert,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
    sign::CertifiedKey,
};

use super::ClientTls;
use crate::config::{RemoteAddress, RemoteTlsConfig};

/// A `remote.tls` setting that could not be turned into a TLS config: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFileError {
    /// The key under `remote.tls` (`ca-file`, `cert-file`, `key-file`, `server-name`).
    pub(crate) key: &'static str,
    pub(crate) message: String,
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "remote.tls.{}: {}", self.key, self.message)
    }
}

fn fail(key: &'static str, message: impl Into<String>) -> TlsFileError {
    TlsFileError {
        key,
        message: message.into(),
    }
}

/// The SNI name and the name the certificate must carry: `server-name`, else the address's
/// host (`localhost` for a unix socket).
pub(crate) fn server_name(
    config: &RemoteTlsConfig,
    address: &RemoteAddress,
) -> Result<ServerName<'static>, TlsFileError> {
    let name = match (&config.server_name, address) {
        (Some(name), _) => name.clone(),
        (None, RemoteAddress::Tcp { host, .. }) => host.clone(),
        (None, RemoteAddress::Unix(_)) => "localhost".to_owned(),
    };
    ServerName::try_from(name.clone()).map_err(|_| {
        fail(
            "server-name",
            format!("{name:?} is not a DNS name or an IP address"),
        )
    })
}

/// The files' contents, as read for one connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Files {
    ca: Option<Vec<u8>>,
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
}

fn read(key: &'static str, path: Option<&Path>) -> Result<Option<Vec<u8>>, TlsFileError> {
    path.map(|path| {
        std::fs::read(path).map_err(|e| fail(key, format!("cannot read {}: {e}", path.display())))
    })
    .transpose()
}

fn certs(
    key: &'static str,
    path: Option<&Path>,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let shown = path.map_or_else(String::new, |p| format!("{}: ", p.display()));
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(key, format!("{shown}not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail(
            key,
            format!("{shown}no PEM CERTIFICATE block in the file"),
        ));
    }
    Ok(certs)
}

/// Builds the client TLS config from the files' contents.
fn build(
    config: &RemoteTlsConfig,
    name: &ServerName<'static>,
    files: &Files,
    asked: &Arc<NoClientCert>,
) -> Result<ClientTls, TlsFileError> {
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(super::VERSIONS)
        .map_err(|e| fail("ca-file", e.to_string()))?;
    let builder = if config.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        let Some(pem) = &files.ca else {
            return Err(fail(
                "ca-file",
                "is required unless insecure-skip-verify is true",
            ));
        };
        let mut roots = RootCertStore::empty();
        for cert in certs("ca-file", config.ca_file.as_deref(), pem)? {
            roots
                .add(cert)
                .map_err(|e| fail("ca-file", format!("not a usable CA certificate: {e}")))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut client = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = certs("cert-file", config.cert_file.as_deref(), cert)?;
            let shown = config
                .key_file
                .as_deref()
                .map_or_else(String::new, |p| format!("{}: ", p.display()));
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                fail(
                    "key-file",
                    format!("{shown}no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail("key-file", format!("does not fit cert-file: {e}")))?
        }
        (None, None) => builder.with_client_cert_resolver(asked.clone()),
        (Some(_), None) => {
            return Err(fail("key-file", "cert-file is set: set both or neither"));
        }
        (None, Some(_)) => {
            return Err(fail("cert-file", "key-file is set: set both or neither"));
        }
    };
    client.alpn_protocols = super::alpn();
    Ok(ClientTls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        server_name: name.clone(),
    })
}

/// Reads the files and builds the config once: what validation checks.
pub(crate) fn load(
    config: &RemoteTlsConfig,
    address: &RemoteAddress,
) -> Result<ClientTls, TlsFileError> {
    RemoteTls::new(config.clone(), address).client()
}

/// No client certificate, but remembers whether a server asked for one: a TLS 1.3 server
/// that requires one refuses only after the handshake, with an alert the client may not
/// even read (its next write can fail first), so this is what says why.
#[derive(Debug, Default)]
struct NoClientCert(AtomicBool);

impl ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// A remote plugin's TLS settings at run time: [`client`](Self::client) reads the files at
/// each connection attempt and rebuilds the config when their contents changed.
pub(crate) struct RemoteTls {
    config: RemoteTlsConfig,
    name: Result<ServerName<'static>, TlsFileError>,
    built: Mutex<Option<(Files, ClientTls)>>,
    asked: Arc<NoClientCert>,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTls")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RemoteTls {
    pub(crate) fn new(config: RemoteTlsConfig, address: &RemoteAddress) -> Self {
        Self {
            name: server_name(&config, address),
            config,
            built: Mutex::new(None),
            asked: Arc::default(),
        }
    }

    /// Why a failed connection may have failed, beyond its error: a plugin asked for a
    /// client certificate and none is configured.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        self.asked.0.load(Ordering::Relaxed).then_some(
            "the plugin asked for a client certificate (mTLS) and remote.tls has none: set cert-file and key-file",
        )
    }

    /// The config for the next connection: the files as they are now (a changed file, such
    /// as a rotated certificate, makes a new config; unchanged ones reuse the last one and
    /// its TLS session cache).
    pub(crate) fn client(&self) -> Result<ClientTls, TlsFileError> {
        let name = self.name.as_ref().map_err(Clone::clone)?;
        let files = Files {
            ca: read("ca-file", self.config.ca_file.as_deref())?,
            cert: read("cert-file", self.config.cert_file.as_deref())?,
            key: read("key-file", self.config.key_file.as_deref())?,
        };
        let mut built = self.built.lock();
        if let Some((read, client)) = &*built
            && *read == files
        {
            return Ok(client.clone());
        }
        let client = build(&self.config, name, &files, &self.asked)?;
        if built.is_some() {
            tracing::info!(server_name = ?name, "remote.tls files changed: the next connection uses them");
        }
        *built = Some((files, client.clone()));
        Ok(client)
    }
}

/// `insecure-skip-verify: true`: any certificate, any name; the handshake signature is still
/// checked against the presented certificate.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    super::pinned::signatures!();
}
