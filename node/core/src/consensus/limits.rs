//! Message sizes, derived from each other so that no message the protocol must send can exceed
//! the peer message cap, for any mix of admitted requests.
//!
//! Every limit is in bytes of *encoded envelopes*: a request costs its payload plus
//! [`REQUEST_FRAMING_BYTES`] inside a batch. The chain, smallest first:
//!
//! - a request is admitted (client API, relay, inside a pre-prepare) only up to
//!   `max_request_bytes`;
//! - a batch holds at most `max_batch_bytes` of requests, so a pre-prepare fits;
//! - the batches a replica holds above its stable checkpoint (what its view change must carry as
//!   prepared certificates) stay within `max_window_bytes`: the primary does not propose past it
//!   and backups do not accept past it;
//! - a view change is accepted with at most [`VIEW_CHANGE_SLACK`] times that (the slack covers the
//!   one case an honest replica can exceed it: a new-view re-proposing batches prepared by
//!   different replicas); a new-view carries `q` view changes and the batches it re-proposes;
//! - a state-transfer response carries at most `max_transfer_bytes` of decided batches (always at
//!   least one).
//!
//! [`worst_case`] computes the largest view change, new-view and state response these limits
//! allow, and [`super::ReplicaConfig::validate`] refuses a configuration where one could exceed
//! [`MAX_MESSAGE_BYTES`].

use super::message::{Request, Signed};

/// The largest message a validator sends or accepts from a peer or a client.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes an envelope adds around its payload: kind, 32-byte signer, 64-byte signature, and the
/// protobuf framing of the batch entry holding it (generous).
pub const REQUEST_FRAMING_BYTES: usize = 192;
/// Bytes of one slot in a view change besides its batch: the pre-prepare's own fields and
/// envelope, per prepare (a signed vote).
const PRE_PREPARE_FRAMING_BYTES: usize = 320;
const VOTE_BYTES: usize = 256;
/// A stable checkpoint certificate: per checkpoint vote.
const CHECKPOINT_VOTE_BYTES: usize = 256;
/// Links of the validator-set chain one state response carries (a replica further behind asks
/// again from the last one it checked): at most this many, and past the first only while they
/// add up to [`EPOCH_LINKS_BYTES`].
pub const MAX_EPOCH_LINKS: usize = 8;
pub const EPOCH_LINKS_BYTES: usize = 512 * 1024;
/// A member of a validator set in a link: its id and key with their framing (generous).
const SET_MEMBER_BYTES: usize = 64;
/// Prepared certificates of an accepted view change may add up to this many window budgets.
pub const VIEW_CHANGE_SLACK: usize = 2;

/// What a request costs inside a batch.
pub fn request_bytes(r: &Signed<Request>) -> usize {
    r.envelope().payload.len() + REQUEST_FRAMING_BYTES
}

/// Bytes a request's payload adds around its operation (nonce and field tags), generously.
pub const REQUEST_PAYLOAD_OVERHEAD_BYTES: usize = 16;

/// What a batch costs inside a pre-prepare.
pub fn batch_bytes(batch: &[Signed<Request>]) -> usize {
    batch.iter().map(request_bytes).sum()
}

/// Largest messages the limits allow for `n` validators with window `window` (sequence numbers)
/// and up to `max_batch` requests per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    pub pre_prepare: usize,
    pub view_change: usize,
    pub new_view: usize,
    pub state_response: usize,
}

pub struct SizeInputs {
    pub n: usize,
    pub quorum: usize,
    pub window: u64,
    pub max_batch_bytes: usize,
    pub max_window_bytes: usize,
    pub max_transfer_bytes: usize,
}

