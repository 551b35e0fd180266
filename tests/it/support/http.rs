//! A plain HTTP/1.1 client for the admin API tests (hyper; one connection per request).

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::{Request, body::Bytes, body::Incoming};
use hyper_util::rt::TokioIo;

/// `method url` with `body`, `token` as bearer; the status and the body as text.
pub async fn http(
    method: &str,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let response = send(method, url, body, token, "application/json").await;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// `http` for a JSON answer.
pub async fn http_json(
    method: &str,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, text) = http(method, url, body, token).await;
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url}: {status} {text:?} is not JSON: {e}"));
    (status, value)
}

async fn send(
    method: &str,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
    accept: &str,
) -> hyper::Response<Incoming> {
    let uri: hyper::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(uri.path_and_query().unwrap().as_str())
        .header("host", authority)
        .header("accept", accept);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// A server-sent event stream, read event by event.
pub struct Sse {
    body: Incoming,
    buffer: String,
}

impl Sse {
    pub async fn open(url: &str) -> Self {
        let response = send("GET", url, None, None, "text/event-stream").await;
        assert_eq!(response.status(), 200, "GET {url}");
        Sse {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The `data:` of the next event, parsed as JSON; panics after `within`.
    pub async fn next(&mut self, within: Duration) -> serde_json::Value {
        tokio::time::timeout(within, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let event: String = self.buffer.drain(..end + 2).collect();
                    let data: Vec<&str> = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    if !data.is_empty() {
                        return serde_json::from_str(&data.join("\n")).unwrap();
                    }
                    continue;
                }
                let frame = self.body.frame().await.expect("the stream ended").unwrap();
                if let Some(chunk) = frame.data_ref() {
                    self.buffer.push_str(&String::from_utf8_lossy(chunk));
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    /// Skips events until one matches `want`; returns it.
    pub async fn until(
        &mut self,
        within: Duration,
        mut want: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await;
            if want(&event) {
                return event;
            }
        }
    }
}
