//! The record log: a small append-only file in front of the redb store that makes a turn's
//! writes durable with one sequential write and one `fdatasync`.
//!
//! Why: a redb commit rewrites about ten scattered 4 KiB pages (B-tree paths, the table tree,
//! allocator state) before its fsync; measured with `strace` on a validator at light load, a
//! commit took about 2 ms against 0.3 ms for an append and `fdatasync` on the same disk. A
//! request waits for three such commits in a row (the primary's pre-prepare guard, the backups'
//! prepare guard, every replica's prepared certificate), so they were most of its latency.
//! Every turn's writes go here first; redb commits them lazily, durably only every so often,
//! and the log starts over after each durable commit (`RecordStore::commit_turn`).
//!
//! Format: a header (magic and the validator's key), then entries `[len u32][position u64]
//! [payload][check 8]`, where `check` is the first 8 bytes of SHA-256 over position and payload.
//! Positions grow by one per entry, across rounds and restarts.
//! Every append is followed by `fdatasync` before the runtime sends anything that depends on it.
//!
//! What a kill at any instant leaves, and how `open` reads it:
//! - A torn last entry (the append in flight): its check fails and reading stops there; nothing
//!   that depended on it was sent.
//! - After the log starts over, new entries overwrite old ones from the start, and entries of
//!   earlier rounds may follow the newest ones. Positions only grow, so reading stops at the
//!   first entry whose position does not follow the previous one; entries the store already
//!   holds are skipped by the caller.
//! - A kill while the file is created leaves at most a `.creating` file (discarded), never a log
//!   without its header: the file is written under a temporary name and renamed into place.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::crypto::PublicKey;

const MAGIC: &[u8; 16] = b"scbe-record-log2";
const HEADER_BYTES: u64 = 16 + 32;
/// Length prefix, index, check.
const FRAME_BYTES: usize = 4 + 8 + 8;
/// Largest entry `open` accepts: a corrupt length must not make it allocate gigabytes.
const MAX_ENTRY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("record log {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("record log {path} is not a record log of this validator (expected key {expected})")]
    Foreign { path: PathBuf, expected: PublicKey },
}

pub struct RecordLog {
    path: PathBuf,
    file: File,
    /// Where the next entry is written.
    end: u64,
}

/// One entry: its position in the log, and its payload.
pub type LogEntry = (u64, Vec<u8>);

