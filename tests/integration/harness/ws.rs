//! A websocket test client of the dashboard protocol (raw frames as JSON values).

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Why a handshake failed: the HTTP status, if the server answered one.
pub fn refused_status(e: &tungstenite::Error) -> Option<u16> {
    match e {
        tungstenite::Error::Http(r) => Some(r.status().as_u16()),
        _ => None,
    }
}

impl WsClient {
    /// Connects to `/ws` on `port` with an optional token and Origin header.
    pub async fn connect(port: u16, token: Option<&str>, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        let url = match token {
            Some(t) => format!("ws://127.0.0.1:{port}/ws?token={t}"),
            None => format!("ws://127.0.0.1:{port}/ws"),
        };
        let mut request = url.into_client_request()?;
        if let Some(o) = origin {
            request.headers_mut().insert("origin", o.parse().expect("origin header"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { stream })
    }

    pub async fn send(&mut self, value: Value) {
        self.stream.send(Message::text(value.to_string())).await.expect("send request");
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.expect("send text");
    }

    /// The next JSON frame, or `None` at the deadline or when the socket closes.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let m = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??.ok()?;
            match m {
                Message::Text(t) => return serde_json::from_str(&t).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next frame of `kind` (skipping others), panicking at the deadline.
    pub async fn expect(&mut self, kind: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(f) if f["type"] == kind => return f,
                Some(_) => continue,
                None => panic!("no {kind} frame within {timeout:?}"),
            }
        }
    }

    /// Frames until `done` says so (all of them, in order), panicking at the deadline.
    pub async fn collect_until(&mut self, timeout: Duration, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut frames = Vec::new();
        while !done(&frames) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(f) => frames.push(f),
                None => panic!("frames stopped before the condition held; got {}: {frames:?}", frames.len()),
            }
        }
        frames
    }
}
