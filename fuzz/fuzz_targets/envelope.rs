//! Peer and client bytes: envelope, signature, then every consensus message (relays and
//! pre-prepares with nested requests included). Must return a value or an error, never panic.
#![no_main]

mod directory;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = scbe_wire::open(data, directory::directory());
});
