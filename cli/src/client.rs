//! A client of a running host's admin API (HTTP/1.1 over TCP, one connection per request).

use std::{fmt, path::Path, time::Duration};

use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    body::{Bytes, Incoming},
    header,
};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long to wait for a host to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the host's admin API is, and the token to show it.
#[derive(Clone)]
pub(crate) struct Admin {
    /// `host:port`.
    authority: String,
    token: Option<String>,
}

impl fmt::Display for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// Nothing answers at the address: no host runs there.
    NoHost(String),
    /// The host answered with an error (`{"error": ...}`) or something unexpected.
    Http(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoHost(m) | ClientError::Http(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

impl Admin {
    /// `url` is `http://host:port` (a trailing `/` is fine) or `host:port`.
    pub(crate) fn new(url: &str, token_file: Option<&Path>) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/');
        if url.starts_with("https://") || rest.contains('/') || rest.is_empty() {
            return Err(format!(
                "--admin {url:?}: expected http://HOST:PORT, such as http://127.0.0.1:9190 (the admin API speaks plain HTTP; put TLS in front of it with a proxy)"
            ));
        }
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("token file {}: {e}", path.display()))?;
                Some(text.trim().to_owned())
            }
            None => None,
        };
        Ok(Admin {
            authority: rest.to_owned(),
            token,
        })
    }

    /// The JSON answer to `method path` with `body`; an error status is an error naming
    /// the host's message.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let response = self.send(method, path, body, "application/json").await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(format!("{self}{path}: reading the answer: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Http(format!(
                "{self}{path} answered {status} with something that is not JSON ({e}); is this a polaris-plugin host?"
            ))
        })?;
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Http(match value["error"].as_str() {
            Some(message) => format!("{message} (HTTP {status})"),
            None => format!("{self}{path} answered {status}: {value}"),
        }))
    }

    /// The response to `GET path` as it streams (for server-sent events).
    pub(crate) async fn stream(&self, path: &str) -> Result<Incoming, ClientError> {
        let response = self
            .send(Method::GET, path, None, "text/event-stream")
            .await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
            let text = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
            return Err(ClientError::Http(format!(
                "{self}{path} answered {status}: {}",
                text.unwrap_or_default()
            )));
        }
        Ok(response.into_body())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        accept: &str,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let no_host =
            |e: &dyn fmt::Display| ClientError::NoHost(format!("no host answers at {self} ({e})"));
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| no_host(&format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| no_host(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| no_host(&e))?;
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, accept);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| ClientError::Http(format!("{self}{path}: {e}")))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Http(format!("{self}{path}: {e}")))
    }
}

/// Splits a server-sent event stream into the `data:` of each event. Bytes are kept until
/// a line is complete, so a character cut between chunks stays whole.
#[derive(Default)]
pub(crate) struct SseLines {
    buffer: Vec<u8>,
    data: String,
}

impl SseLines {
    /// Feeds a chunk; returns the data of every event it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(std::mem::take(&mut self.data));
                }
            } else if let Some(data) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_across_chunks() {
        let mut s = SseLines::default();
        assert!(s.push(b": keep-alive\n\nid: 1\nda").is_empty());
        assert_eq!(
            s.push(b"ta: {\"a\":1}\n\nid: 2\r\ndata: x\r\ndata: y\r\n\r\n"),
            ["{\"a\":1}", "x\ny"]
        );
    }

    proptest::proptest! {
        /// However the stream is cut into chunks, the same events come out.
        #[test]
        fn chunking_does_not_change_the_events(
            events in proptest::collection::vec("[a-zé→{}\":0-9 ]{0,12}", 0..6),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let mut stream = String::from(": keep-alive\n\n");
            for (i, e) in events.iter().enumerate() {
                stream.push_str(&format!("id: {i}\ndata: {e}\n\n"));
            }
            let whole = SseLines::default().push(stream.as_bytes());
            let expected: Vec<String> = events.iter().filter(|e| !e.is_empty()).cloned().collect();
            proptest::prop_assert_eq!(&whole, &expected);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut lines = SseLines::default();
            let mut got = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                got.extend(lines.push(&stream.as_bytes()[at..cut]));
                at = cut;
            }
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn admin_urls_are_checked() {
        assert_eq!(
            Admin::new("http://127.0.0.1:9190/", None)
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9190"
        );
        assert_eq!(
            Admin::new("localhost:1", None).unwrap().to_string(),
            "http://localhost:1"
        );
        assert!(Admin::new("https://x:1", None).is_err());
        assert!(Admin::new("http://x:1/api", None).is_err());
    }
}
