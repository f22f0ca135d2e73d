//! Certificate validity: every decision an honest replica delivers carries a commit certificate
//! that an outsider can check: the pre-prepare's batch matches its digest, and a true quorum of
//! distinct validators signed matching commits. Checked from the envelopes' bytes, independently
//! of the core's own certificate code. The validators are the set in force at the decision's
//! seq (`epochs.rs`): once a change took effect, a rotated-out or removed key counts for nothing.

use std::collections::BTreeSet;

use scbe_core::consensus::config::quorum_for;
use scbe_core::consensus::{batch_digest, Decision, ValidatorSet};

#[derive(Default)]
pub struct Certificates;

impl Certificates {
    /// `set`: the validators in force at `d.seq`.
    pub fn on_deliver(&self, node: usize, d: &Decision, set: &ValidatorSet) -> Option<String> {
        let cert = &d.certificate;
        let pp = cert.pre_prepare.value();
        let fail = |why: String| Some(format!("replica {node} delivered {}: {why}", d.seq));
        if pp.seq != d.seq {
            return fail(format!("certificate is for {}", pp.seq));
        }
        if batch_digest(&pp.batch) != pp.digest {
            return fail("batch does not match the pre-prepare digest".into());
        }
        if cert.pre_prepare.envelope().verify().is_err() {
            return fail("pre-prepare signature does not verify".into());
        }
        let mut signers = BTreeSet::new();
        for c in &cert.commits {
            let env = c.envelope();
            if env.verify().is_err() {
                return fail("a commit signature does not verify".into());
            }
            let Some((id, _)) = set.members.iter().find(|(_, k)| *k == env.signer) else {
                return fail(format!(
                    "a commit is signed by {}, not a key of epoch {}'s set",
                    env.signer, set.epoch
                ));
            };
            let v = c.value();
            if (v.view, v.seq, v.digest) != (pp.view, pp.seq, pp.digest) {
                return fail("a commit does not match the pre-prepare".into());
            }
            signers.insert(id);
        }
        let quorum = quorum_for(set.n());
        if signers.len() < quorum {
            return fail(format!(
                "{} distinct commit signers, epoch {}'s quorum is {quorum}",
                signers.len(),
                set.epoch
            ));
        }
        None
    }
}
