//! `scbe-sim bench-orders`: what an order costs an agent to check, for a legitimate order and
//! for the junk a stranger can send without any key.
//!
//! Method. Every order is the largest an agent accepts (`MAX_ORDER_BYTES`, so each signature
//! check hashes 1 MiB), checked by the real [`SignedOrder::verify`] against 4 validators with a
//! quorum of 3, `runs` times; the median is reported. Beside each junk figure is what the same
//! order cost before each key was tried at most once and over-long lists were refused: that loop
//! ([`verify_before_the_caps`]) is kept here, and only here, so both run in the same process on
//! the same bytes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use scbe_core::crypto::{Keypair, Verifier};
use scbe_core::rollout::evidence::OrderAction;
use scbe_core::rollout::order::{
    Endorsement, Order, OrderUnit, SignedOrder, MAX_ORDER_BYTES, ORDER_KIND,
};

use crate::bench_fleet::median;

/// One measured kind of order.
#[derive(Debug, Clone)]
pub struct OrderCost {
    pub name: &'static str,
    pub endorsements: usize,
    pub now: Duration,
    /// The same order through the loop before the caps (`None` where it is not junk).
    pub before: Option<Duration>,
    pub accepted: bool,
}

/// The check before this change: a signer was skipped only once it had been counted, so every
/// endorsement naming a validator whose signature failed cost a full check.
pub fn verify_before_the_caps(
    signed: &SignedOrder,
    validators: &[Verifier],
    quorum: usize,
) -> bool {
    let mut counted = BTreeSet::new();
    for e in &signed.endorsements {
        if counted.contains(&e.signer) {
            continue;
        }
        let Some(v) = validators.iter().find(|v| *v.public() == e.signer) else {
            continue;
        };
        if v.verify(ORDER_KIND, &signed.order, &e.signature).is_ok() {
            counted.insert(e.signer);
        }
        if counted.len() >= quorum {
            break;
        }
    }
    counted.len() >= quorum
}

/// An order padded to just under `MAX_ORDER_BYTES` with agent ids.
fn largest_order() -> Vec<u8> {
    let mut order = Order {
        rollout: 1,
        action: OrderAction::Deploy,
        batch: 1,
        issued_seq: 1,
        version: "r1".into(),
        release_digest: String::new(),
        units: vec![OrderUnit {
            provider: "huggingface".into(),
            id: "textgen".into(),
            uri: "hf://org/model".into(),
        }],
        agents: Vec::new(),
    };
    // Large steps, then small ones, so the order ends within 256 bytes of the limit.
    let mut i = 0u64;
    for (step, margin) in [(1000, 20_000), (10, 256)] {
        while order.to_bytes().len() + margin < MAX_ORDER_BYTES {
            for _ in 0..step {
                order.agents.push(format!("agent-{i:09}"));
                i += 1;
            }
        }
    }
    order.agents.sort();
    order.to_bytes()
}

fn time<R>(runs: usize, mut f: impl FnMut() -> R) -> (Duration, R) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    (
        median(&times).unwrap_or_default(),
        last.expect("at least one run"),
    )
}

/// Measures a legitimate order and three kinds of junk, `runs` times each.
pub fn order_costs(runs: usize) -> Vec<OrderCost> {
    let keys: Vec<Keypair> = (0..4)
        .map(|i| Keypair::from_label(&format!("bench-validator-{i}")))
        .collect();
    let set: Vec<Verifier> = keys
        .iter()
        .map(|k| Verifier::new(k.public()).expect("a generated key is valid"))
        .collect();
    let bytes = largest_order();
    let stranger = Keypair::from_label("stranger");
    let forged = |k: &Keypair| Endorsement {
        signer: k.public(),
        signature: stranger.sign(ORDER_KIND, &bytes),
    };
    let cases: Vec<(&'static str, Vec<Endorsement>, bool)> = vec![
        (
            "legitimate: 3 of 4 validators",
            keys[..3]
                .iter()
                .map(|k| Endorsement::sign(&bytes, k))
                .collect(),
            false,
        ),
        (
            "1,024 forged endorsements naming validator 0",
            vec![forged(&keys[0]); 1024],
            true,
        ),
        (
            "4 forged endorsements, one per validator",
            keys.iter().map(forged).collect(),
            true,
        ),
        (
            "4 x 1 forged naming validator 0",
            vec![forged(&keys[0]); 4],
            true,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, endorsements, junk)| {
            let signed = SignedOrder {
                order: bytes.clone(),
                endorsements,
                epochs: Vec::new(),
            };
            let (now, result) = time(runs, || signed.verify(&set, 3));
            let before =
                junk.then(|| time(runs.min(3), || verify_before_the_caps(&signed, &set, 3)).0);
            OrderCost {
                name,
                endorsements: signed.endorsements.len(),
                now,
                before,
                accepted: result.is_ok(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_legitimate_order_is_accepted() {
        let costs = order_costs(1);
        let accepted: Vec<_> = costs
            .iter()
            .filter(|c| c.accepted)
            .map(|c| c.name)
            .collect();
        assert_eq!(accepted, vec!["legitimate: 3 of 4 validators"]);
        assert!(costs.iter().skip(1).all(|c| c.before.is_some()));
        let size = largest_order().len();
        assert!(
            size <= MAX_ORDER_BYTES && size + 512 > MAX_ORDER_BYTES,
            "{size}"
        );
    }
}