pub fn worst_case(i: &SizeInputs) -> WorstCase {
    let slots = i.window as usize;
    let slot_framing = PRE_PREPARE_FRAMING_BYTES + i.quorum * VOTE_BYTES;
    let checkpoint = i.n * CHECKPOINT_VOTE_BYTES + 256;
    let pre_prepare = i.max_batch_bytes + PRE_PREPARE_FRAMING_BYTES;
    let view_change =
        VIEW_CHANGE_SLACK * i.max_window_bytes + slots * slot_framing + checkpoint + 256;
    // q view changes, plus the re-proposed batches: for every slot the batch of one of them.
    let new_view = i.quorum * view_change
        + i.quorum * VIEW_CHANGE_SLACK * i.max_window_bytes
        + slots * PRE_PREPARE_FRAMING_BYTES
        + 256;
    // Decided batches up to the budget, the last one possibly full, each with q commits; the
    // snapshot's certificate; the chain's links, at most their count, and past the first only
    // within their budget (each counted at today's n: a link of a set larger than today's is
    // the only way past this estimate, and the eighth of the cap kept in reserve covers sets
    // of hundreds).
    let link = checkpoint + 2 * i.n * SET_MEMBER_BYTES + 256;
    let links = (MAX_EPOCH_LINKS * link).min(EPOCH_LINKS_BYTES + link);
    let state_response =
        i.max_transfer_bytes + i.max_batch_bytes + slots * slot_framing + checkpoint + links + 256;
    WorstCase {
        pre_prepare,
        view_change,
        new_view,
        state_response,
    }
}

/// What a link of the validator-set chain costs in a state response (generously).
pub fn link_bytes(link: &super::EpochLink) -> usize {
    link.boundary.proof.len() * CHECKPOINT_VOTE_BYTES
        + (link.previous.n() + link.set.n()) * SET_MEMBER_BYTES
        + 512
}

/// The largest window budget for which a new-view of `n` validators always fits.
pub fn default_window_bytes(n: usize, quorum: usize, window: u64) -> usize {
    let slots = window as usize;
    let fixed = quorum * (slots * (PRE_PREPARE_FRAMING_BYTES + quorum * VOTE_BYTES))
        + quorum * (n * CHECKPOINT_VOTE_BYTES + 512)
        + slots * PRE_PREPARE_FRAMING_BYTES
        + 256;
    let per_window = 2 * quorum * VIEW_CHANGE_SLACK;
    // Keep an eighth of the cap in reserve for what the estimate does not count.
    (MAX_MESSAGE_BYTES - MAX_MESSAGE_BYTES / 8).saturating_sub(fixed) / per_window
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::config::quorum_for;

    fn new_view_at(n: usize, window: u64, max_window_bytes: usize) -> usize {
        worst_case(&SizeInputs {
            n,
            quorum: quorum_for(n),
            window,
            max_batch_bytes: max_window_bytes / 2,
            max_window_bytes,
            max_transfer_bytes: 1,
        })
        .new_view
    }

    /// `default_window_bytes` is worked out by hand from `worst_case`'s new-view; the two must
    /// agree, or the derived budget either lets a new-view past the cap's seven eighths or
    /// gives away window for nothing. So the budget is checked to be exactly the largest whose
    /// worst new-view fits: one byte more and it does not. This also pins every term of the
    /// view-change and new-view estimates, which the message-size tests (real messages under
    /// the estimate, at most twice it) cannot: each term is generous, so bending one alone
    /// stays within the other terms' slack (cargo-mutants at 8c1a26e: 34 such mutants of
    /// `worst_case` and `default_window_bytes` went unseen).
    #[test]
    fn the_default_window_budget_is_the_largest_whose_new_view_fits_the_reserve() {
        let room = MAX_MESSAGE_BYTES - MAX_MESSAGE_BYTES / 8;
        let cases = [4, 5, 7, 10, 13]
            .into_iter()
            .flat_map(|n| [(n, 8), (n, 64), (n, 256)])
            .chain([(31, 64)]);
        for (n, window) in cases {
            let budget = default_window_bytes(n, quorum_for(n), window);
            let at = format!("n={n} window={window} budget={budget}");
            assert!(budget > 4096, "{at}: a usable budget");
            assert!(new_view_at(n, window, budget) <= room, "{at}: fits");
            assert!(
                new_view_at(n, window, budget + 1) > room,
                "{at}: the largest"
            );
        }
    }
}
