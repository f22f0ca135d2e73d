//! Passing client requests on to peers. A replica that receives a request from a client sends
//! it to every peer (the primary must order it; the backups time it, PBFT §4.4), but not one
//! message per request: within a turn (see [`Replica::begin_turn`]) requests are held and go out
//! together in one `Relay` per byte-capped chunk, so a receiver checks their client signatures
//! in one batch and handles one envelope instead of many. A primary relays even the requests it
//! put in its own pre-prepare that turn: if that pre-prepare is lost and the view changes, the
//! backups must still hold the request (not relaying them stalled a process cluster for 30 s).

use super::super::action::Action;
use super::super::limits;
use super::super::message::{Kind, Relay, Request, Signed};
use super::super::state_machine::StateMachine;
use super::super::types::ReplicaId;
use super::Replica;

impl<A: StateMachine> Replica<A> {
    /// Opens a turn: client requests are held for relay until [`Replica::end_turn`]. Outside a
    /// turn every `handle` relays at once (the simulator and the unit tests work so).
    pub fn begin_turn(&mut self) {
        self.turn_open = true;
    }

    /// Closes the turn: relays what it held and returns the resulting actions.
    pub fn end_turn(&mut self) -> Vec<Action> {
        self.turn_open = false;
        self.flush_relays();
        std::mem::take(&mut self.out)
    }

    pub(super) fn relay(&mut self, r: Signed<Request>) {
        self.relay_held.push(r);
        if !self.turn_open {
            self.flush_relays();
        }
    }

    pub(super) fn flush_relays(&mut self) {
        let held = std::mem::take(&mut self.relay_held);
        let mut chunk: Vec<Signed<Request>> = Vec::new();
        let mut bytes = 0;
        for r in held {
            let size = limits::request_bytes(&r);
            if !chunk.is_empty() && bytes + size > self.cfg.max_batch_bytes {
                self.send_relay(std::mem::take(&mut chunk));
                bytes = 0;
            }
            bytes += size;
            chunk.push(r);
        }
        if !chunk.is_empty() {
            self.send_relay(chunk);
        }
    }

    /// One request goes as its client's own envelope; more go in one signed `Relay`.
    fn send_relay(&mut self, mut requests: Vec<Signed<Request>>) {
        if requests.len() == 1 {
            if let Some(r) = requests.pop() {
                self.broadcast(&r);
            }
            return;
        }
        let relay = self.seal(Relay { requests }, Kind::Relay, |c, v| c.encode_relay(v));
        self.broadcast(&relay);
    }

    pub(super) fn on_relay(&mut self, relay: &Relay, _from: ReplicaId) {
        for r in &relay.requests {
            self.on_request(r.clone(), false);
        }
    }
}
