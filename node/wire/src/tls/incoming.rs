//! The server side: TLS handshakes on accepted TCP connections, off the accept loop, bounded
//! (or plain TCP connections, where plaintext is configured).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use scbe_core::crypto::PublicKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::{certificate_key, vouched_key, Trust};

/// Handshakes under way at once; a connection beyond them is closed at once (a flood of
/// half-open handshakes cannot hold the server's memory).
pub const MAX_HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection: its address and, when it presented a certificate
/// the server accepted, its key. Services read it from a request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub remote: SocketAddr,
    pub key: Option<PublicKey>,
}

/// A server's TLS: its rustls configuration, and how the identity of a client that presented a
/// certificate is read from it.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub trust: Trust,
}

/// An accepted connection, carrying its peer's identity into tonic.
pub struct Conn {
    stream: Stream,
    peer: PeerIdentity,
}

enum Stream {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

/// Forwards to whichever stream the connection is.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.stream {
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> PeerIdentity {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::Plain(s) => s.is_write_vectored(),
        }
    }
}

/// Connections accepted on `listener` that completed a TLS handshake under `config` (every
/// connection as it is, when `config` is `None`: plaintext), for `Server::serve_with_incoming`.
/// A refused handshake (a key outside the pinned set, a plaintext client) is logged with the
/// peer's address and the reason, and the connection closed; the stream itself never ends
/// with an error.
pub fn incoming(
    listener: TcpListener,
    tls: Option<ServerTls>,
) -> ReceiverStream<std::io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let trust = tls.as_ref().map_or(Trust::SelfSigned, |t| t.trust.clone());
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most often: wait instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                tracing::warn!(%remote, "too many TLS handshakes under way; connection closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let Some(acceptor) = acceptor.clone() else {
                let peer = PeerIdentity { remote, key: None };
                let conn = Conn {
                    stream: Stream::Plain(tcp),
                    peer,
                };
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
                continue;
            };
            let tx = tx.clone();
            let trust = trust.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let key = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| match trust {
                                // The verifier accepted exactly this key.
                                Trust::SelfSigned => certificate_key(c).ok(),
                                Trust::Authority(_) => vouched_key(c).ok().flatten(),
                            });
                        let peer = PeerIdentity { remote, key };
                        let stream = Stream::Tls(Box::new(stream));
                        let _ = tx.send(Ok(Conn { stream, peer })).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%remote, "TLS handshake refused: {e}"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
