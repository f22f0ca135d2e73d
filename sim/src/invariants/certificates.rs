//! Certificate validity: every decision an honest replica delivers carries a commit certificate
//! that an outsider can check: the pre-prepare's batch matches its digest, and a true quorum of
//! distinct validators signed matching commits. Checked from the envelopes' bytes, independently
//! of the core's own certificate code.

use std::collections::BTreeSet;

use scbe_core::consensus::{batch_digest, Decision, Directory, Principal};

pub struct Certificates {
    directory: Directory,
    quorum: usize,
}

impl Certificates {
    pub fn new(directory: Directory, quorum: usize) -> Self {
        Self { directory, quorum }
    }

    pub fn on_deliver(&self, node: usize, d: &Decision) -> Option<String> {
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
            let Some(Principal::Validator(id)) = self.directory.principal(&env.signer) else {
                return fail("a commit is not from a validator".into());
            };
            let v = c.value();
            if (v.view, v.seq, v.digest) != (pp.view, pp.seq, pp.digest) {
                return fail("a commit does not match the pre-prepare".into());
            }
            signers.insert(id);
        }
        if signers.len() < self.quorum {
            return fail(format!(
                "{} distinct commit signers, quorum is {}",
                signers.len(),
                self.quorum
            ));
        }
        None
    }
}
