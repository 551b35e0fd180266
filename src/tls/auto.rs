//! go-plugin's AutoMTLS: the host's client config and the plugin's server config, each
//! pinned to the other side's per-run certificate.

use std::sync::Arc;

use rustls::{
    ClientConfig, ServerConfig,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};

use super::{Identity, pinned::Pinned};

/// What a connection needs to speak TLS: the config and the name sent as SNI.
#[derive(Clone)]
pub(crate) struct ClientTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The host's side: present `own`, accept exactly `plugin_cert` (the DER from the plugin's
/// handshake line). SNI is `localhost`, as go-plugin's hosts send.
pub(crate) fn auto_client(
    own: &Identity,
    plugin_cert: Vec<u8>,
) -> Result<ClientTls, rustls::Error> {
    let verifier = Pinned::new(CertificateDer::from(plugin_cert), "its handshake line");
    let mut config = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![own.cert.clone()], own.key())?;
    config.alpn_protocols = super::alpn();
    Ok(ClientTls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name: ServerName::try_from("localhost").expect("a valid DNS name"),
    })
}

/// The plugin's side: present `own`, require exactly `host_cert` (from `PLUGIN_CLIENT_CERT`)
/// as the client certificate.
pub(crate) fn auto_server(
    own: &Identity,
    host_cert: CertificateDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let verifier = Pinned::new(host_cert, crate::protocol::env::CLIENT_CERT);
    let mut config = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![own.cert.clone()], own.key())?;
    config.alpn_protocols = super::alpn();
    Ok(Arc::new(config))
}

/// The host's certificate from `PLUGIN_CLIENT_CERT` (PEM; the first certificate in it).
pub(crate) fn parse_client_cert_pem(pem: &str) -> Result<CertificateDer<'static>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| "no PEM CERTIFICATE block".to_owned())?
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A certificate made as go-plugin makes them: ECDSA P-521, `CA=true`.
    fn go_like() -> (
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (
            cert.der().clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    /// Runs one TLS handshake plus an echo over an in-process pipe.
    async fn exchange(client: ClientTls, server: Arc<ServerConfig>) -> Result<(), String> {
        let (a, b) = tokio::io::duplex(16 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let serve = tokio::spawn(async move {
            let mut tls = acceptor.accept(b).await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            tls.write_all(&byte).await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())
        });
        let talk = async {
            let mut tls = client
                .connector
                .connect(client.server_name.clone(), a)
                .await
                .map_err(|e| crate::tls::explain(&e))?;
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            tls.write_all(b"x").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())
        };
        let talked = talk.await;
        let served = serve.await.unwrap();
        talked.and(served)
    }

    #[tokio::test]
    async fn host_and_plugin_pinned_to_each_other_talk() {
        let host = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let client = auto_client(&host, plugin.cert.to_vec()).unwrap();
        let server = auto_server(&plugin, host.cert.clone()).unwrap();
        exchange(client, server).await.unwrap();
    }

    #[tokio::test]
    async fn a_plugin_presenting_another_certificate_than_announced_is_refused() {
        let host = Identity::generate().unwrap();
        let announced = Identity::generate().unwrap();
        let presented = Identity::generate().unwrap();
        let client = auto_client(&host, announced.cert.to_vec()).unwrap();
        let server = auto_server(&presented, host.cert.clone()).unwrap();
        let e = exchange(client, server).await.unwrap_err();
        assert!(
            e.contains("other than the one announced in its handshake line"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_host_presenting_another_certificate_than_plugin_client_cert_is_refused() {
        let host = Identity::generate().unwrap();
        let impostor = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let client = auto_client(&impostor, plugin.cert.to_vec()).unwrap();
        let server = auto_server(&plugin, host.cert.clone()).unwrap();
        assert!(exchange(client, server).await.is_err());
    }

    #[tokio::test]
    async fn go_style_p521_ca_certificates_verify() {
        let (host_cert, host_key) = go_like();
        let (plugin_cert, plugin_key) = go_like();
        let mut server = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .unwrap()
            .with_client_cert_verifier(Pinned::new(host_cert.clone(), "test"))
            .with_single_cert(vec![plugin_cert.clone()], plugin_key)
            .unwrap();
        server.alpn_protocols = crate::tls::alpn();
        let mut client = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Pinned::new(plugin_cert, "test"))
            .with_client_auth_cert(vec![host_cert], host_key)
            .unwrap();
        client.alpn_protocols = crate::tls::alpn();
        let client = ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server_name: ServerName::try_from("localhost").unwrap(),
        };
        exchange(client, Arc::new(server)).await.unwrap();
    }

    #[test]
    fn plugin_client_cert_must_be_pem() {
        let host = Identity::generate().unwrap();
        assert_eq!(parse_client_cert_pem(&host.pem).unwrap(), host.cert);
        assert!(parse_client_cert_pem("junk").is_err());
        assert!(parse_client_cert_pem("").is_err());
    }
}
