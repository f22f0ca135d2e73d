//! Stalled steps: agents alive (their reports arrive) but none acknowledging the current order
//! under some view's primary. `f + 1` distinct validators' claims for the same step and view mark
//! that view's primary for replacement (`replace_view`); the runtime then changes view, and the
//! new primary executes the step. The release is not blamed: nothing is rolled back.

use super::{reject, Ledger, Rejection};
use crate::governance::stage::Tongue;

impl Ledger {
    pub(super) fn stalled(
        &mut self,
        seq: u64,
        validator: u32,
        id: u64,
        issued_seq: u64,
        view: u64,
    ) -> Result<(), Rejection> {
        if !self.is_validator(validator) {
            return reject(format!("validator {validator} is not in the validator set"));
        }
        let needed = self.validator_f() + 1;
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return reject(format!("unknown rollout {id}"));
        };
        if !r.status.is_active() || r.step_seq != issued_seq {
            return reject(format!(
                "rollout {id} is no longer at the step issued at seq {issued_seq}"
            ));
        }
        if r.replace_view.is_some_and(|v| v >= view) {
            return reject(format!(
                "the primary of view {view} is already being replaced"
            ));
        }
        let claims = r.stalled.entry(view).or_default();
        if !claims.insert(validator) {
            return reject(format!(
                "validator {validator} already claimed this step stalled in view {view}"
            ));
        }
        let (count, who) = (
            claims.len(),
            claims
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        if count >= needed {
            r.replace_view = Some(view);
            self.event(
                seq,
                Tongue::KO,
                "leader_replaced",
                format!("rollout:{id}"),
                format!(
                    "validators {who} see the step issued at seq {issued_seq} unexecuted: the primary of view {view} is replaced"
                ),
            );
        } else {
            self.event(
                seq,
                Tongue::AV,
                "step_stalled",
                format!("rollout:{id}"),
                format!(
                    "validator {validator} sees no agent acknowledge the order issued at seq {issued_seq} in view {view} ({count} of {needed} claims)"
                ),
            );
        }
        Ok(())
    }
}
