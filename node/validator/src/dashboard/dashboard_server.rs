//! The dashboard over HTTP/1: the page and its two assets, `/api/state` (one
//! [`DashboardState`] as JSON) and `/api/stream` (server-sent events: the state again whenever
//! the read model, the events or the fleet's health moved, at most [`UPDATES_PER_SECOND`] a
//! second). Bounded: connections, streams, request heads and header time are capped, and a
//! stream whose reader stops reading is dropped rather than buffered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use super::{DashboardState, PeerPositions};
use crate::reads::Reads;

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// Connections served at once; more wait in the listener's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// Live streams at once (each is a browser tab); more are answered 503.
pub const MAX_STREAMS: usize = 32;
/// State pushes per second on one stream, at most.
pub const UPDATES_PER_SECOND: u64 = 4;
/// A stream with nothing new still sends a comment this often (proxies close idle streams).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Even with no change signalled, the state is compared again this often (agents' report ages
/// and stale verdicts move with time alone).
const RECHECK: Duration = Duration::from_secs(1);
const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Content-Security-Policy of every answer: nothing from anywhere but this validator, no inline
/// script or style (event details are requesters' text; the page only ever sets them as text).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

type Body = BoxBody<Bytes, Infallible>;

/// What every connection shares.
pub struct Dashboard {
    pub reads: Reads,
    /// Required on `/api/` routes when set.
    pub token: Option<String>,
    /// One permit per open stream (the peer poller asks peers only while one is taken).
    pub streams: Arc<Semaphore>,
    pub peers: Arc<PeerPositions>,
}

impl Dashboard {
    pub fn new(reads: Reads, token: Option<String>) -> Self {
        Self {
            reads,
            token,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            peers: Arc::default(),
        }
    }

    async fn answer(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "the dashboard is read-only\n",
            );
        }
        let path = req.uri().path();
        match path {
            "/" | "/index.html" => asset(INDEX_HTML, "text/html; charset=utf-8"),
            "/dashboard.js" => asset(DASHBOARD_JS, "text/javascript; charset=utf-8"),
            "/dashboard.css" => asset(DASHBOARD_CSS, "text/css; charset=utf-8"),
            "/api/state" | "/api/stream" if !self.authorized(&req) => plain(
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open it as /?token=<the token in \
                 dashboard.token_file>\n",
            ),
            "/api/state" => json(state_json(&self.reads, &self.peers).await),
            "/api/stream" => self.stream(),
            _ => plain(StatusCode::NOT_FOUND, "no such page\n"),
        }
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        authorized(&self.token, req)
    }

    fn stream(self: Arc<Self>) -> Response<Body> {
        let Ok(permit) = Arc::clone(&self.streams).try_acquire_owned() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many live dashboards on this validator; try again later\n",
            );
        };
        // Small: a reader that stops reading ends its stream instead of growing a buffer.
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let reads = self.reads.clone();
        let peers = Arc::clone(&self.peers);
        tokio::spawn(async move {
            let _permit = permit;
            let mut model = reads.model.clone();
            let mut events = reads.events.subscribe();
            let mut last = String::new();
            let mut last_sent = Instant::now();
            let pace = Duration::from_millis(1000 / UPDATES_PER_SECOND);
            loop {
                model.borrow_and_update();
                events.borrow_and_update();
                let state = state_json(&reads, &peers).await;
                let frame = if state != last {
                    let f = format!("event: state\ndata: {state}\n\n");
                    last = state;
                    Some(f)
                } else if last_sent.elapsed() >= KEEP_ALIVE {
                    Some(": still here\n\n".to_string())
                } else {
                    None
                };
                if let Some(f) = frame {
                    if tx.try_send(Bytes::from(f)).is_err() {
                        return; // gone, or not reading
                    }
                    last_sent = Instant::now();
                }
                tokio::select! {
                    _ = model.changed() => {}
                    _ = events.changed() => {}
                    () = tokio::time::sleep(RECHECK) => {}
                    () = tx.closed() => return,
                }
                tokio::time::sleep(pace).await;
            }
        });
        let body = StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(|b| Ok::<_, Infallible>(Frame::data(b))),
        );
        let mut r = Response::new(BodyExt::boxed(body));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        secure(h);
        r
    }
}

use tokio_stream::StreamExt as _;

async fn state_json(reads: &Reads, peers: &PeerPositions) -> String {
    serde_json::to_string(&DashboardState::of(reads, peers).await).unwrap_or_default()
}

/// The token from `Authorization: Bearer` or the `token` query parameter (an `EventSource`
/// cannot set headers), compared in constant time. No token configured: everyone.
fn authorized<B>(token: &Option<String>, req: &Request<B>) -> bool {
    let Some(expected) = token else {
        return true;
    };
    let from_header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    from_header
        .into_iter()
        .chain(from_query)
        .any(|given| same_secret(given.as_bytes(), expected.as_bytes()))
}

/// Equal secrets, in time that depends on their lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn secure(h: &mut hyper::HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // The page's address may hold the token: never sent on as a referrer.
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

fn full(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(BodyExt::boxed(Full::new(body.into())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(r.headers_mut());
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    full(status, text, "text/plain; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    full(StatusCode::OK, text, content_type)
}

fn json(text: String) -> Response<Body> {
    full(StatusCode::OK, text, "application/json")
}

/// Serves the dashboard on `listener` until the task is dropped.
pub async fn serve_dashboard(listener: TcpListener, dashboard: Arc<Dashboard>) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                // Out of descriptors, usually: wait instead of spinning.
                tracing::debug!("dashboard accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let dashboard = Arc::clone(&dashboard);
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let d = Arc::clone(&dashboard);
                async move { Ok::<_, Infallible>(d.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(sock), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_every_byte() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
    }

    #[test]
    fn the_token_is_taken_from_the_header_or_the_query() {
        // `authorized` needs no reads: a dashboard without a token configured admits all.
        let token = Some("0123456789abcdef".to_string());
        let check = |uri: &str, header: Option<&str>| {
            let mut b = Request::builder().uri(uri);
            if let Some(h) = header {
                b = b.header(AUTHORIZATION, h);
            }
            let req = b.body(()).expect("request");
            authorized_with(&token, &req)
        };
        assert!(check("/api/state?token=0123456789abcdef", None));
        assert!(check("/api/state?x=1&token=0123456789abcdef", None));
        assert!(check("/api/state", Some("Bearer 0123456789abcdef")));
        assert!(!check("/api/state", None));
        assert!(!check("/api/state?token=wrong", Some("Bearer wrong")));
        assert!(
            !check("/api/state", Some("0123456789abcdef")),
            "not a bearer"
        );
        assert!(authorized_with(&None, &Request::new(())));
    }

    fn authorized_with<B>(token: &Option<String>, req: &Request<B>) -> bool {
        super::authorized(token, req)
    }
}
