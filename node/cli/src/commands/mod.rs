//! The `scbe` subcommands: [`fuse`] (manifests into a release, offline), [`propose`] (submit and
//! wait for the votes), [`read`] (`status` and `watch`), [`audit`] (export and verify the
//! certificate log). `main.rs` holds the command line and dispatches here.

use std::path::PathBuf;
use std::process::ExitCode;

use scbe_wire::governance_client::Client;
use scbe_wire::tls::{Dial, PinnedKeys};

pub mod audit;
pub mod fuse;
pub mod propose;
pub mod read;

/// Bad input or an unusable answer: `scbe` exits 2 with this message.
pub struct Unusable(pub anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Unusable {
    fn from(e: E) -> Self {
        Unusable(e.into())
    }
}

/// What a subcommand returns: its exit code, or why it could not run.
pub type Outcome = Result<ExitCode, Unusable>;

pub fn load_key(path: &Option<PathBuf>) -> Result<Option<scbe_core::crypto::Keypair>, Unusable> {
    path.as_ref()
        .map(|p| scbe_wire::key_file::read_key_file(p).map_err(|e| Unusable(e.into())))
        .transpose()
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Unusable> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Unusable(e.into()))
}

pub async fn client(node: &Dial, key: &Option<PathBuf>) -> Result<Client, Unusable> {
    Client::connect(node, load_key(key)?)
        .await
        .map_err(|e| Unusable(e.into()))
}

/// Writes a line to stdout; false once stdout is closed (e.g. piped into `head`).
pub fn out(line: &str) -> bool {
    use std::io::Write as _;
    writeln!(std::io::stdout(), "{line}").is_ok()
}

/// The validator `--node` names, with the keys its certificate must carry: the genesis's
/// validators (`--genesis`), or the one key `--validator-key` gives. Plain `http://` needs
/// neither (a plaintext test cluster on loopback).
pub fn dial(
    node: &str,
    genesis: Option<&std::path::Path>,
    validator_key: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<Dial, Unusable> {
    let pinned = match (genesis, validator_key) {
        (_, Some(hex)) => {
            let key = scbe_wire::key_file::parse_public_key(hex).ok_or_else(|| {
                Unusable(anyhow::anyhow!(
                    "--validator-key: {hex} is not an ed25519 public key (64 hex characters)"
                ))
            })?;
            Some(PinnedKeys::new(
                [key],
                format!("the key given by --validator-key ({hex})"),
            ))
        }
        (Some(path), None) => {
            let g = scbe_wire::genesis::Genesis::load(path)?;
            Some(PinnedKeys::new(
                g.directory().validators().iter().copied(),
                format!("a validator of the genesis {}", path.display()),
            ))
        }
        (None, None) => None,
    };
    let trust = match ca_file {
        Some(ca) => scbe_wire::tls::Trust::authority(ca)?,
        None => scbe_wire::tls::Trust::SelfSigned,
    };
    Ok(Dial::new_trusting(node, pinned, trust)?)
}
