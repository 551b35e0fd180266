//! The remote example (`rate-limit-server-v3`): a plain gRPC server at an address.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
};

use polaris_plugin::{
    codec,
    handshake::PluginAddr,
    proto::polaris::{
        RateLimitPluginRequest, RateLimitPluginResponse, plugin_client::PluginClient,
    },
};

use crate::support::{assert_serving, bin, connect};

/// A running `rate-limit-server-v3`, killed on drop.
pub struct RemoteExample {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl RemoteExample {
    /// Starts it on `address` (`127.0.0.1:0` for any free port) and reads the
    /// bound address from its log.
    pub fn start(address: &str, args: &[&str]) -> Self {
        let mut child = Command::new(bin("rate-limit-server-v3"))
            .args(["--address", address])
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut lines = stderr.lines();
        let addr = loop {
            let line = lines.next().expect("v3 exited before serving").unwrap();
            if let Some((_, rest)) = line.split_once("addr=") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        RemoteExample { child, addr }
    }
}

impl Drop for RemoteExample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serves_plugin_and_health_over_tcp() {
    let server = RemoteExample::start("127.0.0.1:0", &["--burst", "1", "--rate", "0.001"]);
    let channel = connect(&PluginAddr::Tcp(server.addr)).await;
    assert_serving(channel.clone()).await;
    let mut client = PluginClient::new(channel);
    let mut allowed = vec![];
    for _ in 0..2 {
        let reply = client
            .call(codec::marshal_request(&RateLimitPluginRequest {
                r#type: 0,
                key: "k".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        allowed.push(
            codec::unmarshal_response::<RateLimitPluginResponse>(&reply)
                .unwrap()
                .allow,
        );
    }
    assert_eq!(allowed, [true, false]);
}

#[test]
fn default_address_matches_the_go_example() {
    let out = Command::new(bin("rate-limit-server-v3"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0.0.0.0:8972"));
}
