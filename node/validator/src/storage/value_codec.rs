//! How the store writes a value of the `records` and `decided` tables: one tag byte, then the
//! bytes as they are or as one zstd frame.
//!
//! Why: decided batches and snapshots are protobuf full of JSON (operations, the ledger's
//! state) and made up most of a validator's disk under registrations. zstd at level 1 makes
//! them 4.7x and 9x smaller there for about 2 µs of CPU per request. Small values (votes, view
//! changes) are kept as they are: a frame's header would cost more than it saves.

use std::borrow::Cow;
use std::cell::RefCell;

const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Values from this size on are compressed.
const COMPRESS_FROM: usize = 256;
/// Fast, and within a few percent of level 3's ratio on this data.
const LEVEL: i32 = 1;
/// The largest value a stored frame may claim to expand to. A frame's header says its size; a
/// damaged one that claims more is refused instead of allocated.
const MAX_VALUE_BYTES: u64 = 1 << 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("empty value")]
    Empty,
    #[error("unknown value encoding {0}")]
    Tag(u8),
    #[error("compressed value is damaged: {0}")]
    Frame(String),
}

/// The stored form of `bytes`.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() >= COMPRESS_FROM {
        // The level is valid and the library sizes its own buffer, so an error would be a bug
        // in it: the value is then kept as it is. (Compressing after a tag byte in place would
        // take unsafe code, which the workspace forbids; the copy is of the small output.)
        if let Some(frame) = compress(bytes) {
            if frame.len() < bytes.len() {
                let mut out = Vec::with_capacity(1 + frame.len());
                out.push(ZSTD);
                out.extend_from_slice(&frame);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(RAW);
    out.extend_from_slice(bytes);
    out
}

thread_local! {
    /// One compression context per thread, made on first use and kept: creating one per value
    /// (`zstd::bulk::compress`) was 2.7% of a validator's CPU on the path of a sequential
    /// decision. A context starts every frame afresh, so the frames are the same.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

thread_local! {
    /// One decompression context per thread, kept for the same reason: making one per value
    /// (`zstd::bulk::decompress`) was a third of a validator's CPU once release bodies were
    /// read back from the store one by one (a snapshot encoding reads every body).
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `frame` decompressed into at most `capacity` bytes, through this thread's context.
fn decompress(frame: &[u8], capacity: usize) -> Result<Vec<u8>, ValueError> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(
                zstd::bulk::Decompressor::new().map_err(|e| ValueError::Frame(e.to_string()))?,
            );
        }
        match cell.as_mut() {
            Some(d) => d
                .decompress(frame, capacity)
                .map_err(|e| ValueError::Frame(e.to_string())),
            None => Err(ValueError::Frame("no decompression context".into())),
        }
    })
}

/// One zstd frame of `bytes` at [`LEVEL`], through this thread's context.
fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        cell.as_mut()?.compress(bytes).ok()
    })
}

/// The bytes `stored` holds (borrowed when they were stored as they are).
pub fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, ValueError> {
    let (&tag, body) = stored.split_first().ok_or(ValueError::Empty)?;
    match tag {
        RAW => Ok(Cow::Borrowed(body)),
        ZSTD => {
            let size = zstd::zstd_safe::get_frame_content_size(body)
                .map_err(|e| ValueError::Frame(format!("{e:?}")))?
                .ok_or_else(|| ValueError::Frame("frame does not state its size".into()))?;
            if size > MAX_VALUE_BYTES {
                return Err(ValueError::Frame(format!("frame claims {size} bytes")));
            }
            let out = decompress(body, size as usize)?;
            if out.len() as u64 != size {
                return Err(ValueError::Frame("frame is shorter than it states".into()));
            }
            Ok(Cow::Owned(out))
        }
        other => Err(ValueError::Tag(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn large_repetitive_values_shrink_and_small_ones_stay_raw() {
        let json = br#"{"quality":0.82,"safety":0.97,"uri":"hf://org/model"}"#.repeat(50);
        let packed = pack(&json);
        assert_eq!(packed[0], ZSTD);
        assert!(packed.len() * 5 < json.len(), "{} bytes", packed.len());
        assert_eq!(unpack(&packed).expect("unpacks").as_ref(), json.as_slice());
        // The thread's kept context writes the frame a fresh one writes, every time.
        let fresh = zstd::bulk::compress(&json, LEVEL).expect("compresses");
        assert_eq!(&packed[1..], fresh.as_slice());
        assert_eq!(
            pack(&[7u8; 5000])[1..],
            zstd::bulk::compress(&[7u8; 5000], LEVEL).expect("compresses")
        );
        assert_eq!(pack(&json), packed);
        let small = b"a vote";
        assert_eq!(pack(small), [&[RAW][..], small].concat());
    }

    #[test]
    fn damaged_values_are_refused_not_trusted() {
        assert_eq!(unpack(&[]), Err(ValueError::Empty));
        assert_eq!(unpack(&[7, 1, 2]), Err(ValueError::Tag(7)));
        let mut packed = pack(&[42u8; 4096]);
        packed.truncate(packed.len() - 2);
        assert!(matches!(unpack(&packed), Err(ValueError::Frame(_))));
        assert!(matches!(
            unpack(&[ZSTD, 1, 2, 3, 4, 5]),
            Err(ValueError::Frame(_))
        ));
    }

    proptest! {
        #[test]
        fn every_value_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let packed = pack(&bytes);
            let unpacked = unpack(&packed).expect("unpacks");
            prop_assert_eq!(unpacked.as_ref(), bytes.as_slice());
        }
    }
}
