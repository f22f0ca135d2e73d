//! Which keys a link accepts, and the rustls verifiers that enforce it.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};
use scbe_core::crypto::PublicKey;

use super::{provider, TlsError, TlsIdentity, Trust, ALPN_H2};

/// The keys a link accepts, and how to name them in a refusal ("a validator of this cluster").
/// Clones share the keys: a validator set that changes (a rotated or removed validator) is
/// followed by every server and link built with them, from their next handshake on.
#[derive(Debug, Clone)]
pub struct PinnedKeys {
    keys: Arc<RwLock<BTreeSet<[u8; 32]>>>,
    /// Any key is accepted ([`PinnedKeys::any_key`]).
    any: bool,
    described: String,
}

impl PinnedKeys {
    /// `described` completes "the certificate's key K is not ...".
    pub fn new(keys: impl IntoIterator<Item = PublicKey>, described: impl Into<String>) -> Self {
        PinnedKeys {
            keys: Arc::new(RwLock::new(keys.into_iter().map(|k| k.0).collect())),
            any: false,
            described: described.into(),
        }
    }

    /// Accepts a certificate for any key (its holder still proves the key in the handshake).
    /// Only for asking a peer for what proves itself from the genesis, the chain of validator
    /// sets (a validator whose peers were all re-keyed while it was down has no key of theirs
    /// to pin); never for a link whose answers are taken on the peer's word.
    pub fn any_key(described: impl Into<String>) -> Self {
        PinnedKeys {
            keys: Arc::default(),
            any: true,
            described: described.into(),
        }
    }

    /// Accepts `keys` from now on, in place of the ones before (for every clone).
    pub fn replace(&self, keys: impl IntoIterator<Item = PublicKey>) {
        let next: BTreeSet<[u8; 32]> = keys.into_iter().map(|k| k.0).collect();
        // A poisoned lock only means a panic elsewhere while it was held; the set is whole.
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// What these keys are, for messages ("a validator of this cluster").
    pub fn described(&self) -> &str {
        &self.described
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.any
            || self
                .keys
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key.0)
    }

    /// The key `cert` identifies, if it is one of these: the key in a self-signed certificate;
    /// the key a CA-issued one names (its chain is checked by the caller).
    pub fn check(&self, cert: &CertificateDer<'_>) -> Result<PublicKey, TlsError> {
        self.check_under(cert, &Trust::SelfSigned)
    }

    pub fn check_under(
        &self,
        cert: &CertificateDer<'_>,
        trust: &Trust,
    ) -> Result<PublicKey, TlsError> {
        let key = identified_key(cert, trust)?;
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

/// The key `cert` identifies, whoever holds it: the key in a self-signed certificate; the key
/// a CA-issued one names (its chain is checked by the caller).
fn identified_key(cert: &CertificateDer<'_>, trust: &Trust) -> Result<PublicKey, TlsError> {
    match trust {
        Trust::SelfSigned => certificate_key(cert),
        Trust::Authority(_) => vouched_key(cert)?.ok_or(TlsError::NoKeyNamed),
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

/// The ed25519 key a CA-issued certificate names (URI SAN `urn:scbe:ed25519:<hex>`), if any.
/// Only meaningful once the chain is verified: anyone can write a SAN into a self-signed one.
pub fn vouched_key(cert: &CertificateDer<'_>) -> Result<Option<PublicKey>, TlsError> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let Ok(Some(san)) = x.subject_alternative_name() else {
        return Ok(None);
    };
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if let Some(hex) = uri.strip_prefix("urn:scbe:ed25519:") {
                return PublicKey::from_hex(hex)
                    .map(Some)
                    .ok_or_else(|| TlsError::BadCertificate(format!("bad key in {uri}")));
            }
        }
    }
    Ok(None)
}

fn refuse(e: TlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Checks a peer's certificate against pinned keys, and its handshake signature (ed25519 only).
#[derive(Debug)]
struct PinnedVerifier {
    keys: PinnedKeys,
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
    mandatory: bool,
    /// A client's key need not be pinned: the handshake only proves it holds that key.
    any_client_key: bool,
    /// Under a CA: the standard chain (and, for servers, name) checks, run first.
    server_chain: Option<Arc<WebPkiServerVerifier>>,
    client_chain: Option<Arc<dyn ClientCertVerifier>>,
}

impl PinnedVerifier {
    fn new(
        keys: PinnedKeys,
        trust: Trust,
        mandatory: bool,
        any_client_key: bool,
    ) -> Result<Self, TlsError> {
        let (server_chain, client_chain) = match &trust {
            Trust::SelfSigned => (None, None),
            Trust::Authority(roots) => (
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?,
                ),
                Some(
                    WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?,
                ),
            ),
        };
        Ok(PinnedVerifier {
            keys,
            trust,
            algorithms: provider().signature_verification_algorithms,
            mandatory,
            any_client_key,
            server_chain,
            client_chain,
        })
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    /// Self-signed certificates are ed25519 only; a CA may issue any key type rustls checks.
    fn schemes(&self) -> Vec<SignatureScheme> {
        match self.trust {
            Trust::SelfSigned => vec![SignatureScheme::ED25519],
            Trust::Authority(_) => self.algorithms.supported_schemes(),
        }
    }
}

/// Only TLS 1.3 is offered (see `VERSIONS`): a TLS 1.2 handshake never reaches a verifier.
fn tls12_not_offered() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not offered".into()))
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(chain) = &self.server_chain {
            chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        }
        self.keys
            .check_under(end_entity, &self.trust)
            .map_err(refuse)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_not_offered()
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
        self.schemes()
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
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(chain) = &self.client_chain {
            chain.verify_client_cert(end_entity, intermediates, now)?;
        }
        if self.any_client_key {
            identified_key(end_entity, &self.trust).map_err(refuse)?;
        } else {
            self.keys
                .check_under(end_entity, &self.trust)
                .map_err(refuse)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_not_offered()
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
        self.schemes()
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
    /// Anyone may connect; a client that presents a certificate proves it holds its key, and
    /// the service decides what that key may do. An agent's: a validator re-keyed since the
    /// agent last heard of the validator set is admitted once the chain of epoch links its
    /// call carries proves the new key (`scbe_wire::tls::caller_in` then finds it pinned).
    Identified,
}

/// Only TLS 1.3: one handshake signature scheme to pin (ed25519), nothing negotiated down.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A server presenting `identity`, accepting clients as `clients` says.
pub fn server_config(
    identity: &TlsIdentity,
    clients: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (keys, mandatory, any_client_key) = match clients {
        ClientAuth::Required(k) => (k, true, false),
        ClientAuth::Optional(k) => (k, false, false),
        ClientAuth::Identified => (PinnedKeys::new([], "any key"), false, true),
    };
    let (chain, key) = identity.chain_and_key();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(PinnedVerifier::new(
            keys,
            identity.trust().clone(),
            mandatory,
            any_client_key,
        )?))
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A client accepting only a server whose key is in `server`, presenting `identity` if given
/// (and trusting as it does; self-signed certificates without one).
pub fn client_config(
    identity: Option<&TlsIdentity>,
    server: PinnedKeys,
) -> Result<Arc<ClientConfig>, TlsError> {
    let trust = identity.map_or(Trust::SelfSigned, |i| i.trust().clone());
    client_config_trusting(identity, trust, server)
}

/// [`client_config`] with the trust given (an anonymous client of a CA-run cluster).
pub fn client_config_trusting(
    identity: Option<&TlsIdentity>,
    trust: Trust,
    server: PinnedKeys,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = PinnedVerifier::new(server, trust, true, false)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
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
