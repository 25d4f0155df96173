//! A minimal HTTP/1.1 GET responder for operational endpoints (`/metrics`, `/healthz`): one
//! request per connection, plain-text bodies. (The dashboard, which needs websockets, uses warp.)

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;

/// Answers `GET <path>` with `render(path)` (404 when `None`) until `shutdown`.
pub async fn serve_get<F>(listener: TcpListener, render: F, shutdown: CancellationToken)
where
    F: Fn(&str) -> Option<String> + Send + Sync + 'static,
{
    serve_get_with_status(listener, move |path: &str| render(path).map(|body| (200, body)), shutdown).await
}

/// [`serve_get`] where `render` also chooses the status: `(200 | 503, body)` (a `/readyz` that
/// turns red); any other code is answered as 500.
pub async fn serve_get_with_status<F>(listener: TcpListener, render: F, shutdown: CancellationToken)
where
    F: Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
{
    let render = std::sync::Arc::new(render);
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_REQUEST];
            let mut len = 0;
            while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let mut parts = head.split_whitespace();
            let (status, body) = match (parts.next(), parts.next()) {
                (Some("GET"), Some(target)) => {
                    let path = target.split('?').next().unwrap_or(target);
                    match render(path) {
                        Some((200, body)) => ("200 OK", body),
                        Some((503, body)) => ("503 Service Unavailable", body),
                        Some((_, body)) => ("500 Internal Server Error", body),
                        None => ("404 Not Found", "not found\n".to_owned()),
                    }
                }
                _ => ("405 Method Not Allowed", "only GET\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
