//! A minimal HTTP endpoint: GET /metrics (Prometheus text) and GET /health. Small enough
//! that a web framework would cost more in build time than it saves.

use prometheus::Registry;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What an endpoint serves: the pipeline's metrics or the detector's.
pub trait Exposition: Send + Sync + 'static {
    /// Prometheus text.
    fn render(&self) -> String;
    /// Why /health answers 503, if it does.
    fn degraded(&self) -> Option<&'static str>;
}

/// Prometheus text of a registry.
pub fn render(registry: &Registry) -> String {
    let mut buf = String::new();
    let enc = prometheus::TextEncoder::new();
    if let Err(e) = enc.encode_utf8(&registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "metrics encoding failed");
    }
    buf
}

/// Binds now (so a bad address fails at startup) and serves until the runtime stops.
pub async fn serve<E: Exposition>(
    addr: &str,
    metrics: Arc<E>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/");
                let (status, ctype, body) = match path {
                    "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                    "/health" | "/healthz" if metrics.degraded().is_some() => (
                        "503 Service Unavailable",
                        "text/plain",
                        metrics.degraded().unwrap_or_default().to_string(),
                    ),
                    "/health" | "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
                    _ => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(local)
}
