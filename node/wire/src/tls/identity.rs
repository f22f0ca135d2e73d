//! A node's TLS identity: by default a certificate self-signed with its ed25519 signing key; or,
//! for operators who run a certificate authority, a certificate it issued that names the node's
//! ed25519 key (a URI SAN `urn:scbe:ed25519:<hex>`), with the CA's roots to check peers by.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;
use scbe_core::crypto::Keypair;

use super::{vouched_key, TlsError};

/// How peers' certificates are trusted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Self-signed certificates: the key in the certificate is the identity.
    SelfSigned,
    /// Certificates issued by one of these roots: the key the certificate names (URI SAN
    /// `urn:scbe:ed25519:<hex>`) is the identity, and the chain must verify.
    Authority(Arc<RootCertStore>),
}

impl Trust {
    /// Trust in the CA roots of the PEM file `ca`.
    pub fn authority(ca: &Path) -> Result<Self, TlsError> {
        let bad = |e: &dyn std::fmt::Display| TlsError::Identity(format!("{}: {e}", ca.display()));
        let mut roots = RootCertStore::empty();
        for root in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
            roots.add(root.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        if roots.is_empty() {
            return Err(bad(&"no certificate in the file"));
        }
        Ok(Trust::Authority(Arc::new(roots)))
    }
}

/// The certificate chain and private key a node presents, and how it trusts its peers.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    trust: Trust,
}

/// PKCS#8 v1 header of an ed25519 private key (RFC 8410 §7): the 32-byte seed follows.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The URI a CA-issued certificate carries to name a node's ed25519 key.
pub fn key_uri(key: &scbe_core::crypto::PublicKey) -> String {
    format!("urn:scbe:ed25519:{}", key.to_hex())
}

impl TlsIdentity {
    /// A certificate for `key` (subject "scbe-node", valid until 4096), signed by `key` itself.
    pub fn from_keypair(key: &Keypair) -> Result<Self, TlsError> {
        let mut pkcs8 = ED25519_PKCS8_V1_PREFIX.to_vec();
        pkcs8.extend_from_slice(&key.secret_bytes());
        let der = PrivatePkcs8KeyDer::from(pkcs8);
        let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec!["scbe-node".to_string()])
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, key.public().to_hex());
        let cert = params
            .self_signed(&signer)
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        Ok(TlsIdentity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(der),
            trust: Trust::SelfSigned,
        })
    }

    /// A CA-issued identity from PEM files: `cert` (the node's certificate first, then any
    /// intermediates), `key` (its private key), `ca` (the roots peers' chains must reach). The
    /// certificate must name `node`'s key; otherwise peers would refuse it, so it is refused
    /// here, at start-up.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        ca: &Path,
        node: &scbe_core::crypto::PublicKey,
    ) -> Result<Self, TlsError> {
        let pem = |path: &Path, e: &dyn std::fmt::Display| {
            TlsError::Identity(format!("{}: {e}", path.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(cert, &e))?;
        let first = chain
            .first()
            .ok_or_else(|| pem(cert, &"no certificate in the file"))?;
        match vouched_key(first)? {
            Some(k) if k == *node => {}
            Some(k) => {
                return Err(TlsError::Identity(format!(
                    "{} names key {}, but this node's key is {}",
                    cert.display(),
                    k.to_hex(),
                    node.to_hex()
                )))
            }
            None => {
                return Err(TlsError::Identity(format!(
                    "{} does not name this node's key: its certificate needs the URI SAN {}",
                    cert.display(),
                    key_uri(node)
                )))
            }
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, &e))?;
        Ok(TlsIdentity {
            chain,
            key: private,
            trust: Trust::authority(ca)?,
        })
    }

    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub(super) fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.chain.clone(), self.key.clone_key())
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(..)")
    }
}
