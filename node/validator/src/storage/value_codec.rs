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

/// Values from this size on are compressed into a buffer that grows with the frame, after the
/// tag byte, instead of one of the worst case's size (zstd's bound, a little over the value's)
/// that was then copied behind the tag. Why: a persisted snapshot of 300,000 registered
/// releases is ~107 MB of JSON (heaptrack on a validator during a long registration run, issue
/// 27). Packing one of 107 MB now raises the process's peak resident memory by 17 MB against
/// 33 (the bound is reserved, not touched, but its frame was copied), and encoding whole
/// snapshots is faster (`scbe-sim bench-digest --persisted-releases 300000`, one run each:
/// 2,437 against 2,990 ms for the whole form).
const GROW_FROM: usize = 1 << 20;

/// The stored form of `bytes`.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() >= GROW_FROM {
        if let Some(out) = compress_growing(bytes) {
            return out;
        }
    } else if bytes.len() >= COMPRESS_FROM {
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

/// `f` on this thread's compression context at [`LEVEL`], made on first use; None if zstd
/// cannot make one.
fn with_compressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> Option<T>,
) -> Option<T> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        f(cell.as_mut()?)
    })
}

/// One zstd frame of `bytes` at [`LEVEL`], through this thread's context.
fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    with_compressor(|c| c.compress(bytes).ok())
}

/// The tag and one zstd frame of `bytes` at [`LEVEL`], through this thread's context, in a
/// buffer that starts at an eighth of the value and doubles as the frame needs; None if the
/// frame would not be smaller than the value (it is then stored as it is).
fn compress_growing(bytes: &[u8]) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{zstd_sys::ZSTD_EndDirective, InBuffer, OutBuffer, ResetDirective};
    with_compressor(|compressor| {
        let ctx = compressor.context_mut();
        // A frame left unfinished by an earlier failure must not leak into this one.
        ctx.reset(ResetDirective::SessionOnly).ok()?;
        let mut out = Vec::with_capacity(1 + bytes.len() / 8);
        out.push(ZSTD);
        let mut input = InBuffer::around(bytes);
        loop {
            if out.len() > bytes.len() {
                return None;
            }
            if out.capacity() - out.len() < 64 * 1024 {
                out.reserve(out.capacity().max(64 * 1024));
            }
            let pos = out.len();
            let mut output = OutBuffer::around_pos(&mut out, pos);
            // Given the whole input and `e_end` from the first call, zstd writes the value's
            // size in the frame header, as a one-shot frame has (`unpack` requires it).
            let left = ctx
                .compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_end)
                .ok()?;
            if left == 0 {
                break;
            }
        }
        (out.len() <= bytes.len()).then_some(out)
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

    /// Values from `GROW_FROM` on: the same frame a one-shot compression writes (so stores
    /// written before read the same, and the frame states its size), returned in a buffer far
    /// smaller than the value (the growth stops near the frame's size); an incompressible one
    /// is kept as it is. What the change saves, the one-shot route's transient worst-case
    /// buffer, is not visible from here: it was measured from the process's peak RSS.
    #[test]
    fn large_values_compress_into_a_buffer_that_grows_with_the_frame() {
        // A fixed generator (a 64-bit LCG's high half): the same values every run.
        let mut state = 7u64;
        let mut next_u32 = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 32) as u32
        };
        let mut json = Vec::new();
        while json.len() < 3 * GROW_FROM {
            json.extend_from_slice(
                format!(
                    r#"{{"version":"r{:07}","quality":0.{:04},"uri":"hf://org/model-run-{:08x}"}},"#,
                    json.len(),
                    next_u32() % 10_000,
                    next_u32()
                )
                .as_bytes(),
            );
        }
        let packed = pack(&json);
        assert_eq!(packed[0], ZSTD);
        let one_shot = zstd::bulk::compress(&json, LEVEL).expect("compresses");
        assert_eq!(&packed[1..], one_shot.as_slice(), "the same frame");
        assert!(
            packed.capacity() < json.len() / 2,
            "{} bytes held for a {}-byte frame of {} bytes",
            packed.capacity(),
            packed.len(),
            json.len()
        );
        assert_eq!(unpack(&packed).expect("unpacks").as_ref(), json.as_slice());
        // Twice in a row on this thread's context: the second frame starts afresh.
        assert_eq!(pack(&json), packed);

        let noise: Vec<u8> = (0..2 * GROW_FROM / 4)
            .flat_map(|_| next_u32().to_le_bytes())
            .collect();
        let packed = pack(&noise);
        assert_eq!(packed[0], RAW, "incompressible: kept as it is");
        assert_eq!(unpack(&packed).expect("unpacks").as_ref(), noise.as_slice());
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
