//! The estimates every byte limit is derived from (`limits::worst_case`) against the largest
//! messages replicas can really build at those limits, encoded by the real codec: each
//! estimate is at least the real size (or a message within the limits could pass the cap) and
//! at most twice it (or the limits derived from it give away most of the window). cargo-mutants
//! (consensus shards 1 and 2) found 33 of `worst_case`'s and `default_window_bytes`' terms
//! changeable with every consensus test passing: the scenario tests run at the default
//! limits, where the window budget dwarfs every other term.

use prost::Message as _;
use scbe_core::consensus::limits::{worst_case, SizeInputs, REQUEST_FRAMING_BYTES};
use scbe_core::consensus::*;
use scbe_core::crypto::Keypair;
use scbe_wire::{encode_envelope, ProtoCodec};

struct Fixture {
    keys: Vec<Keypair>,
    inputs: SizeInputs,
}

impl Fixture {
    fn new(n: usize, window: u64, max_batch_bytes: usize, max_window_bytes: usize) -> Self {
        Fixture {
            keys: (0..n)
                .map(|i| Keypair::from_label(&format!("worst{i}")))
                .collect(),
            inputs: SizeInputs {
                n,
                quorum: config::quorum_for(n),
                window,
                max_batch_bytes,
                max_window_bytes,
                max_transfer_bytes: 2 * max_batch_bytes,
            },
        }
    }

    fn validator(&self, i: usize) -> (&Keypair, Principal) {
        (&self.keys[i], Principal::Validator(ReplicaId(i as u32)))
    }

    /// Requests whose batch costs `bytes` (each at most 1 KiB of operation).
    fn batch(&self, seq: u64, bytes: usize) -> Vec<Signed<Request>> {
        let client = Keypair::from_label("worst-client");
        let mut left = bytes;
        let mut out = Vec::new();
        while left > REQUEST_FRAMING_BYTES + 32 {
            let op = (left - REQUEST_FRAMING_BYTES - 16).min(1024);
            let r = Signed::seal(
                Request {
                    nonce: seq * 10_000 + out.len() as u64,
                    operation: vec![7; op],
                },
                Kind::Request,
                |v| ProtoCodec.encode_request(v),
                &client,
                Principal::Requester,
            );
            // Checked, not assumed: a cost below the operation's bytes would never use `left`
            // up (cargo-mutants' `request_bytes` as 0 hung here until its timeout).
            let cost = limits::request_bytes(&r);
            assert!(cost > op, "a request costs more than its operation: {cost}");
            left = left.saturating_sub(cost);
            out.push(r);
        }
        out
    }

    fn pre_prepare(&self, view: u64, seq: u64, batch_bytes: usize) -> Signed<PrePrepare> {
        let batch = self.batch(seq, batch_bytes);
        let (key, who) = self.validator(view as usize % self.keys.len());
        Signed::seal(
            PrePrepare {
                view: View(view),
                seq: Seq(seq),
                digest: message::batch_digest(&batch),
                batch,
            },
            Kind::PrePrepare,
            |v| ProtoCodec.encode_pre_prepare(v),
            key,
            who,
        )
    }

    /// `count` votes of `kind` on `pp`, from validators other than its primary first.
    fn votes(&self, kind: Kind, pp: &Signed<PrePrepare>, count: usize) -> Vec<Signed<Vote>> {
        let v = pp.value();
        (1..=count)
            .map(|i| {
                let (key, who) = self.validator((v.view.0 as usize + i) % self.keys.len());
                let vote = Vote {
                    view: v.view,
                    seq: v.seq,
                    digest: v.digest,
                };
                Signed::seal(vote, kind, |x| ProtoCodec.encode_vote(x), key, who)
            })
            .collect()
    }

    /// A checkpoint certificate with a vote from every validator.
    fn checkpoint(&self, seq: u64, next_set: Option<Digest>) -> CheckpointCert {
        let cp = Checkpoint {
            seq: Seq(seq),
            state_digest: Digest([3; 32]),
            next_set,
        };
        CheckpointCert {
            seq: Seq(seq),
            state_digest: cp.state_digest,
            next_set,
            proof: (0..self.keys.len())
                .map(|i| {
                    let (key, who) = self.validator(i);
                    Signed::seal(
                        cp,
                        Kind::Checkpoint,
                        |x| ProtoCodec.encode_checkpoint(x),
                        key,
                        who,
                    )
                })
                .collect(),
        }
    }

    /// The largest view change: a prepared certificate (with a vote from every other member of
    /// a quorum) in every slot of the window, the slots' batches adding up to the accepted
    /// slack times the window budget, each at most a full batch.
    fn view_change(&self, from: usize) -> Signed<ViewChange> {
        let i = &self.inputs;
        let total = limits::VIEW_CHANGE_SLACK * i.max_window_bytes;
        let per_slot = (total / i.window as usize).min(i.max_batch_bytes);
        let prepared = (1..=i.window)
            .map(|seq| {
                let pp = self.pre_prepare(0, seq, per_slot);
                let prepares = self.votes(Kind::Prepare, &pp, i.quorum - 1);
                PreparedCert {
                    pre_prepare: pp,
                    prepares,
                }
            })
            .collect();
        let (key, who) = self.validator(from);
        Signed::seal(
            ViewChange {
                new_view: View(1),
                stable: self.checkpoint(0, None),
                prepared,
            },
            Kind::ViewChange,
            |x| ProtoCodec.encode_view_change(x),
            key,
            who,
        )
    }

