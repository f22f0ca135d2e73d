//! Structural checks of certificates and view-change material (PBFT §4.4). Signatures were checked
//! at the edge; these functions check *who* signed, *how many* distinct validators, and that every
//! part agrees on (view, seq, digest). They are pure and shared by the replica, the simulator's
//! invariant checkers and `audit verify`.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{quorum_for, ReplicaConfig};
use super::limits;
use super::message::{
    batch_digest, CheckpointCert, CommitCert, PrePrepare, PreparedCert, Request, Signed,
    ViewChange, Vote,
};
use super::types::{Digest, ReplicaId, Seq, View};
use super::validator_set::ValidatorSet;
use crate::crypto::PublicKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{what}: signed by a non-validator")]
    NotValidator { what: &'static str },
    #[error("{what}: signed by {id} with a key not in force (retired or another's)")]
    NotInForce { what: &'static str, id: ReplicaId },
    #[error("{what}: from epoch {got}, but the set in force is epoch {expected}'s")]
    OtherEpoch {
        what: &'static str,
        got: u64,
        expected: u64,
    },
    #[error("checkpoint certificate at {seq} is not from this epoch, which starts after {start}")]
    BeforeEpoch { seq: Seq, start: Seq },
    #[error("{what}: signed by {got}, expected the primary {expected}")]
    NotPrimary {
        what: &'static str,
        got: ReplicaId,
        expected: ReplicaId,
    },
    #[error("{what}: {got} distinct validators, need {need}")]
    NotEnoughVotes {
        what: &'static str,
        got: usize,
        need: usize,
    },
    #[error("{what}: part does not match (view, seq, digest)")]
    Mismatch { what: &'static str },
    #[error("pre-prepare digest does not match its batch")]
    BatchDigest,
    #[error("batch of {got} requests exceeds the limit of {max}")]
    BatchTooLarge { got: usize, max: usize },
    #[error("batch holds the same request twice (signer {0}, nonce {1})")]
    DuplicateRequest(crate::crypto::PublicKey, u64),
    #[error("genesis checkpoint has the wrong state digest")]
    Genesis,
    #[error("view change for {new_view} carries a certificate from view {cert_view}")]
    FutureCertificate { new_view: View, cert_view: View },
    #[error("view change reports {seq} outside the window above its checkpoint {stable}")]
    OutsideWindow { seq: Seq, stable: Seq },
    #[error("view change reports {0} twice")]
    DuplicateSeq(Seq),
    #[error("request of {got} bytes exceeds the limit of {max}")]
    RequestTooLarge { got: usize, max: usize },
    #[error("batch of {got} bytes exceeds the limit of {max}")]
    BatchBytes { got: usize, max: usize },
    #[error("view change carries {got} bytes of prepared batches, over the limit of {max}")]
    ViewChangeBytes { got: usize, max: usize },
}

/// Whether a key is the one in force for a validator: a replica's directory, or a set a client
/// trusts.
type InForce<'a> = &'a dyn Fn(ReplicaId, &PublicKey) -> bool;

/// The validator that signed `signed`, with its key `in_force`.
fn signer_by<T>(
    in_force: InForce<'_>,
    what: &'static str,
    signed: &Signed<T>,
) -> Result<ReplicaId, CertError> {
    let id = signed.validator().ok_or(CertError::NotValidator { what })?;
    if !in_force(id, signed.signer()) {
        return Err(CertError::NotInForce { what, id });
    }
    Ok(id)
}

/// The validator that signed `signed`, with its key in force in `cfg`'s set.
fn signer_in_force<T>(
    cfg: &ReplicaConfig,
    what: &'static str,
    signed: &Signed<T>,
) -> Result<ReplicaId, CertError> {
    signer_by(&|id, key| cfg.directory.in_force(id, key), what, signed)
}

/// A view of the epoch in force: votes signed under another validator set never count.
fn in_epoch(cfg: &ReplicaConfig, what: &'static str, view: View) -> Result<(), CertError> {
    let expected = cfg.directory.epoch();
    if view.epoch() != expected {
        return Err(CertError::OtherEpoch {
            what,
            got: view.epoch(),
            expected,
        });
    }
    Ok(())
}

/// Counts distinct validators among `votes` that all match `expect`; non-validators and keys
/// not in force are errors.
fn distinct_matching<T, F>(
    cfg: &ReplicaConfig,
    what: &'static str,
    votes: &[Signed<T>],
    matches: F,
) -> Result<BTreeSet<ReplicaId>, CertError>
where
    F: Fn(&T) -> bool,
{
    distinct_matching_by(
        &|id, key| cfg.directory.in_force(id, key),
        what,
        votes,
        matches,
    )
}

/// [`distinct_matching`] with the keys `in_force` says.
fn distinct_matching_by<T, F>(
    in_force: InForce<'_>,
    what: &'static str,
    votes: &[Signed<T>],
    matches: F,
) -> Result<BTreeSet<ReplicaId>, CertError>
where
    F: Fn(&T) -> bool,
{
    let mut ids = BTreeSet::new();
    for v in votes {
        let id = signer_by(in_force, what, v)?;
        if !matches(v.value()) {
            return Err(CertError::Mismatch { what });
        }
        ids.insert(id);
    }
    Ok(ids)
}

/// A pre-prepare's own consistency: batch digest, size, no request twice.
pub fn check_batch(cfg: &ReplicaConfig, pp: &PrePrepare) -> Result<(), CertError> {
    if pp.batch.len() > cfg.max_batch {
        return Err(CertError::BatchTooLarge {
            got: pp.batch.len(),
            max: cfg.max_batch,
        });
    }
    let mut seen = BTreeSet::new();
    let mut bytes = 0usize;
    for r in &pp.batch {
        let b = limits::request_bytes(r);
        if b > cfg.max_request_bytes {
            return Err(CertError::RequestTooLarge {
                got: b,
                max: cfg.max_request_bytes,
            });
        }
        bytes += b;
        if !seen.insert((*r.signer(), r.value().nonce)) {
            return Err(CertError::DuplicateRequest(*r.signer(), r.value().nonce));
        }
    }
    if bytes > cfg.max_batch_bytes {
        return Err(CertError::BatchBytes {
            got: bytes,
            max: cfg.max_batch_bytes,
        });
    }
    if batch_digest(&pp.batch) != pp.digest {
        return Err(CertError::BatchDigest);
    }
    Ok(())
}

fn check_primary(
    cfg: &ReplicaConfig,
    what: &'static str,
    pp: &Signed<PrePrepare>,
) -> Result<(), CertError> {
    let got = signer_in_force(cfg, what, pp)?;
    in_epoch(cfg, what, pp.value().view)?;
    let expected = cfg.primary(pp.value().view);
    if got != expected {
        return Err(CertError::NotPrimary {
            what,
            got,
            expected,
        });
    }
    Ok(())
}

fn vote_matches(pp: &PrePrepare) -> impl Fn(&Vote) -> bool + '_ {
    move |v: &Vote| v.view == pp.view && v.seq == pp.seq && v.digest == pp.digest
}

/// Stable checkpoint proof: `q` distinct validators of the set in force signed (seq, digest);
/// the genesis needs none. A checkpoint at or below the batch the epoch starts after was
/// certified by an earlier set, which this one cannot check: refused.
pub fn check_checkpoint_cert(
    cfg: &ReplicaConfig,
    cert: &CheckpointCert,
    genesis: Digest,
) -> Result<(), CertError> {
    if cert.seq == Seq(0) {
        return if cert.state_digest == genesis {
            Ok(())
        } else {
            Err(CertError::Genesis)
        };
    }
    let start = cfg.directory.start();
    if cert.seq <= start {
        return Err(CertError::BeforeEpoch {
            seq: cert.seq,
            start,
        });
    }
    checkpoint_quorum("checkpoint certificate", cert, cfg.quorum(), &|id, key| {
        cfg.directory.in_force(id, key)
    })
}

/// `need` distinct validators, each by the key `in_force` holds for it, signed checkpoints
/// that match `cert`.
fn checkpoint_quorum(
    what: &'static str,
    cert: &CheckpointCert,
    need: usize,
    in_force: InForce<'_>,
) -> Result<(), CertError> {
    let ids = distinct_matching_by(in_force, what, &cert.proof, |c| {
        c.seq == cert.seq && c.state_digest == cert.state_digest && c.next_set == cert.next_set
    })?;
    if ids.len() < need {
        return Err(CertError::NotEnoughVotes {
            what,
            got: ids.len(),
            need,
        });
    }
    Ok(())
}

/// A checkpoint certificate checked against a validator set alone, with no replica's
/// configuration (what an epoch link's boundary is, and what a client that trusts the set
/// checks): a quorum of the set's members, each by the key the set holds, signed checkpoints
/// that match the certificate.
pub fn check_checkpoint_cert_by(
    set: &ValidatorSet,
    cert: &CheckpointCert,
    what: &'static str,
) -> Result<(), CertError> {
    checkpoint_quorum(what, cert, quorum_for(set.n().max(1)), &|id, key| {
        set.key_of(id) == Some(key)
    })
}

/// Prepared certificate: a valid pre-prepare from the primary of its view and `q - 1` matching
/// prepares from distinct backups.
pub fn check_prepared_cert(cfg: &ReplicaConfig, cert: &PreparedCert) -> Result<(), CertError> {
    let what = "prepared certificate";
    check_primary(cfg, what, &cert.pre_prepare)?;
    let pp = cert.pre_prepare.value();
    check_batch(cfg, pp)?;
    let mut ids = distinct_matching(cfg, what, &cert.prepares, vote_matches(pp))?;
    ids.remove(&cfg.primary(pp.view));
    let need = cfg.quorum() - 1;
    if ids.len() < need {
        return Err(CertError::NotEnoughVotes {
            what,
            got: ids.len(),
            need,
        });
    }
    Ok(())
}

/// Commit certificate: a consistent pre-prepare and `q` matching commits from distinct validators.
/// This alone proves the batch was decided at its sequence number, so one honest peer can serve
/// catch-up.
pub fn check_commit_cert(cfg: &ReplicaConfig, cert: &CommitCert) -> Result<(), CertError> {
    let what = "commit certificate";
    let pp = cert.pre_prepare.value();
    if cert.pre_prepare.validator().is_none() {
        return Err(CertError::NotValidator { what });
    }
    in_epoch(cfg, what, pp.view)?;
    check_batch(cfg, pp)?;
    let ids = distinct_matching(cfg, what, &cert.commits, vote_matches(pp))?;
    if ids.len() < cfg.quorum() {
        return Err(CertError::NotEnoughVotes {
            what,
            got: ids.len(),
            need: cfg.quorum(),
        });
    }
    Ok(())
}

/// A view-change message's content: its checkpoint proof and every prepared certificate, which
/// must be from earlier views, inside the window, one per sequence number. The checkpoint an
/// epoch starts from needs no proof here: every replica of the epoch executed up to it before
/// it entered the epoch (its digest is not used: no replica of the epoch fetches state there).
pub fn check_view_change(
    cfg: &ReplicaConfig,
    vc: &ViewChange,
    genesis: Digest,
) -> Result<(), CertError> {
    in_epoch(cfg, "view change", vc.new_view)?;
    let start = cfg.directory.start();
    if vc.stable.seq != start || start == Seq(0) {
        check_checkpoint_cert(cfg, &vc.stable, genesis)?;
    }
    let mut seqs = BTreeSet::new();
    for cert in &vc.prepared {
        let pp = cert.pre_prepare.value();
        if pp.view >= vc.new_view {
            return Err(CertError::FutureCertificate {
                new_view: vc.new_view,
                cert_view: pp.view,
            });
        }
        if pp.seq <= vc.stable.seq || pp.seq.0 > vc.stable.seq.0 + cfg.window {
            return Err(CertError::OutsideWindow {
                seq: pp.seq,
                stable: vc.stable.seq,
            });
        }
        if !seqs.insert(pp.seq) {
            return Err(CertError::DuplicateSeq(pp.seq));
        }
        check_prepared_cert(cfg, cert)?;
    }
    // An honest replica never holds more (see `limits`): a bigger one would make every new-view
    // that includes it too large to send.
    let bytes: usize = vc
        .prepared
        .iter()
        .map(|c| limits::batch_bytes(&c.pre_prepare.value().batch))
        .sum();
    let max = limits::VIEW_CHANGE_SLACK * cfg.max_window_bytes;
    if bytes > max {
        return Err(CertError::ViewChangeBytes { got: bytes, max });
    }
    Ok(())
}

/// What a new primary must re-propose (PBFT §4.4): for every sequence number between the highest
/// stable checkpoint in the view-change set and the highest prepared one, the batch of the
/// prepared certificate from the highest view, or the null batch where none was prepared.
#[derive(Debug, Clone)]
pub struct NewViewPlan {
    pub min_s: Seq,
    /// The view change whose checkpoint is `min_s` (its proof is reused).
    pub checkpoint: CheckpointCert,
    /// (seq, batch to re-propose) for every seq in (min_s, max_s].
    pub slots: Vec<(Seq, Vec<Signed<Request>>)>,
}

impl NewViewPlan {
    /// Computes the plan from already-validated view changes.
    pub fn compute(view_changes: &[Signed<ViewChange>]) -> Option<NewViewPlan> {
        let best_checkpoint = view_changes
            .iter()
            .map(|vc| &vc.value().stable)
            .max_by_key(|c| c.seq)?;
        let min_s = best_checkpoint.seq;
        let mut chosen: BTreeMap<Seq, (View, &Signed<PrePrepare>)> = BTreeMap::new();
        for vc in view_changes {
            for cert in &vc.value().prepared {
                let pp = cert.pre_prepare.value();
                if pp.seq <= min_s {
                    continue;
                }
                let better = chosen.get(&pp.seq).is_none_or(|(v, _)| pp.view > *v);
                if better {
                    chosen.insert(pp.seq, (pp.view, &cert.pre_prepare));
                }
            }
        }
        let max_s = chosen.keys().next_back().copied().unwrap_or(min_s);
        let slots = (min_s.0 + 1..=max_s.0)
            .map(|s| {
                let batch = chosen
                    .get(&Seq(s))
                    .map(|(_, pp)| pp.value().batch.clone())
                    .unwrap_or_default();
                (Seq(s), batch)
            })
            .collect();
        Some(NewViewPlan {
            min_s,
            checkpoint: best_checkpoint.clone(),
            slots,
        })
    }
}
