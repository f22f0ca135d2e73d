//! Provider manifests (HuggingFace, Vertex, SageMaker JSON) as `scbe fuse` reads them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = scbe_core::governance::parse_manifest("fuzz.json", text);
    }
});
