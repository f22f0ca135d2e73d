//! The client side: how a node dials another, through TLS or (on loopback, when configured)
//! plaintext.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tonic::transport::{Channel, Endpoint, Uri};

/// How to reach a server.
#[derive(Clone)]
pub enum Link {
    /// No encryption: only where every address is loopback (see `plaintext_on_loopback`).
    Plaintext,
    /// TLS 1.3 with the server's key pinned (and this node's certificate, for mutual TLS).
    Tls(Arc<ClientConfig>),
}

/// Bound on the TCP connect and TLS handshake together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings on idle links: a peer behind a partition that drops packets silently (no RST)
/// is noticed within about interval + timeout, and the link reconnects, instead of waiting
/// for TCP's own timeouts (minutes).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 receive windows (each stream's and each connection's), on both sides of every link:
/// the largest message the protocol allows ([`crate::MAX_ENVELOPE_BYTES`]) and its framing
/// cross in one round trip. Why: with hyper's defaults (1 MB on a server) a sender may have
/// only 1 MB unacknowledged, so across a 100 ms round trip a link carried ~10 MB/s and a
/// new-view re-proposing a busy window's batches (each carried whole, up to 14 MB) took a
/// round trip per megabyte: the per-batch part of a failover across a WAN (issue 27). Fixed,
/// not adaptive: hyper's adaptive window starts at 64 KB and grows only with measured round
/// trips (tried: saturation fell to a sixth). It adds no memory a caller could not already
/// take: a receiver buffers at most a window of unread data per connection, and tonic
/// already gathers each call's message up to the same cap before decoding it.
pub const HTTP2_WINDOW_BYTES: u32 = (crate::MAX_ENVELOPE_BYTES + 1024 * 1024) as u32;

impl Link {
    /// An endpoint for `addr` (`host:port`). TLS links dial through [`Link::connector`]; the
    /// URI's scheme is then only a label.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        Ok(Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(HTTP2_WINDOW_BYTES)
            .initial_connection_window_size(HTTP2_WINDOW_BYTES))
    }

    /// Connects now (an error if the server cannot be reached or its key is not pinned).
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        match self {
            Link::Plaintext => endpoint.connect().await,
            Link::Tls(config) => {
                endpoint
                    .connect_with_connector(connector(Arc::clone(config)))
                    .await
            }
        }
    }

    /// Connects on first use and reconnects by itself, resolving the host again each time.
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Channel {
        match self {
            Link::Plaintext => endpoint.connect_lazy(),
            Link::Tls(config) => {
                endpoint.connect_with_connector_lazy(connector(Arc::clone(config)))
            }
        }
    }

    /// Connects to `addr` (`host:port`) now; on failure, the error with all its causes (a
    /// refused certificate names the key), for the caller's own typed error.
    pub async fn connect_to(&self, addr: &str) -> Result<Channel, String> {
        let endpoint = self.endpoint(addr).map_err(|e| super::error_chain(&e))?;
        self.connect(endpoint)
            .await
            .map_err(|e| super::error_chain(&e))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Link::Tls(_))
    }
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("the address has no host")]
    NoHost,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad server name: {0}")]
    Name(String),
}

type Dialed = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn connector(
    config: Arc<ClientConfig>,
) -> impl tower::Service<
    Uri,
    Response = Dialed,
    Error = ConnectError,
    Future = impl std::future::Future<Output = Result<Dialed, ConnectError>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: Uri| {
        let config = Arc::clone(&config);
        async move {
            let host = uri.host().ok_or(ConnectError::NoHost)?.to_string();
            // `[::1]` in a URI is `::1` to the resolver and to rustls.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let dial = async {
                // Resolved here, at every (re)connect: a moved host name is followed.
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| ConnectError::Name(e.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, ConnectError>(TokioIo::new(tls))
            };
            tokio::time::timeout(CONNECT_TIMEOUT, dial)
                .await
                .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
        }
    })
}
