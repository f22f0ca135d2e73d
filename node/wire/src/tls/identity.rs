//! A node's TLS identity: a certificate self-signed with its ed25519 signing key.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use scbe_core::crypto::Keypair;

use super::TlsError;

/// The certificate and private key a node presents, made from its signing key. The certificate
/// names nothing that matters: peers identify the node by the key inside it.
pub struct TlsIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

/// PKCS#8 v1 header of an ed25519 private key (RFC 8410 §7): the 32-byte seed follows.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

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
            cert: cert.der().clone(),
            key: der,
        })
    }

    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub(super) fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(..)")
    }
}
