//! `convene healthcheck`: one plain HTTP/1.1 GET of `/readyz`, no client
//! library needed in the binary.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ok when `GET {url}/readyz` answers 200 within `timeout`.
pub async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("only http:// URLs are supported, got '{url}'"))?;
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let request = format!(
        "GET {base}/readyz HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: convene-healthcheck\r\n\r\n"
    );
    let exchange = async {
        let mut stream =
            TcpStream::connect(authority).await.map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or("").to_string();
        match line.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            Some(code) => Err(format!("{url}/readyz answered {code}")),
            None => Err(format!("{url}/readyz did not answer HTTP")),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url}/readyz did not answer within {} s", timeout.as_secs()))?
}
