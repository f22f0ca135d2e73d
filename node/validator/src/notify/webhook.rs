//! One webhook call: POST a JSON body to an `http://` or `https://` URL, within a deadline.
//!
//! hyper's HTTP/1 client over a fresh connection per call (notifications are a few per rollout;
//! a pooled client would buy nothing), TLS through rustls with the web PKI roots.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a call did not get an answer (an answer of any status is not an error here).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the URL has no host")]
    NoHost,
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error("TLS with {host}: {detail}")]
    Tls { host: String, detail: String },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What a call's answer means for the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: delivered.
    Delivered,
    /// 5xx, 408, 429: try again later.
    Retry(StatusCode),
    /// Any other status (a 4xx: the sink refuses this body, and would refuse it again).
    Refused(StatusCode),
}

impl Answer {
    pub fn of(status: StatusCode) -> Self {
        if status.is_success() {
            Answer::Delivered
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Answer::Retry(status)
        } else {
            Answer::Refused(status)
        }
    }
}

/// POSTs `body` to `url` with `Idempotency-Key: id`; the whole call (connect, TLS, answer)
/// within `deadline`.
pub async fn post_json(
    url: &Uri,
    tls: &Arc<rustls::ClientConfig>,
    id: &str,
    body: Vec<u8>,
    deadline: Duration,
) -> Result<StatusCode, WebhookError> {
    tokio::time::timeout(deadline, post(url, tls, id, body))
        .await
        .map_err(|_| WebhookError::Timeout(deadline))?
}

async fn post(
    url: &Uri,
    tls: &Arc<rustls::ClientConfig>,
    id: &str,
    body: Vec<u8>,
) -> Result<StatusCode, WebhookError> {
    let host = url.host().ok_or(WebhookError::NoHost)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| WebhookError::Connect {
            addr: format!("{host}:{port}"),
            detail: e.to_string(),
        })?;
    let authority = url.authority().map_or(host, |a| a.as_str()).to_string();
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "scbe-node")
        .header("idempotency-key", id)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    if !https {
        return exchange(tcp, request).await;
    }
    let name = ServerName::try_from(bare.to_string()).map_err(|e| WebhookError::Tls {
        host: bare.to_string(),
        detail: e.to_string(),
    })?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| WebhookError::Tls {
            host: bare.to_string(),
            detail: e.to_string(),
        })?;
    exchange(stream, request).await
}

/// One request on a fresh HTTP/1 connection; the answer's body is drained (bounded) and
/// dropped.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<StatusCode, WebhookError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    tokio::spawn(conn);
    let answer = send
        .send_request(request)
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    let status = answer.status();
    let _ = http_body_util::Limited::new(answer.into_body(), 64 * 1024)
        .collect()
        .await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted_into_delivered_retry_and_refused() {
        for (code, answer) in [
            (200, Answer::Delivered),
            (204, Answer::Delivered),
            (500, Answer::Retry(StatusCode::INTERNAL_SERVER_ERROR)),
            (503, Answer::Retry(StatusCode::SERVICE_UNAVAILABLE)),
            (429, Answer::Retry(StatusCode::TOO_MANY_REQUESTS)),
            (408, Answer::Retry(StatusCode::REQUEST_TIMEOUT)),
            (400, Answer::Refused(StatusCode::BAD_REQUEST)),
            (404, Answer::Refused(StatusCode::NOT_FOUND)),
        ] {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(Answer::of(status), answer, "{code}");
        }
    }
}
