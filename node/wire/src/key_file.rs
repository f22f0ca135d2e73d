//! Secret key files and hex public keys, as every binary reads and writes them: a key file holds
//! 64 hex characters of ed25519 secret key (and a newline), is created readable by its owner
//! only, and is never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use scbe_core::crypto::{Keypair, PublicKey};

/// Lower-case hex (keys, digests, signatures).
pub use scbe_core::governance::release::hex as encode_hex;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("key file {path}: must hold 64 hex characters (a secret key written by `keygen`)")]
    Format { path: PathBuf },
    #[error("key file {path}: cannot create (it must not exist yet): {detail}")]
    Create { path: PathBuf, detail: String },
    #[error("key file {path}: the OS random source failed: {detail}")]
    Random { path: PathBuf, detail: String },
}

/// Parses a 64-hex-character public key.
pub fn parse_public_key(hex: &str) -> Option<PublicKey> {
    let bytes = decode_hex(hex.trim())?;
    PublicKey::from_slice(&bytes).ok()
}

/// Hex to bytes; `None` unless every pair of characters is a hex byte.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads a key file: 64 hex characters of secret key.
pub fn read_key_file(path: &Path) -> Result<Keypair, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::Read {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let format = || KeyFileError::Format {
        path: path.to_path_buf(),
    };
    let bytes = decode_hex(text.trim()).ok_or_else(format)?;
    let secret: [u8; 32] = bytes.try_into().map_err(|_| format())?;
    Ok(Keypair::from_secret(secret))
}

/// Writes a fresh key to `path`, readable by its owner only; refuses to overwrite.
pub fn write_new_key(path: &Path) -> Result<Keypair, KeyFileError> {
    let create = |detail: String| KeyFileError::Create {
        path: path.to_path_buf(),
        detail,
    };
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyFileError::Random {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let key = Keypair::from_secret(secret);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| create(e.to_string()))?;
    f.write_all(format!("{}\n", encode_hex(&key.secret_bytes())).as_bytes())
        .map_err(|e| create(e.to_string()))?;
    f.sync_all().map_err(|e| create(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_owner_only_reads_back_and_is_never_overwritten() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("k.key");
        let k = write_new_key(&path).expect("writes");
        assert_eq!(read_key_file(&path).expect("reads").public(), k.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(
            write_new_key(&path),
            Err(KeyFileError::Create { .. })
        ));
        std::fs::write(&path, "not hex").expect("write");
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::Format { .. })
        ));
        assert_eq!(
            parse_public_key(&encode_hex(k.public().as_bytes())),
            Some(k.public())
        );
        assert_eq!(parse_public_key("abc"), None);
    }
}
