//! TLS and mTLS for remote plugins: `remote.tls` against `rate-limit-server-v3 --tls-cert`,
//! with a CA, server and client certificates made here (rcgen).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use polaris_plugin::{
    PluginHandle, PluginState, Registry,
    proto::polaris::{RateLimitPluginRequest, RateLimitPluginResponse, RatelimitType},
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{remote_example::RemoteExample, support::scratch_dir};

/// A certificate authority for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (IP addresses become IP SANs): `(certificate PEM, key PEM)`.
    fn leaf(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> (String, String) {
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![usage];
        let now = time::OffsetDateTime::now_utc();
        if expired {
            params.not_before = now - time::Duration::days(2);
            params.not_after = now - time::Duration::days(1);
        } else {
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn server(&self, names: &[&str], expired: bool) -> (String, String) {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth, expired)
    }

    fn client(&self) -> (String, String) {
        self.leaf(&["host"], ExtendedKeyUsagePurpose::ClientAuth, false)
    }
}

/// Writes `files` into `dir`; returns the paths in order.
fn write(dir: &Path, files: &[(&str, &str)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// Writes the server CA and a client certificate into `dir`; the `remote.tls` mapping
/// naming them.
fn mtls_files(dir: &Path, ca: &Ca, client: &(String, String)) -> String {
    let files = write(
        dir,
        &[
            ("ca.pem", &ca.pem()),
            ("client.pem", &client.0),
            ("client.key", &client.1),
        ],
    );
    format!(
        "{{ ca-file: {}, cert-file: {}, key-file: {} }}",
        files[0].display(),
        files[1].display(),
        files[2].display()
    )
}

/// A TLS example server with `server` as its certificate, requiring clients signed by
/// `client_ca` when given.
fn tls_server(dir: &Path, server: &(String, String), client_ca: Option<&Ca>) -> RemoteExample {
    tls_server_at("127.0.0.1:0", dir, server, client_ca)
}

/// [`tls_server`] on `address`.
fn tls_server_at(
    address: &str,
    dir: &Path,
    server: &(String, String),
    client_ca: Option<&Ca>,
) -> RemoteExample {
    let paths = write(dir, &[("server.pem", &server.0), ("server.key", &server.1)]);
    let mut args = vec![
        "--tls-cert".to_owned(),
        paths[0].display().to_string(),
        "--tls-key".to_owned(),
        paths[1].display().to_string(),
    ];
    if let Some(ca) = client_ca {
        let ca = write(dir, &[("client-ca.pem", &ca.pem())]);
        args.extend(["--client-ca".to_owned(), ca[0].display().to_string()]);
    }
    let args = args.iter().map(String::as_str).collect::<Vec<_>>();
    RemoteExample::start(address, &args)
}

/// A remote plugin `name` at `address` with `tls` (YAML flow mapping, or empty for none),
/// reconnecting quickly.
async fn registry(name: &str, address: &str, tls: &str) -> Registry {
    let tls = if tls.is_empty() {
        String::new()
    } else {
        format!("      tls: {tls}\n")
    };
    let yaml = format!(
        "plugins:\n  - name: {name}\n    mode: remote\n    call-timeout: 2s\n    remote:\n      address: {address}\n      backoff: {{ initial: 10ms, max: 50ms }}\n{tls}"
    );
    Registry::from_yaml_str(&yaml).await.unwrap()
}

fn request() -> RateLimitPluginRequest {
    RateLimitPluginRequest {
        r#type: RatelimitType::ApiRatelimit as i32,
        key: "/k".into(),
    }
}

async fn call(plugin: &PluginHandle) -> Result<bool, String> {
    plugin
        .call_typed::<_, RateLimitPluginResponse>(&request())
        .await
        .map(|r| r.allow)
        .map_err(|e| e.to_string())
}

/// Waits (bounded) for the plugin to be ready, then checks that a call goes through.
async fn ready_and_calls(plugin: &PluginHandle) {
    let ready = plugin.wait_ready(Duration::from_secs(20)).await;
    ready.unwrap_or_else(|e| panic!("ready: {e}; {:?}", plugin.status()));
    assert_eq!(call(plugin).await, Ok(true));
}

/// Replaces the client certificate files with one signed by `ca`, key first (the host
/// reads both at each dial).
fn rotate(dir: &Path, ca: &Ca) {
    let new = ca.client();
    write(dir, &[("client.key", &new.1), ("client.pem", &new.0)]);
}

/// Waits (bounded) until a dial has failed; returns the status's `last_error`.
async fn dial_error(plugin: &PluginHandle) -> String {
    tokio::time::timeout(
        Duration::from_secs(20),
        plugin
            .watch()
            .wait_for(|s| matches!(s, PluginState::Unreachable { .. })),
    )
    .await
    .unwrap_or_else(|_| panic!("a failed dial: {:?}", plugin.status()))
    .unwrap();
    plugin.status().last_error.expect("a dial error")
}

/// A plugin that cannot connect: the status's last error and the call's error both say
/// `why`; the call's error names the plugin.
async fn refused(registry: &Registry, name: &str, why: &str) -> String {
    let plugin = registry.get(name).unwrap();
    let last = dial_error(&plugin).await;
    assert!(last.contains(why), "last_error {last:?} should say {why:?}");
    let call = call(&plugin).await.expect_err("a call fails");
    assert!(call.contains(name), "{call:?} should name the plugin");
    assert!(call.contains(why), "{call:?} should say {why:?}");
    registry.destroy().await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_chain_calls_over_tls_and_mtls() {
    let dir = scratch_dir("rtls-good");
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = tls_server(
        &dir,
        &ca.server(&["127.0.0.1", "localhost"], false),
        Some(&client_ca),
    );
    let client = client_ca.client();
    let tls = mtls_files(&dir, &ca, &client);
    let registry = registry("good", &format!("https://{}", server.addr), &tls).await;
    let plugin = registry.get("good").unwrap();
    ready_and_calls(&plugin).await;
    let address = plugin.status().address.unwrap();
    assert!(address.starts_with("https://"), "{address}");
    registry.destroy().await;
}

/// A plugin `name` whose server presents `server_cert` (requiring clients of `client_ca`
/// when given), with `trusted` as `ca-file` and `extra` keys: it is refused for `why`.
async fn refused_case(
    name: &str,
    server_cert: &(String, String),
    client_ca: Option<&Ca>,
    trusted: &Ca,
    extra: &str,
    why: &str,
) {
    let dir = scratch_dir(name);
    let server = tls_server(&dir, server_cert, client_ca);
    let files = write(&dir, &[("trusted.pem", &trusted.pem())]);
    let tls = format!("{{ ca-file: {}{extra} }}", files[0].display());
    let registry = registry(name, &server.addr.to_string(), &tls).await;
    refused(&registry, name, why).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_ca_is_refused() {
    let ca = Ca::new("server CA");
    let cert = ca.server(&["127.0.0.1"], false);
    let other = Ca::new("another CA");
    refused_case("wrong-ca", &cert, None, &other, "", "UnknownIssuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let ca = Ca::new("server CA");
    let cert = ca.server(&["127.0.0.1"], true);
    refused_case("expired", &cert, None, &ca, "", "certificate expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    let ca = Ca::new("server CA");
    // The certificate is for 127.0.0.1; the host expects plugin.example.
    let cert = ca.server(&["127.0.0.1"], false);
    let extra = ", server-name: plugin.example";
    let why = "certificate not valid for name";
    refused_case("wrong-name", &cert, None, &ca, extra, why).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_without_a_client_certificate_is_refused() {
    let ca = Ca::new("server CA");
    let cert = ca.server(&["127.0.0.1"], false);
    let client_ca = Ca::new("client CA");
    let why = "the plugin asked for a client certificate (mTLS) and remote.tls has none";
    refused_case("no-client-cert", &cert, Some(&client_ca), &ca, "", why).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_config_cannot_call_a_tls_server() {
    let dir = scratch_dir("rtls-plain");
    let ca = Ca::new("server CA");
    let server = tls_server(&dir, &ca.server(&["127.0.0.1"], false), None);
    let registry = registry("plaintext", &server.addr.to_string(), "").await;
    let plugin = registry.get("plaintext").unwrap();
    let last = dial_error(&plugin).await;
    assert!(call(&plugin).await.is_err());
    assert!(plugin.status().state != PluginState::Ready, "{last}");
    registry.destroy().await;
}

/// Rotation: the server trusts only the new client CA; the host starts with a client
/// certificate of the old one (refused), then its files are replaced and the next redial
/// presents the new certificate, without a restart or reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_certificate_is_used_by_the_next_connection() {
    let dir = scratch_dir("rtls-rotate");
    let ca = Ca::new("server CA");
    let old_ca = Ca::new("old client CA");
    let new_ca = Ca::new("new client CA");
    let server = tls_server(&dir, &ca.server(&["127.0.0.1"], false), Some(&new_ca));
    let old = old_ca.client();
    let tls = mtls_files(&dir, &ca, &old);
    let registry = registry("rotate", &server.addr.to_string(), &tls).await;
    let plugin = registry.get("rotate").unwrap();
    // The old certificate is refused by the server (its alert, or a broken pipe when the
    // host's first write comes before it reads the alert).
    let before = dial_error(&plugin).await;
    assert!(!before.is_empty());
    rotate(&dir, &new_ca);
    ready_and_calls(&plugin).await;
    registry.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_accepts_a_certificate_no_ca_vouches_for() {
    let dir = scratch_dir("rtls-insecure");
    let ca = Ca::new("unknown CA");
    let server = tls_server(&dir, &ca.server(&["elsewhere.example"], false), None);
    let registry = registry(
        "insecure",
        &format!("tls://{}", server.addr),
        "{ insecure-skip-verify: true }",
    )
    .await;
    let plugin = registry.get("insecure").unwrap();
    ready_and_calls(&plugin).await;
    registry.destroy().await;
}

/// Rotation of a working connection: the server is replaced by one that trusts only the new
/// client CA, the host's files are rotated meanwhile, and the host's reconnect presents the
/// new certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_after_rotation_presents_the_new_certificate() {
    let dir = scratch_dir("rtls-rotate-live");
    let ca = Ca::new("server CA");
    let old_ca = Ca::new("old client CA");
    let new_ca = Ca::new("new client CA");
    let server_cert = ca.server(&["127.0.0.1"], false);
    let mut server = tls_server(&dir, &server_cert, Some(&old_ca));
    let addr = server.addr;
    let tls = mtls_files(&dir, &ca, &old_ca.client());
    let registry = registry("rotate-live", &addr.to_string(), &tls).await;
    let plugin = registry.get("rotate-live").unwrap();
    ready_and_calls(&plugin).await;
    // Rotate the files, then replace the server by one that accepts only the new CA.
    rotate(&dir, &new_ca);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _new_server = tls_server_at(&addr.to_string(), &dir, &server_cert, Some(&new_ca));
    // The restart dials again now: the new server accepts only the new certificate.
    plugin.restart().await.unwrap();
    ready_and_calls(&plugin).await;
    registry.destroy().await;
}
