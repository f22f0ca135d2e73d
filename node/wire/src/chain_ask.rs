//! Asking validators for the chain of validator sets, for a caller that holds no key of
//! theirs it can trust yet: `scbe` given only the genesis, or a validator whose peers were all
//! re-keyed while it was down. Each is asked at once (the `Status` call), over dials the
//! caller makes (ones that accept any certificate: the chain proves itself), and only a
//! chain that checks from the genesis is taken, the longest (a validator behind reports a
//! shorter one).

use std::time::Duration;

use scbe_core::consensus::{EpochLink, LinkError, ValidatorSet};

use crate::governance_client::Client;
use crate::tls::Dial;
use crate::WireError;

/// Why a reported chain does not check from the genesis.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// The links `epochs` carries past `genesis`, each checked from the set before it.
pub fn checked_chain(
    genesis: &ValidatorSet,
    epochs: &[scbe_proto::v1::EpochLink],
) -> Result<Vec<EpochLink>, ChainError> {
    let links = crate::epoch_links_beyond(genesis, epochs)?;
    EpochLink::advance(genesis, &links)?;
    Ok(links)
}

/// Asks every one of `dials` for its chain at once, waiting at most `deadline` for all of
/// them, and returns the longest that checks from `genesis` (none if no answer checks).
pub async fn longest_checked_chain(
    dials: impl IntoIterator<Item = Dial>,
    genesis: &ValidatorSet,
    deadline: Duration,
) -> Option<Vec<EpochLink>> {
    let asks = dials.into_iter().map(|dial| async move {
        let mut c = Client::connect(&dial, None).await.ok()?;
        c.status(None).await.ok()
    });
    let replies = tokio::time::timeout(deadline, futures_util::future::join_all(asks))
        .await
        .unwrap_or_default();
    replies
        .into_iter()
        .flatten()
        .filter_map(|reply| checked_chain(genesis, &reply.epochs).ok())
        .max_by_key(Vec::len)
}
