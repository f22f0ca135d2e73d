//! A request's operation JSON, as the ledger parses it after ordering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = scbe_core::governance::Operation::from_bytes(data);
});