impl RecordLog {
    /// Opens (creating if absent) the log at `path` and returns it with the entries of its newest
    /// round: the longest run from the start with valid checks and consecutive indexes. The next
    /// append goes right after that run.
    pub fn open(path: &Path, node: &PublicKey) -> Result<(Self, Vec<LogEntry>), LogError> {
        let io = |e: std::io::Error| LogError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        if !path.exists() {
            create_atomically(path, node).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() < HEADER_BYTES as usize
            || &bytes[..16] != MAGIC
            || &bytes[16..HEADER_BYTES as usize] != node.as_bytes()
        {
            return Err(LogError::Foreign {
                path: path.to_path_buf(),
                expected: *node,
            });
        }
        let (entries, end) = read_run(&bytes);
        Ok((
            RecordLog {
                path: path.to_path_buf(),
                file,
                end,
            },
            entries,
        ))
    }

    fn io(&self, e: std::io::Error) -> LogError {
        LogError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Appends `entries` and makes them durable (one write, one `fdatasync`).
    pub fn append(&mut self, entries: &[LogEntry]) -> Result<(), LogError> {
        let mut buf = Vec::new();
        for (index, payload) in entries {
            encode_entry(&mut buf, *index, payload);
        }
        self.file
            .write_all_at(&buf, self.end)
            .map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.end += buf.len() as u64;
        Ok(())
    }

    /// Starts over: everything in the log is in the store now. Nothing is written: entries left
    /// behind are recognised as older by their indexes.
    pub fn restart(&mut self) {
        self.end = HEADER_BYTES;
    }

    /// Bytes written since the log last started over.
    pub fn len(&self) -> u64 {
        self.end - HEADER_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check(index: u64, payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(index.to_be_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

fn encode_entry(buf: &mut Vec<u8>, index: u64, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&index.to_be_bytes());
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&check(index, payload));
}

/// The newest round's entries and the offset after them.
fn read_run(bytes: &[u8]) -> (Vec<LogEntry>, u64) {
    let mut at = HEADER_BYTES as usize;
    let mut out: Vec<LogEntry> = Vec::new();
    while let Some(frame) = bytes.get(at..at + 12) {
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let mut idx = [0u8; 8];
        idx.copy_from_slice(&frame[4..12]);
        let index = u64::from_be_bytes(idx);
        if len > MAX_ENTRY_BYTES {
            break;
        }
        let Some(payload) = bytes.get(at + 12..at + 12 + len) else {
            break;
        };
        let Some(sum) = bytes.get(at + 12 + len..at + FRAME_BYTES + len) else {
            break;
        };
        if sum != check(index, payload) {
            break;
        }
        if out.last().is_some_and(|(prev, _)| index != prev + 1) {
            break;
        }
        out.push((index, payload.to_vec()));
        at += FRAME_BYTES + len;
    }
    (out, at as u64)
}

/// Writes the header under a temporary name, syncs it, renames it into place and syncs the
/// directory.
fn create_atomically(path: &Path, node: &PublicKey) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".creating");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(node.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    fn entries(from: u64, n: u64) -> Vec<LogEntry> {
        (from..from + n)
            .map(|i| (i, format!("record {i}").into_bytes()))
            .collect()
    }

    fn fresh(name: &str) -> (PathBuf, PublicKey) {
        let dir =
            std::env::temp_dir().join(format!("scbe-record-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        (dir.join("records.log"), Keypair::from_label(name).public())
    }

    #[test]
    fn entries_survive_a_reopen_and_appends_continue_after_them() {
        let (path, key) = fresh("reopen");
        let (mut log, got) = RecordLog::open(&path, &key).expect("creates");
        assert!(got.is_empty());
        log.append(&entries(5, 3)).expect("append");
        log.append(&entries(8, 2)).expect("append");
        drop(log);
        let (mut log, got) = RecordLog::open(&path, &key).expect("reopens");
        assert_eq!(got, entries(5, 5));
        log.append(&entries(10, 1)).expect("append");
        let (_, got) = RecordLog::open(&path, &key).expect("reopens");
        assert_eq!(got, entries(5, 6));
    }

    /// A kill in the middle of an append leaves a torn last entry: every cut point of it reads
    /// back as the entries before it.
    #[test]
    fn a_torn_last_entry_is_ignored_at_every_cut_point() {
        let (path, key) = fresh("torn");
        let (mut log, _) = RecordLog::open(&path, &key).expect("creates");
        log.append(&entries(0, 2)).expect("append");
        let whole = std::fs::metadata(&path).expect("meta").len();
        log.append(&entries(2, 1)).expect("append");
        let full = std::fs::read(&path).expect("read");
        drop(log);
        for cut in whole..full.len() as u64 {
            std::fs::write(&path, &full[..cut as usize]).expect("write");
            let (_, got) = RecordLog::open(&path, &key).expect("opens");
            assert_eq!(got, entries(0, 2), "cut at {cut}");
        }
        // A flipped byte in the last entry: the same.
        let mut bad = full.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        let (_, got) = RecordLog::open(&path, &key).expect("opens");
        assert_eq!(got, entries(0, 2));
    }

    /// After starting over, the newest round is shorter than what it overwrote: the older
    /// entries behind it are not read back (their indexes do not follow).
    #[test]
    fn entries_of_an_earlier_round_behind_the_newest_are_not_read() {
        let (path, key) = fresh("rounds");
        let (mut log, _) = RecordLog::open(&path, &key).expect("creates");
        log.append(&entries(0, 6)).expect("append");
        log.restart();
        assert!(log.is_empty());
        log.append(&entries(6, 2)).expect("append");
        drop(log);
        let (mut log, got) = RecordLog::open(&path, &key).expect("reopens");
        assert_eq!(got, entries(6, 2));
        // Appends continue right after the newest round, overwriting the old entries.
        log.append(&entries(8, 1)).expect("append");
        let (_, got) = RecordLog::open(&path, &key).expect("reopens");
        assert_eq!(got, entries(6, 3));
    }

    #[test]
    fn another_validators_log_or_a_headerless_file_is_refused() {
        let (path, key) = fresh("foreign");
        drop(RecordLog::open(&path, &key).expect("creates"));
        let other = Keypair::from_label("someone else").public();
        assert!(matches!(
            RecordLog::open(&path, &other),
            Err(LogError::Foreign { .. })
        ));
        std::fs::write(&path, b"scbe").expect("write");
        assert!(matches!(
            RecordLog::open(&path, &key),
            Err(LogError::Foreign { .. })
        ));
    }

    /// A kill while the log is created leaves only the temporary file, which the next open
    /// replaces.
    #[test]
    fn a_half_created_log_is_created_again() {
        let (path, key) = fresh("creating");
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".creating");
        std::fs::write(PathBuf::from(tmp), b"scbe-rec").expect("write");
        let (mut log, got) = RecordLog::open(&path, &key).expect("creates");
        assert!(got.is_empty());
        log.append(&entries(0, 1)).expect("append");
        let (_, got) = RecordLog::open(&path, &key).expect("reopens");
        assert_eq!(got, entries(0, 1));
    }
}
