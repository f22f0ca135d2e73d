//! A bounded memory of envelopes whose signatures were already checked, shared by the services
//! that receive peer and client envelopes (part of `wire`'s door: see `wire::open_proto_cached`).

use scbe_core::consensus::Digest;

/// Envelopes already verified, by digest, so an envelope checked once (a request when it was
/// relayed) is not checked again when it arrives nested (inside a pre-prepare, a certificate, a
/// view change). The digest covers kind, signer, payload and signature, so identical bytes are
/// identical validity. Bounded: the oldest entries are forgotten first.
pub struct VerifiedCache {
    inner: std::sync::Mutex<(
        std::collections::BTreeSet<Digest>,
        std::collections::VecDeque<Digest>,
    )>,
    capacity: usize,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: std::sync::Mutex::new(Default::default()),
            capacity,
        }
    }

    pub(super) fn contains(&self, d: &Digest) -> bool {
        self.inner.lock().map(|g| g.0.contains(d)).unwrap_or(false)
    }

    pub(super) fn insert(&self, d: Digest) {
        if let Ok(mut g) = self.inner.lock() {
            if g.0.insert(d) {
                g.1.push_back(d);
                while g.1.len() > self.capacity {
                    if let Some(old) = g.1.pop_front() {
                        g.0.remove(&old);
                    }
                }
            }
        }
    }
}
