//! `remote.address` as a list or `dns:///`, and the fleet keys: parsed values and errors.

use std::time::Duration;

use super::support::{TempDir, error, load_in};
use crate::config::{EjectionConfig, Endpoints, FleetConfig, PluginConfig, RemoteAddress};

fn remote_with(remote: &str) -> String {
    format!("plugins:\n  - {{ name: r, mode: remote, remote: {remote} }}\n")
}

fn fleet(yaml: &str) -> (RemoteAddress, FleetConfig) {
    let dir = TempDir::new();
    let config = load_in(dir.path(), yaml).expect("valid");
    let remote = config
        .get("r")
        .and_then(PluginConfig::remote)
        .cloned()
        .expect("remote plugin r");
    (remote.address, remote.fleet.expect("a fleet"))
}

fn tcp(host: &str, port: u16) -> RemoteAddress {
    RemoteAddress::Tcp {
        host: host.into(),
        port,
    }
}

#[test]
fn a_list_of_addresses_is_a_fleet_with_the_defaults() {
    let (first, f) = fleet(&remote_with("{ address: ['10.0.0.1:8972', '[::1]:8973'] }"));
    assert_eq!(first, tcp("10.0.0.1", 8972));
    assert_eq!(
        f,
        FleetConfig {
            endpoints: Endpoints::List(vec![tcp("10.0.0.1", 8972), tcp("::1", 8973)]),
            resolve_interval: FleetConfig::DEFAULT_RESOLVE_INTERVAL,
            ejection: EjectionConfig::DEFAULT,
        }
    );
    assert_eq!(f.endpoints.to_string(), "10.0.0.1:8972, [::1]:8973");
    // Block style, in the Polaris form too.
    let (_, f) = fleet(
        "plugins:\n  - name: r\n    mode: remote\n    remote:\n      address:\n        - a:1\n        - b:2\n",
    );
    assert_eq!(f.endpoints, Endpoints::List(vec![tcp("a", 1), tcp("b", 2)]));
    let (_, f) = fleet(
        "plugin:\n  s: { option: { name: r, mode: remote, remote: { address: [a:1, b:2] } } }\n",
    );
    assert_eq!(f.endpoints, Endpoints::List(vec![tcp("a", 1), tcp("b", 2)]));
}

#[test]
fn dns_names_and_the_ejection_keys() {
    let (address, f) = fleet(&remote_with(
        "{ address: 'dns:///plugins.ns.svc.cluster.local:8972', resolve-interval: 5s, consecutive-failures: 7, base-ejection-time: 2s, max-ejection-time: 1m, max-ejection-percent: 34 }",
    ));
    // TLS's default server name is the DNS name.
    assert_eq!(address, tcp("plugins.ns.svc.cluster.local", 8972));
    assert_eq!(
        f,
        FleetConfig {
            endpoints: Endpoints::Dns {
                host: "plugins.ns.svc.cluster.local".into(),
                port: 8972
            },
            resolve_interval: Duration::from_secs(5),
            ejection: EjectionConfig {
                consecutive_failures: 7,
                base_time: Duration::from_secs(2),
                max_time: Duration::from_secs(60),
                max_percent: 34,
            },
        }
    );
    assert_eq!(
        f.endpoints.to_string(),
        "dns:///plugins.ns.svc.cluster.local:8972"
    );
    // One address stays a single connection.
    let dir = TempDir::new();
    let config = load_in(dir.path(), &remote_with("{ address: 'h:1' }")).expect("valid");
    assert_eq!(
        config
            .get("r")
            .and_then(PluginConfig::remote)
            .map(|r| r.fleet.is_some()),
        Some(false)
    );
}

#[test]
fn fleet_errors_name_the_plugin_and_the_key() {
    let cases = [
        (
            "{ address: ['a:1', 'b'] }",
            "plugin \"r\": remote.address[1]: \"b\" is not an address: it has no port; write b:PORT with a port in 1..=65535",
        ),
        (
            "{ address: [] }",
            "plugin \"r\": remote.address: [] is out of range (at least one address in the list)",
        ),
        (
            "{ address: 'dns:///unix:/run/p.sock' }",
            "plugin \"r\": remote.address: dns:///unix:/run/p.sock is out of range (dns:///name:port with a host name and a port (a unix socket has nothing to resolve))",
        ),
        (
            "{ address: 'dns:///name' }",
            "plugin \"r\": remote.address: \"dns:///name\" is not an address: it has no port; write name:PORT with a port in 1..=65535",
        ),
        (
            "{ address: [a:1, b:2], max-ejection-percent: 101 }",
            "plugin \"r\": remote.max-ejection-percent must be an integer from 0 to 100, got 101",
        ),
        (
            "{ address: [a:1, b:2], consecutive-failures: 0 }",
            "plugin \"r\": remote.consecutive-failures must be an integer from 1 to 1000, got 0",
        ),
        (
            "{ address: [a:1, b:2], base-ejection-time: 1m, max-ejection-time: 10s }",
            "plugin \"r\": remote.max-ejection-time: 10s is out of range (at least remote.base-ejection-time)",
        ),
        (
            "{ address: [a:1, b:2], resolve-interval: soon }",
            "plugin \"r\": remote.resolve-interval: \"soon\" is not a duration: expected a number at \"soon\"; durations look like 500ms, 5s, 2m or 1m30s",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(remote, expected)| {
            let got = error(&remote_with(remote));
            (got != *expected).then(|| format!("{remote}:\n got {got}\nwant {expected}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A mapping where an address goes: the parser's error, with the line and column.
    let got = error(&remote_with("{ address: { a: 1 } }"));
    assert!(
        got.contains("remote.address at line 2 column")
            && got.contains("an address or a list of addresses"),
        "{got}"
    );
}
