//! A client configuration that trusts the public web PKI (Mozilla's roots, compiled in), for
//! the one kind of call that leaves the cluster to ordinary HTTPS servers: notification
//! webhooks. Compiled-in roots behave the same on every host and container image; cluster
//! links never use this (they pin genesis keys).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use super::{provider, TlsError};

/// The protocol versions this build of rustls offers (TLS 1.3: the `tls12` feature is off), the
/// ring provider, web PKI roots, no client certificate.
pub fn web_pki_client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
