//! Which keys a link accepts, and the rustls verifiers that enforce it.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};
use scbe_core::crypto::PublicKey;

use super::{provider, TlsError, TlsIdentity, ALPN_H2};

/// The keys a link accepts, and how to name them in a refusal ("a validator of this cluster").
#[derive(Debug, Clone)]
pub struct PinnedKeys {
    keys: BTreeSet<[u8; 32]>,
    described: String,
}

impl PinnedKeys {
    /// `described` completes "the certificate's key K is not ...".
    pub fn new(keys: impl IntoIterator<Item = PublicKey>, described: impl Into<String>) -> Self {
        PinnedKeys {
            keys: keys.into_iter().map(|k| k.0).collect(),
            described: described.into(),
        }
    }

    /// What these keys are, for messages ("a validator of this cluster").
    pub fn described(&self) -> &str {
        &self.described
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.contains(&key.0)
    }

    /// The key in `cert`, if it is one of these.
    pub fn check(&self, cert: &CertificateDer<'_>) -> Result<PublicKey, TlsError> {
        let key = certificate_key(cert)?;
        if self.contains(&key) {
            Ok(key)
        } else {
            Err(TlsError::NotPinned {
                key: key.to_hex(),
                expected: self.described.clone(),
            })
        }
    }
}

/// The ed25519 key a certificate carries.
pub fn certificate_key(cert: &CertificateDer<'_>) -> Result<PublicKey, TlsError> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let spki = x.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    // id-Ed25519 (RFC 8410).
    if algorithm != "1.3.101.112" {
        return Err(TlsError::NotEd25519(algorithm));
    }
    PublicKey::from_slice(&spki.subject_public_key.data)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))
}

fn refuse(e: TlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Checks a peer's certificate against pinned keys, and its handshake signature (ed25519 only).
#[derive(Debug)]
struct PinnedVerifier {
    keys: PinnedKeys,
    algorithms: WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl PinnedVerifier {
    fn new(keys: PinnedKeys, mandatory: bool) -> Self {
        PinnedVerifier {
            keys,
            algorithms: provider().signature_verification_algorithms,
            mandatory,
        }
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.keys.check(end_entity).map_err(refuse)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered (see `VERSIONS`); a TLS 1.2 handshake never gets here.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.keys.check(end_entity).map_err(refuse)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Who may connect to a server.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Only clients with a certificate for one of these keys (mutual TLS).
    Required(PinnedKeys),
    /// Anyone may connect; a client that presents a certificate must present one of these
    /// (requesters call anonymously, validators with their certificate).
    Optional(PinnedKeys),
}

/// Only TLS 1.3: one handshake signature scheme to pin (ed25519), nothing negotiated down.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A server presenting `identity`, accepting clients as `clients` says.
pub fn server_config(
    identity: &TlsIdentity,
    clients: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (keys, mandatory) = match clients {
        ClientAuth::Required(k) => (k, true),
        ClientAuth::Optional(k) => (k, false),
    };
    let (chain, key) = identity.chain_and_key();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(PinnedVerifier::new(keys, mandatory)))
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A client accepting only a server whose key is in `server`, presenting `identity` if given.
pub fn client_config(
    identity: Option<&TlsIdentity>,
    server: PinnedKeys,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(server, true)));
    let mut config = match identity {
        Some(id) => {
            let (chain, key) = id.chain_and_key();
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Config(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}
