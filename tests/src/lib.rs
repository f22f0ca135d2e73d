//! End-to-end test helpers (real nodes on loopback arrive with the validator node issue).
