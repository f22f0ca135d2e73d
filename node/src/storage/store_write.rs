//! One write of a turn, as it goes into the record log and then into redb: a consensus record at
//! its index, a decided batch's commit certificate (audit trail), a ledger event, a request
//! outcome. The same bytes go to both places; the log's copy is replayed into redb after a crash.

/// Tags of the encoded form (first byte).
const RECORD: u8 = 0;
const DECIDED: u8 = 1;
const EVENT: u8 = 2;
const OUTCOME: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreWrite {
    /// An encoded core `Record` at its index in the records table.
    Record { index: u64, bytes: Vec<u8> },
    /// An encoded commit certificate at its sequence number.
    Decided { seq: u64, bytes: Vec<u8> },
    /// A ledger event (JSON) at its position.
    Event { position: u64, json: Vec<u8> },
    /// A request outcome (JSON) under `signer-hex:nonce`.
    Outcome { key: String, json: Vec<u8> },
}

impl StoreWrite {
    pub fn encode(&self) -> Vec<u8> {
        let (tag, key, body): (u8, Vec<u8>, &[u8]) = match self {
            StoreWrite::Record { index, bytes } => (RECORD, index.to_be_bytes().to_vec(), bytes),
            StoreWrite::Decided { seq, bytes } => (DECIDED, seq.to_be_bytes().to_vec(), bytes),
            StoreWrite::Event { position, json } => (EVENT, position.to_be_bytes().to_vec(), json),
            StoreWrite::Outcome { key, json } => {
                let mut k = (key.len() as u32).to_be_bytes().to_vec();
                k.extend_from_slice(key.as_bytes());
                (OUTCOME, k, json)
            }
        };
        let mut out = Vec::with_capacity(1 + key.len() + body.len());
        out.push(tag);
        out.extend_from_slice(&key);
        out.extend_from_slice(body);
        out
    }

    /// `None` for bytes no `encode` produced.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        let u64_key = |rest: &[u8]| -> Option<(u64, Vec<u8>)> {
            let k: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            Some((u64::from_be_bytes(k), rest[8..].to_vec()))
        };
        Some(match tag {
            RECORD => {
                let (index, bytes) = u64_key(rest)?;
                StoreWrite::Record { index, bytes }
            }
            DECIDED => {
                let (seq, bytes) = u64_key(rest)?;
                StoreWrite::Decided { seq, bytes }
            }
            EVENT => {
                let (position, json) = u64_key(rest)?;
                StoreWrite::Event { position, json }
            }
            OUTCOME => {
                let len: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                let len = u32::from_be_bytes(len) as usize;
                let key = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_string();
                StoreWrite::Outcome {
                    key,
                    json: rest[4 + len..].to_vec(),
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_garbage_does_not_decode() {
        let all = [
            StoreWrite::Record {
                index: 7,
                bytes: vec![1, 2, 3],
            },
            StoreWrite::Decided {
                seq: u64::MAX,
                bytes: vec![],
            },
            StoreWrite::Event {
                position: 0,
                json: b"{}".to_vec(),
            },
            StoreWrite::Outcome {
                key: "ab:3".into(),
                json: b"{\"x\":1}".to_vec(),
            },
        ];
        for w in &all {
            assert_eq!(StoreWrite::decode(&w.encode()).as_ref(), Some(w));
        }
        for bad in [
            &[][..],
            &[9, 0, 0],
            &[RECORD, 1, 2],
            &[OUTCOME, 0, 0, 0, 9, b'a'],
        ] {
            assert_eq!(StoreWrite::decode(bad), None, "{bad:?}");
        }
    }
}
