//! What a replica holds for one sequence number: the round's pre-prepare and votes, the
//! prepared certificate that survives view changes, and the commit certificate.

use std::collections::BTreeMap;

use super::super::limits;
use super::super::message::{CommitCert, PrePrepare, PreparedCert, Signed, Vote};
use super::super::types::{ReplicaId, View};

/// Per-sequence-number protocol state.
#[derive(Default)]
pub(super) struct Slot {
    /// View of the current voting round; votes from other views are not mixed in.
    pub(super) view: View,
    pub(super) pre_prepare: Option<Signed<PrePrepare>>,
    pub(super) prepares: BTreeMap<ReplicaId, Signed<Vote>>,
    pub(super) commits: BTreeMap<ReplicaId, Signed<Vote>>,
    /// Prepared in the current round (commit sent).
    pub(super) prepared: bool,
    /// Highest-view prepared certificate: survives view changes, reported in view changes.
    pub(super) prepared_cert: Option<PreparedCert>,
    pub(super) committed: Option<CommitCert>,
    /// Encoded bytes of `pre_prepare`'s and `prepared_cert`'s batches (see [`limits`]).
    pub(super) pre_prepare_bytes: usize,
    pub(super) prepared_bytes: usize,
}

impl Slot {
    pub(super) fn enter_round(&mut self, view: View) {
        if self.view != view {
            self.view = view;
            self.pre_prepare = None;
            self.pre_prepare_bytes = 0;
            self.prepares.clear();
            self.commits.clear();
            self.prepared = false;
        }
    }

    pub(super) fn set_pre_prepare(&mut self, pp: Signed<PrePrepare>) {
        self.pre_prepare_bytes = limits::batch_bytes(&pp.value().batch);
        self.pre_prepare = Some(pp);
    }

    pub(super) fn set_prepared(&mut self, cert: PreparedCert) {
        self.prepared_bytes = limits::batch_bytes(&cert.pre_prepare.value().batch);
        self.prepared_cert = Some(cert);
    }

    /// What this slot adds to a view change (or would, once its pre-prepare prepares).
    pub(super) fn held_bytes(&self) -> usize {
        self.pre_prepare_bytes.max(self.prepared_bytes)
    }
}
