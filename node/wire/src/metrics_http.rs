//! `/metrics` over HTTP for both daemons: a scrape gets what `render` returns, as OpenMetrics
//! text (what prometheus-client encodes). Any path answers the same; a request head larger
//! than 8 KiB or slower than 5 s is dropped. The listener is bound by the caller at start-up,
//! so an address that cannot be bound stops the daemon before it runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The content type of prometheus-client's text encoding.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves scrapes on `listener` until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            // The request itself does not matter, only that it was sent (up to its blank line).
            let mut head = Vec::new();
            let read = async {
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                head.len() < MAX_HEAD
            };
            if !matches!(tokio::time::timeout(READ_TIMEOUT, read).await, Ok(true)) {
                return;
            }
            let body = render();
            let answer = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(answer.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Encodes `registry` as OpenMetrics text (ending in `# EOF`).
pub fn encode(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would leave a partial page, which a
    // scraper refuses, rather than a panic in the daemon.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
