//! Reading the services' `/metrics` and `/healthz`.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The body of `GET path` on 127.0.0.1:`port`, or `None` if the service is not answering.
pub async fn get(port: u16, path: &str) -> Option<String> {
    request(port, path, &[]).await.map(|(_, body)| body)
}

/// Status and body of `GET path` with extra `headers` (`name: value`), or `None` if nothing answers.
pub async fn request(port: u16, path: &str, headers: &[&str]) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n{extra}\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // warp answers JSON with chunked encoding only for streams; plain replies carry content-length.
    Some((status, body.to_owned()))
}

/// The value of an unlabelled metric.
pub async fn metric(port: u16, name: &str) -> Option<u64> {
    let body = get(port, "/metrics").await?;
    body.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?.split(' ').nth(1)?.parse().ok()
}

/// The values of a labelled metric (`name{…} value`).
pub async fn labelled(port: u16, name: &str) -> Option<Vec<i64>> {
    let body = get(port, "/metrics").await?;
    let prefix = format!("{name}{{");
    Some(body.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse().ok()).collect())
}
