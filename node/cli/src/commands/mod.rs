//! The `scbe` subcommands: [`fuse`] (manifests into a release, offline), [`propose`] (submit and
//! wait for the votes), [`read`] (`status` and `watch`), [`audit`] (export and verify the
//! certificate log). `main.rs` holds the command line and dispatches here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use scbe_core::consensus::{EpochLink, ValidatorSet};
use scbe_wire::genesis::Genesis;
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
/// neither (a plaintext test cluster on loopback). With `--genesis`, a validator re-keyed
/// since the genesis is reached under its new key (`reach_through_chain`).
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
            let g = Genesis::load(path)?;
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
    let dial = Dial::new_trusting(node, pinned, trust)?;
    if let (Some(path), None, Some(_)) = (genesis, validator_key, dial.pins()) {
        let g = Genesis::load(path)?;
        runtime()?.block_on(reach_through_chain(&dial, &g));
    }
    Ok(dial)
}

/// How long `scbe` waits for the genesis's validators when it asks them for the chain.
const CHAIN_DEADLINE: Duration = Duration::from_secs(3);

/// If `node` cannot be reached under the genesis's keys (it was re-keyed since, or it is
/// down), asks the genesis's validators at the addresses it lists for their chain of
/// validator sets, all at once (accepting any certificate: the chain proves itself), and
/// follows the longest that checks from the genesis: `node` is
/// then reached under any key the chain proves. Nothing changes if none answers; the command
/// then reports the failure to reach `node` itself.
async fn reach_through_chain(node: &Dial, g: &Genesis) {
    if node.connect().await.is_ok() {
        return;
    }
    // Any key: every validator of the genesis may have been re-keyed since, and the chain
    // checks from the genesis whoever serves it.
    let dials = (g.file().validators.iter()).filter_map(|v| node.to_any_key(&v.address).ok());
    let root = ValidatorSet::genesis(g.directory().validators());
    let longest = scbe_wire::chain_ask::longest_checked_chain(dials, &root, CHAIN_DEADLINE).await;
    if let (Some(links), Some(pins)) = (longest.filter(|l| !l.is_empty()), node.pins()) {
        pin_chain(pins, &root, &links);
    }
}

/// Checks the chain of validator sets `reply` carries from the genesis `g` and pins `node`'s
/// dials (and every dial made from it) to every key of every set on it, the genesis keys
/// included.
pub fn follow_chain(
    node: &Dial,
    g: &Genesis,
    reply: &scbe_proto::v1::StatusReply,
) -> Result<(), anyhow::Error> {
    let (Some(pins), false) = (node.pins(), reply.epochs.is_empty()) else {
        return Ok(());
    };
    let root = ValidatorSet::genesis(g.directory().validators());
    let links = scbe_wire::chain_ask::checked_chain(&root, &reply.epochs)?;
    pin_chain(pins, &root, &links);
    Ok(())
}

/// Pins to every key of every set on the chain from `root` through `links`.
fn pin_chain(pins: &PinnedKeys, root: &ValidatorSet, links: &[EpochLink]) {
    pins.replace(
        root.members
            .iter()
            .chain(links.iter().flat_map(|l| l.set.members.iter()))
            .map(|(_, k)| *k),
    );
}
