//! TLS on every gRPC link, with identities pinned to the keys the cluster already has.
//!
//! A node's certificate is self-signed with its own ed25519 signing key ([`TlsIdentity`]), so
//! the key the genesis lists for it *is* its TLS identity: no certificate authority to run, no
//! names to issue. A peer is accepted only if the key in its certificate is one of the keys
//! pinned for that link ([`PinnedKeys`]): the validator set for validator links, the agent's
//! registered key for a link to an agent. The handshake proves the peer holds that key (TLS 1.3
//! `CertificateVerify`, ed25519 only); validity dates and names are not what identifies it.
//!
//! - [`server_config`] / [`incoming`]: the server side; every accepted connection carries the
//!   peer's key ([`PeerIdentity`]) into each request's extensions, so a service can require a
//!   validator's certificate (mutual TLS) where others may call anonymously.
//! - [`client_config`] / [`Link`]: the client side; [`Link::channel`] dials through TLS (or
//!   plaintext when configured) and resolves the host again at every reconnect.
//! - [`Dial`]: a client's view of one validator (`https://` pinned to the cluster's keys, or
//!   `http://` for a plaintext test cluster).
//! - [`plaintext_on_loopback`]: plaintext only on loopback, the rule every daemon applies.

mod connector;
mod dial;
mod identity;
mod incoming;
mod pinned_keys;
mod transport;
mod web_pki;

pub use connector::{Link, HTTP2_WINDOW_BYTES, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
pub use dial::{Dial, DialError};
pub use identity::{key_uri, TlsIdentity, Trust};
pub use incoming::{incoming, Conn, PeerIdentity, ServerTls};
pub use transport::{caller_in, remote_addr, Transport};
pub use web_pki::web_pki_client_config;

pub use pinned_keys::{
    certificate_key, client_config, client_config_trusting, server_config, vouched_key, ClientAuth,
    PinnedKeys,
};

use std::net::SocketAddr;

/// The `[tls]` section of `node.toml` and `agent.toml`. TLS is the default: certificates are
/// made from the node's key, so there is nothing to set. Operators who run a certificate
/// authority give all three files instead (relative paths are relative to the config).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Plaintext gRPC instead: allowed only when every address the node listens on or dials is
    /// loopback (a test quorum on one machine).
    #[serde(default)]
    pub plaintext: bool,
    /// PEM: this node's certificate (then any intermediates), issued by the CA with the URI SAN
    /// `urn:scbe:ed25519:<this node's public key>`.
    #[serde(default)]
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM: the certificate's private key.
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
    /// PEM: the CA roots every peer's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl TlsSection {
    /// The node's transport, after checking that plaintext stays on loopback and that CA files
    /// come together and name this node's key.
    pub fn transport(
        &self,
        key: &scbe_core::crypto::Keypair,
        addrs: impl IntoIterator<Item = String>,
        base: &std::path::Path,
    ) -> Result<Transport, crate::config_error::ConfigError> {
        use crate::config_error::invalid;
        let files = (&self.cert_file, &self.key_file, &self.ca_file);
        if self.plaintext {
            if files.0.is_some() || files.1.is_some() || files.2.is_some() {
                return Err(invalid(
                    "tls.plaintext",
                    "plaintext and certificate files exclude each other",
                ));
            }
            plaintext_on_loopback("tls.plaintext", addrs)?;
            return Ok(Transport::Plaintext);
        }
        match files {
            (None, None, None) => Transport::tls(key).map_err(|e| invalid("tls", e)),
            (Some(cert), Some(private), Some(ca)) => {
                let identity = TlsIdentity::from_pem_files(
                    &base.join(cert),
                    &base.join(private),
                    &base.join(ca),
                    &key.public(),
                )
                .map_err(|e| invalid("tls.cert_file", e))?;
                Ok(Transport::Tls(std::sync::Arc::new(identity)))
            }
            _ => Err(invalid(
                "tls",
                "cert_file, key_file and ca_file go together: give all three (a CA-issued \
                 certificate) or none (a certificate made from the node's key)",
            )),
        }
    }
}

/// Why TLS could not be set up, or a peer's certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a TLS certificate from this key: {0}")]
    Identity(String),
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
    #[error("the certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error("the certificate's key is not ed25519 (algorithm {0}); SCBE nodes pin ed25519 keys")]
    NotEd25519(String),
    #[error("the certificate names no node key (a CA-issued certificate needs a URI SAN urn:scbe:ed25519:<hex>)")]
    NoKeyNamed,
    #[error("the certificate's key {key} is not {expected}")]
    NotPinned { key: String, expected: String },
}

/// An error and all its causes on one line: a refused certificate hides three levels deep in a
/// transport error, and the operator needs the innermost one ("the certificate's key K is not
/// a validator of this cluster").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(refusal) = pinning_refusal(c) {
            return format!("{out}: {refusal}");
        }
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// Our own refusal (a [`TlsError`]) inside the I/O error rustls returns, whose `Display`
/// would print it with `Debug`.
fn pinning_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let io = e.downcast_ref::<std::io::Error>()?;
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
            let ours = o.0.downcast_ref::<TlsError>()?;
            Some(format!("TLS refused the other side's certificate: {ours}"))
        }
        _ => None,
    }
}

/// Plaintext is allowed only where no one else can listen: every address (`host:port`) on
/// loopback (`127.0.0.0/8`, `::1` or `localhost`). `key` names the setting in the error.
pub fn plaintext_on_loopback(
    key: &str,
    addrs: impl IntoIterator<Item = String>,
) -> Result<(), crate::config_error::ConfigError> {
    for a in addrs {
        if !is_loopback(&a) {
            return Err(crate::config_error::invalid(
                key,
                format!(
                    "plaintext is allowed only on loopback, and {a} is not; remove the setting \
                     to use TLS (certificates are made from the node's key: nothing else to set)"
                ),
            ));
        }
    }
    Ok(())
}

fn is_loopback(addr: &str) -> bool {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return a.ip().is_loopback();
    }
    matches!(addr.rsplit_once(':'), Some(("localhost", _)))
}

/// Rustls with the ring provider, built without touching the process-wide default (two
/// libraries in one process may each install a different one).
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// HTTP/2 is the only protocol spoken on these links.
const ALPN_H2: &[u8] = b"h2";

#[cfg(test)]
mod tests;
