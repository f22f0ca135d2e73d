//! The `scbe` subcommands: [`fuse`] (manifests into a release, offline), [`propose`] (submit and
//! wait for the votes), [`read`] (`status` and `watch`), [`audit`] (export and verify the
//! certificate log). `main.rs` holds the command line and dispatches here.

use std::path::PathBuf;
use std::process::ExitCode;

use scbe_wire::governance_client::Client;

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

pub async fn client(node: &str, key: &Option<PathBuf>) -> Result<Client, Unusable> {
    Client::connect(node, load_key(key)?)
        .await
        .map_err(|e| Unusable(e.into()))
}

/// Writes a line to stdout; false once stdout is closed (e.g. piped into `head`).
pub fn out(line: &str) -> bool {
    use std::io::Write as _;
    writeln!(std::io::stdout(), "{line}").is_ok()
}
