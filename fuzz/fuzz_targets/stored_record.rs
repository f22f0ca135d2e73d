//! What a node reads back from its store (a damaged disk must give an error, never a panic).
#![no_main]

mod directory;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = scbe_wire::decode_record(data, directory::directory());
});
