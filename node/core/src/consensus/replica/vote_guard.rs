//! The vote guard (contract item 8): a replica never signs two pre-prepares, or two prepares,
//! with different digests for one (view, seq), across restarts too.
//!
//! Why reservations: persisting every signature before its message left put two fsyncs on the
//! path of every decision, one after the other (the primary's pre-prepare, then each backup's
//! prepare), about a millisecond each on these disks. Instead, before signing at (view, seq)
//! above what it has reserved in that view, the replica persists a reservation of the view's
//! seqs up to `seq + window` ([`Record::SignReserved`]): one durable record per window's worth
//! of decisions, in a turn whose messages wait for it as before. What it signs under the
//! reservation is remembered in memory only. A replica restored from its records cannot know
//! what it signed under an earlier life's reservation, so it abstains there: it signs no
//! pre-prepare or prepare at a reserved (view, seq) unless an exact record ([`Record::Signed`],
//! still written for a new-view's pre-prepares) names the digest. Abstaining is always safe
//! (a replica may stay silent); a backup still commits what the others prepared (its prepared
//! certificate stays durable before its commit leaves, as a view change must report it), and a
//! restored primary that could not propose in its view leaves it (`Replica::restore`).

use std::collections::BTreeMap;

use super::super::action::Record;
use super::super::state_machine::StateMachine;
use super::super::types::{Digest, Seq, View};
use super::Replica;

/// Why the guard refused a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// This replica signed another digest at this (view, seq).
    Conflict,
    /// An earlier life of this replica reserved this (view, seq) and may have signed there.
    Abstain,
}

#[derive(Default)]
pub(super) struct VoteGuard {
    /// The digest signed at each (view, seq), in this life or by an exact record.
    signed: BTreeMap<(View, Seq), Digest>,
    /// Per view, the highest seq a reservation of this life covers.
    reserved: BTreeMap<View, Seq>,
    /// Per view, the highest seq an earlier life reserved: what it signed there is unknown.
    abstain: BTreeMap<View, Seq>,
}

impl VoteGuard {
    /// Whether this replica signed another digest at (view, seq).
    pub(super) fn conflicts(&self, view: View, seq: Seq, digest: Digest) -> bool {
        self.signed.get(&(view, seq)).is_some_and(|d| *d != digest)
    }

    /// Whether a pre-prepare at (view, seq) may not be signed with a new digest: one was signed
    /// there in this life, or an earlier life may have.
    pub(super) fn taken(&self, view: View, seq: Seq) -> bool {
        self.signed.contains_key(&(view, seq)) || self.abstains(view, seq)
    }

    /// Whether an earlier life reserved (view, seq): this one signs nothing new there.
    pub(super) fn abstains(&self, view: View, seq: Seq) -> bool {
        self.abstain.get(&view).is_some_and(|a| seq <= *a)
    }

    /// Signs `digest` at (view, seq) under a reservation: returns the reservation to persist
    /// before the message leaves, if this seq is beyond the view's current one (`ahead` more
    /// seqs are reserved with it).
    pub(super) fn sign(
        &mut self,
        view: View,
        seq: Seq,
        digest: Digest,
        ahead: u64,
    ) -> Result<Option<Record>, Refusal> {
        match self.signed.get(&(view, seq)) {
            Some(d) if *d == digest => return Ok(None),
            Some(_) => return Err(Refusal::Conflict),
            None if self.abstains(view, seq) => return Err(Refusal::Abstain),
            None => {}
        }
        self.signed.insert((view, seq), digest);
        if self.reserved.get(&view).is_some_and(|r| seq <= *r) {
            return Ok(None);
        }
        let through = Seq(seq.0.saturating_add(ahead));
        self.reserved.insert(view, through);
        Ok(Some(Record::SignReserved { view, through }))
    }

    /// Signs `digest` at (view, seq) with an exact record (a new-view's pre-prepares, whose
    /// turn persists its view change anyway): the record to persist, if this is new.
    pub(super) fn sign_exact(
        &mut self,
        pre_prepare: bool,
        view: View,
        seq: Seq,
        digest: Digest,
    ) -> Option<Record> {
        self.signed
            .insert((view, seq), digest)
            .is_none()
            .then_some(Record::Signed {
                pre_prepare,
                view,
                seq,
                digest,
            })
    }