    /// As many links of the validator-set chain as a response carries, each certified by
    /// every validator of a set of today's n.
    fn links(&self) -> Vec<EpochLink> {
        let n = self.inputs.n;
        let set = |epoch: u64| ValidatorSet {
            epoch,
            start: Seq(epoch),
            members: (0..n)
                .map(|i| (ReplicaId(i as u32), self.keys[i].public()))
                .collect(),
        };
        (1..=limits::MAX_EPOCH_LINKS as u64)
            .map(|e| EpochLink {
                previous: set(e - 1),
                boundary: self.checkpoint(e, Some(set(e).digest())),
                set: set(e),
            })
            .collect()
    }

    /// The largest state response: decided batches up to the transfer budget plus one full
    /// batch, spread over every slot of the window, each with a quorum of commits, and the
    /// links.
    fn state_response(&self) -> Signed<StateResponse> {
        let i = &self.inputs;
        let total = i.max_transfer_bytes + i.max_batch_bytes;
        let decided = (1..=i.window)
            .map(|s| {
                let pp = self.pre_prepare(0, s, total / i.window as usize);
                let commits = self.votes(Kind::Commit, &pp, i.quorum);
                CommitCert {
                    pre_prepare: pp,
                    commits,
                }
            })
            .collect();
        let (key, who) = self.validator(2);
        Signed::seal(
            StateResponse {
                snapshot: None,
                decided,
                epochs: self.links(),
            },
            Kind::StateResponse,
            |x| ProtoCodec.encode_state_response(x),
            key,
            who,
        )
    }

    fn size<T>(s: &Signed<T>) -> usize {
        encode_envelope(s.envelope()).len()
    }
}

fn assert_bounds(what: &str, estimate: usize, real: usize) {
    assert!(
        real <= estimate,
        "{what}: a real message of {real} bytes over the estimate of {estimate}"
    );
    assert!(
        estimate <= 2 * real,
        "{what}: the estimate of {estimate} bytes is over twice the largest real one ({real})"
    );
}

#[test]
fn each_estimate_bounds_the_largest_real_message_and_not_by_much() {
    // Small budgets, so the per-slot and per-vote terms weigh as much as the batches do.
    for (n, window, batch, budget) in [(4, 16, 4096, 16_384), (7, 8, 2048, 8192)] {
        let f = Fixture::new(n, window, batch, budget);
        let w = worst_case(&f.inputs);
        let at = format!("n={n} window={window}");

        let pp = f.pre_prepare(0, 1, batch);
        assert_bounds(
            &format!("{at} pre-prepare"),
            w.pre_prepare,
            Fixture::size(&pp),
        );

        let vc = f.view_change(1);
        assert_bounds(
            &format!("{at} view change"),
            w.view_change,
            Fixture::size(&vc),
        );

        // A quorum of view changes and a full batch re-proposed in every slot.
        let q = f.inputs.quorum;
        let view_changes: Vec<_> = (1..=q).map(|i| f.view_change(i % n)).collect();
        let per_slot = (limits::VIEW_CHANGE_SLACK * budget / window as usize).min(batch);
        let (key, who) = f.validator(1);
        let nv = Signed::seal(
            NewView {
                view: View(1),
                view_changes,
                pre_prepares: (1..=window)
                    .map(|s| f.pre_prepare(1, s, per_slot))
                    .collect(),
            },
            Kind::NewView,
            |x| ProtoCodec.encode_new_view(x),
            key,
            who,
        );
        assert_bounds(&format!("{at} new-view"), w.new_view, Fixture::size(&nv));

        // What the responder counts a link as, against its encoding with the field's tag and
        // length (cargo-mutants at 8c1a26e: `link_bytes` answering 0 went unseen, which would
        // let a response carry its every link past the links' budget).
        for link in &f.links() {
            let encoded =
                scbe_wire::epoch_links_to_proto(std::slice::from_ref(link))[0].encoded_len() + 4;
            assert_bounds(&format!("{at} link"), limits::link_bytes(link), encoded);
        }
        let response = f.state_response();
        assert_bounds(
            &format!("{at} state response"),
            w.state_response,
            Fixture::size(&response),
        );
    }
}

/// Each slot added to the window adds at least as much to the state-response estimate as to
/// the real largest response (a decided batch's framing and its quorum of commits): the links'
/// generous allowance would otherwise hide a per-slot term dropped from the estimate
/// (cargo-mutants at 8c1a26e: `slots * slot_framing` as `slots / slot_framing` or
/// `slots + slot_framing` went unseen).
#[test]
fn the_state_response_estimate_grows_with_the_window_at_least_as_the_real_one() {
    let small = Fixture::new(4, 8, 8192, 32_768);
    let large = Fixture::new(4, 32, 8192, 32_768);
    let estimate = |f: &Fixture| worst_case(&f.inputs).state_response;
    let real = |f: &Fixture| Fixture::size(&f.state_response());
    let (grew, real_grew) = (
        estimate(&large) - estimate(&small),
        real(&large) - real(&small),
    );
    assert!(real_grew > 0);
    assert!(
        grew >= real_grew,
        "24 more slots: the estimate grew {grew} bytes, the real response {real_grew}"
    );
}
