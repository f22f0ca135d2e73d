//! How a node talks on the network: TLS with its signing key as identity, or plaintext.

use std::sync::Arc;

use scbe_core::crypto::{Keypair, PublicKey};

use super::{
    client_config, client_config_trusting, server_config, ClientAuth, Link, PeerIdentity,
    PinnedKeys, ServerTls, TlsError, TlsIdentity,
};

/// This node's side of every link it serves or dials.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Configured explicitly, and only where every address is loopback.
    Plaintext,
    Tls(Arc<TlsIdentity>),
}

impl Transport {
    /// TLS with a certificate made from `key`.
    pub fn tls(key: &Keypair) -> Result<Self, TlsError> {
        Ok(Transport::Tls(Arc::new(TlsIdentity::from_keypair(key)?)))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// A link to a server whose key must be one of `server`, presenting this node's certificate.
    pub fn link(&self, server: PinnedKeys) -> Result<Link, TlsError> {
        match self {
            Transport::Plaintext => Ok(Link::Plaintext),
            Transport::Tls(id) => Ok(Link::Tls(client_config(Some(id), server)?)),
        }
    }

    /// A link to the one server that holds `key` (`who` names it in a refusal).
    pub fn link_to(&self, key: PublicKey, who: impl Into<String>) -> Result<Link, TlsError> {
        self.link(PinnedKeys::new([key], who))
    }

    /// A link to the one server that holds `key`, presenting no certificate (as a requester
    /// would): how a daemon's `health` subcommand asks the daemon itself, whose server accepts
    /// only certain certificates (an agent's, for one, only validators').
    pub fn anonymous_link_to(
        &self,
        key: PublicKey,
        who: impl Into<String>,
    ) -> Result<Link, TlsError> {
        match self {
            Transport::Plaintext => Ok(Link::Plaintext),
            Transport::Tls(id) => Ok(Link::Tls(client_config_trusting(
                None,
                id.trust().clone(),
                PinnedKeys::new([key], who),
            )?)),
        }
    }

    /// The server side: `None` under plaintext.
    pub fn server(&self, clients: ClientAuth) -> Result<Option<ServerTls>, TlsError> {
        match self {
            Transport::Plaintext => Ok(None),
            Transport::Tls(id) => Ok(Some(ServerTls {
                config: server_config(id, clients)?,
                trust: id.trust().clone(),
            })),
        }
    }
}

/// For services only some nodes may call (validators' consensus streams and endorsements, a
/// validator's orders to an agent): under TLS the caller's certificate must carry one of
/// `keys`; `None` (a plaintext server) checks nothing, the messages being signed anyway.
pub fn caller_in<T>(
    request: &tonic::Request<T>,
    keys: Option<&PinnedKeys>,
) -> Result<(), tonic::Status> {
    let Some(keys) = keys else {
        return Ok(());
    };
    let peer = request.extensions().get::<PeerIdentity>();
    match peer.and_then(|p| p.key) {
        Some(k) if keys.contains(&k) => Ok(()),
        Some(k) => Err(tonic::Status::permission_denied(format!(
            "the caller's certificate key {k} is not {}",
            keys.described()
        ))),
        None => Err(tonic::Status::unauthenticated(format!(
            "this service answers only {} over mutual TLS: present its certificate",
            keys.described()
        ))),
    }
}

/// The caller's address, as the acceptor saw it.
pub fn remote_addr<T>(request: &tonic::Request<T>) -> Option<std::net::SocketAddr> {
    request
        .extensions()
        .get::<PeerIdentity>()
        .map(|p| p.remote)
        .or_else(|| request.remote_addr())
}