    /// An exact record read back on restart.
    pub(super) fn restore_signed(&mut self, view: View, seq: Seq, digest: Digest) {
        self.signed.insert((view, seq), digest);
    }

    /// A reservation read back on restart: an earlier life's, so abstain under it. (This life
    /// reserves afresh above it: [`VoteGuard::sign`] refuses everything below.)
    pub(super) fn restore_reserved(&mut self, view: View, through: Seq) {
        let e = self.abstain.entry(view).or_insert(through);
        *e = (*e).max(through);
    }

    /// Below a stable checkpoint nothing is signed again: forget it.
    pub(super) fn forget_through(&mut self, stable: Seq) {
        self.signed.retain(|(_, seq), _| *seq > stable);
        self.reserved.retain(|_, through| *through > stable);
        self.abstain.retain(|_, through| *through > stable);
    }
}

impl<A: StateMachine> Replica<A> {
    /// Signs `digest` at (view, seq) under the guard's reservation, persisting a new
    /// reservation first when this seq is beyond the view's current one.
    pub(super) fn sign_reserved(
        &mut self,
        view: View,
        seq: Seq,
        digest: Digest,
    ) -> Result<(), Refusal> {
        if let Some(reservation) = self.guard.sign(view, seq, digest, self.cfg.window)? {
            self.persist(reservation);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: u8) -> Digest {
        Digest([b; 32])
    }

    #[test]
    fn one_reservation_covers_the_seqs_ahead_and_conflicts_are_refused() {
        let mut g = VoteGuard::default();
        let first = g.sign(View(0), Seq(1), d(1), 64);
        assert!(matches!(
            first,
            Ok(Some(Record::SignReserved {
                view: View(0),
                through: Seq(65)
            }))
        ));
        assert!(matches!(g.sign(View(0), Seq(2), d(2), 64), Ok(None)));
        assert!(matches!(g.sign(View(0), Seq(65), d(3), 64), Ok(None)));
        assert!(matches!(
            g.sign(View(0), Seq(66), d(4), 64),
            Ok(Some(Record::SignReserved {
                through: Seq(130),
                ..
            }))
        ));
        // The same digest again is fine (a retransmission); another is not.
        assert!(matches!(g.sign(View(0), Seq(1), d(1), 64), Ok(None)));
        assert_eq!(
            g.sign(View(0), Seq(1), d(9), 64).err(),
            Some(Refusal::Conflict)
        );
        assert!(g.conflicts(View(0), Seq(1), d(9)));
        // Another view is reserved on its own.
        assert!(matches!(g.sign(View(1), Seq(1), d(9), 64), Ok(Some(_))));
    }

    #[test]
    fn a_restored_replica_abstains_under_its_reservations_except_where_a_record_is_exact() {
        let mut g = VoteGuard::default();
        g.restore_reserved(View(2), Seq(40));
        g.restore_reserved(View(2), Seq(20));
        g.restore_signed(View(2), Seq(5), d(5));
        assert!(matches!(g.sign(View(2), Seq(5), d(5), 64), Ok(None)));
        assert_eq!(
            g.sign(View(2), Seq(6), d(6), 64).err(),
            Some(Refusal::Abstain)
        );
        assert_eq!(
            g.sign(View(2), Seq(40), d(6), 64).err(),
            Some(Refusal::Abstain)
        );
        assert!(g.taken(View(2), Seq(40)) && !g.taken(View(2), Seq(41)));
        assert!(g.abstains(View(2), Seq(40)) && !g.abstains(View(3), Seq(1)));
        // Above the old reservation it signs, and reserves anew.
        assert!(matches!(
            g.sign(View(2), Seq(41), d(7), 64),
            Ok(Some(Record::SignReserved {
                through: Seq(105),
                ..
            }))
        ));
        // A later view was never reserved: nothing to abstain from.
        assert!(matches!(g.sign(View(3), Seq(6), d(6), 64), Ok(Some(_))));
        // A stable checkpoint at 40 ends the abstention.
        g.forget_through(Seq(40));
        assert!(!g.taken(View(2), Seq(6)));
    }

    #[test]
    fn exact_records_are_written_once() {
        let mut g = VoteGuard::default();
        assert!(g.sign_exact(true, View(1), Seq(3), d(1)).is_some());
        assert!(g.sign_exact(true, View(1), Seq(3), d(1)).is_none());
        assert!(g.conflicts(View(1), Seq(3), d(2)));
    }
}
