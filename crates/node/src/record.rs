//! What a node writes to its log and its checkpoints, and how its durable state is rebuilt from
//! them at start. The server reads these bytes from its write-ahead log and snapshot files; the
//! simulator from its simulated disk. Both go through [`recover`], so a record the server could
//! not read back is a record the simulator cannot read back either.

use crate::aux_node::AuxRecovered;
use serde::{Deserialize, Serialize};
use synod_core::multi::{DurableState, Membership, Persist, Snapshot};
use synod_kv::KvCommand;
use thiserror::Error;

/// One record of the log. Generic so that a record is written from a reference
/// (`LogRecord<&Persist<_>>` encodes exactly as `LogRecord<Persist<_>>`), without copying every
/// command of a batch first.
#[derive(Debug, Serialize, Deserialize)]
pub enum LogRecord<P = Persist<KvCommand>> {
    /// A replica persist record.
    Persist(P),
    /// A boot epoch (one per start): client ids, lease ids and read ids of a boot never repeat
    /// those of an earlier one.
    Boot(u64),
}

/// The durable state at one point of the log, as the records that rebuild it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The boot epoch when it was taken.
    pub boot: u64,
    /// Snapshot, promise, the log from the snapshot on, and the commit point.
    pub records: Vec<Persist<KvCommand>>,
}

/// The bytes of a persist record in the log.
pub fn encode_persist(p: &Persist<KvCommand>) -> Vec<u8> {
    postcard::to_stdvec(&LogRecord::Persist(p)).expect("log records serialize")
}

/// The bytes of a boot record.
pub fn encode_boot(boot: u64) -> Vec<u8> {
    postcard::to_stdvec(&LogRecord::<Persist<KvCommand>>::Boot(boot)).expect("serializes")
}

/// The bytes of a checkpoint, in one buffer of exactly their size.
pub fn encode_checkpoint(c: &Checkpoint) -> Vec<u8> {
    synod_core::encode::to_vec_exact(c).expect("checkpoints serialize")
}

/// How many bytes [`encode_checkpoint`] makes of `c`, counted without making them.
pub fn checkpoint_len(c: &Checkpoint) -> u64 {
    postcard::experimental::serialized_size(c).expect("checkpoints serialize") as u64
}

/// Writes the bytes of [`encode_checkpoint`] to `out` as they are made, so a large checkpoint
/// is never held in memory whole: it already holds the store's snapshot, and a second copy of
/// that cost a node hundreds of megabytes at a million keys while it was saved.
pub fn write_checkpoint(c: &Checkpoint, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    postcard::to_io(c, out)
        .map(drop)
        .map_err(std::io::Error::other)
}

/// The widest a postcard varint of 64 bits is.
const VARINT_WIDTH: usize = 10;

/// The length of [`checkpoint_head`]: the boot, the number of records, the snapshot's variant
/// (one byte), its slot and its state's length.
pub const CHECKPOINT_HEAD_LEN: usize = 4 * VARINT_WIDTH + 1;

/// The bytes of a checkpoint before its snapshot's state, when the snapshot is its first
/// record, at a fixed length whatever the numbers: a driver that writes the state straight
/// into the checkpoint's file leaves room for them before it, and fills it in once it knows
/// how many records follow and how long the state was. Postcard reads a varint padded with
/// continuation bytes as the number it holds (checked by the tests), so each number is
/// written [`VARINT_WIDTH`] bytes wide. With the state and [`write_checkpoint_tail`] after
/// it, the bytes decode as the checkpoint [`encode_checkpoint`] would have encoded.
pub fn checkpoint_head(
    boot: u64,
    records: usize,
    slot: u64,
    state_len: u64,
) -> [u8; CHECKPOINT_HEAD_LEN] {
    let mut head = [0; CHECKPOINT_HEAD_LEN];
    let (numbers, rest) = head.split_at_mut(2 * VARINT_WIDTH);
    wide_varint(boot, &mut numbers[..VARINT_WIDTH]);
    wide_varint(records as u64, &mut numbers[VARINT_WIDTH..]);
    rest[0] = SNAPSHOT_VARIANT as u8;
    wide_varint(slot, &mut rest[1..=VARINT_WIDTH]);
    wide_varint(state_len, &mut rest[1 + VARINT_WIDTH..]);
    head
}

/// `n` as a varint exactly `out.len()` bytes wide: seven bits a byte, least significant
/// first, every byte but the last flagged as continued.
fn wide_varint(mut n: u64, out: &mut [u8]) {
    let last = out.len() - 1;
    for (i, b) in out.iter_mut().enumerate() {
        *b = (n & 0x7f) as u8 | if i < last { 0x80 } else { 0 };
        n >>= 7;
    }
}

/// What a checkpoint whose first record is a snapshot holds after the snapshot's state: the
/// snapshot's sessions and membership, as [`SnapshotTail`] reads them.
#[derive(Serialize)]
struct SnapshotTailRef<'a> {
    #[serde(with = "serde_bytes")]
    sessions: &'a [u8],
    membership: &'a Option<Membership>,
}

/// Writes what follows the snapshot's state in `c`'s bytes (see [`checkpoint_head`]): the
/// rest of the snapshot, then every later record. An error if `c` does not begin with a
/// snapshot.
pub fn write_checkpoint_tail(c: &Checkpoint, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let Some(Persist::Snapshot(s)) = c.records.first() else {
        return Err(std::io::Error::other(
            "a checkpoint that does not begin with a snapshot has no tail",
        ));
    };
    let tail = SnapshotTailRef {
        sessions: &s.sessions,
        membership: &s.membership,
    };
    postcard::to_io(&tail, &mut *out).map_err(std::io::Error::other)?;
    for record in &c.records[1..] {
        postcard::to_io(record, &mut *out).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// The start of a checkpoint's bytes when its first record is a snapshot: the boot, the
/// number of records, the first record's variant and the snapshot's first two fields, in the
/// order and encoding postcard gives [`Checkpoint`] (checked by the tests).
#[derive(Deserialize)]
struct SnapshotHead<'a> {
    boot: u64,
    records: usize,
    variant: u32,
    slot: u64,
    state: &'a [u8],
}

/// The rest of [`Snapshot`] after its state, as postcard writes it.
#[derive(Deserialize)]
struct SnapshotTail {
    sessions: serde_bytes::ByteBuf,
    membership: Option<Membership>,
}

/// [`Persist::Snapshot`]'s variant index, as postcard writes it.
const SNAPSHOT_VARIANT: u32 = 5;

/// The snapshot's slot and state bytes inside a checkpoint's bytes, sharing `checkpoint`'s
/// buffer rather than copied out of it; `None` if the checkpoint holds no snapshot or does not
/// decode. Reads only the checkpoint's first bytes, so the state's pages (in a mapped file)
/// are not touched.
pub fn checkpoint_state(checkpoint: &bytes::Bytes) -> Option<(u64, bytes::Bytes)> {
    let (head, _) = snapshot_head(checkpoint)?;
    Some((head.slot, checkpoint.slice_ref(head.state)))
}

fn snapshot_head(checkpoint: &[u8]) -> Option<(SnapshotHead<'_>, &[u8])> {
    let (head, rest) = postcard::take_from_bytes::<SnapshotHead>(checkpoint).ok()?;
    (head.records > 0 && head.variant == SNAPSHOT_VARIANT).then_some((head, rest))
}

/// Decodes a checkpoint as [`Checkpoint`]'s own decoding does, except that its snapshot's state
/// shares `bytes` rather than being copied out: at a restart that copy was a second store's
/// worth of memory, held while the store was rebuilt from it.
pub fn decode_checkpoint(bytes: &bytes::Bytes) -> Result<Checkpoint, postcard::Error> {
    let Some((head, rest)) = snapshot_head(bytes) else {
        return postcard::from_bytes(bytes);
    };
    let (tail, mut rest) = postcard::take_from_bytes::<SnapshotTail>(rest)?;
    // The count comes from the disk: every record takes at least a byte.
    let mut records = Vec::with_capacity(head.records.min(rest.len() + 1));
    records.push(Persist::Snapshot(Snapshot {
        slot: head.slot,
        state: bytes.slice_ref(head.state),
        sessions: tail.sessions.into_vec(),
        membership: tail.membership,
    }));
    for _ in 1..head.records {
        let (record, more) = postcard::take_from_bytes(rest)?;
        records.push(record);
        rest = more;
    }
    Ok(Checkpoint {
        boot: head.boot,
        records,
    })
}

/// What a node recovers from its disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The replica's durable state.
    pub durable: DurableState<KvCommand>,
    /// The highest boot epoch recorded; the next boot is one above.
    pub boot: u64,
    /// Size of the checkpoint it started from (0: none).
    pub checkpoint_bytes: u64,
}

/// Why the disk's contents could not be read back.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecoverError {
    /// A record or the checkpoint does not decode.
    #[error("{what} does not decode: {why}")]
    Decode {
        /// Which record.
        what: String,
        /// The decoder's complaint.
        why: String,
    },
}

/// Rebuilds the durable state from the latest checkpoint (if any) and the log records after
/// it, each with its index in the log.
///
/// The checkpoint is handed over as shared bytes: the recovered snapshot's state is a slice of
/// them ([`decode_checkpoint`]), not a copy.
pub fn recover<'a>(
    checkpoint: Option<(u64, bytes::Bytes)>,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<Recovered, RecoverError> {
    let mut out = Recovered::default();
    let (boot, bytes) = replay(checkpoint, records, |p| out.durable.apply(p))?;
    out.boot = boot;
    out.checkpoint_bytes = bytes;
    Ok(out)
}

/// [`recover`] for a Cheap Paxos auxiliary acceptor ([`crate::AuxNode`]).
pub fn recover_aux<'a>(
    checkpoint: Option<(u64, bytes::Bytes)>,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<AuxRecovered, RecoverError> {
    let mut out = AuxRecovered::default();
    out.boot = replay(checkpoint, records, |p| out.durable.apply(p))?.0;
    Ok(out)
}

/// Applies the checkpoint's records, then the log's, in order; returns the highest boot epoch
/// and the checkpoint's size.
fn replay<'a>(
    checkpoint: Option<(u64, bytes::Bytes)>,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
    mut apply: impl FnMut(&Persist<KvCommand>),
) -> Result<(u64, u64), RecoverError> {
    let (mut boot, mut bytes) = (0, 0);
    if let Some((index, data)) = checkpoint {
        let cp = decode_checkpoint(&data).map_err(|e| RecoverError::Decode {
            what: format!("checkpoint {index}"),
            why: e.to_string(),
        })?;
        boot = cp.boot;
        bytes = data.len() as u64;
        cp.records.iter().for_each(&mut apply);
    }
    for (index, data) in records {
        match postcard::from_bytes::<LogRecord>(data) {
            Ok(LogRecord::Persist(p)) => apply(&p),
            Ok(LogRecord::Boot(b)) => boot = boot.max(b),
            Err(e) => {
                return Err(RecoverError::Decode {
                    what: format!("log record {index}"),
                    why: e.to_string(),
                })
            }
        }
    }
    Ok((boot, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::multi::{Command, Value};
    use synod_core::Ballot;
    use synod_kv::PutRequest;

    fn accept() -> Persist<KvCommand> {
        let put = KvCommand::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 300].into(),
            ..Default::default()
        });
        Persist::Accept {
            slot: 9,
            ballot: Ballot::new(3, 2),
            value: Value::batch(vec![Command {
                client: 5,
                seq: 6,
                op: put,
            }]),
        }
    }

    #[test]
    fn a_record_written_by_reference_reads_back_as_owned() {
        let p = accept();
        let by_ref = encode_persist(&p);
        let owned = postcard::to_stdvec(&LogRecord::Persist(p.clone())).unwrap();
        assert_eq!(by_ref, owned);
        let back: LogRecord = postcard::from_bytes(&by_ref).unwrap();
        assert!(matches!(back, LogRecord::Persist(q) if q == p));
    }

    #[test]
    fn recovery_replays_checkpoint_then_log_and_keeps_the_highest_boot() {
        let cp = Checkpoint {
            boot: 4,
            records: vec![Persist::Promise(Ballot::new(2, 1))],
        };
        let cp_bytes = encode_checkpoint(&cp);
        let recs = [encode_boot(5), encode_persist(&accept())];
        let r = recover(
            Some((1, cp_bytes.clone().into())),
            recs.iter().enumerate().map(|(i, r)| (i as u64 + 2, &r[..])),
        )
        .unwrap();
        assert_eq!(r.boot, 5);
        assert_eq!(r.checkpoint_bytes, cp_bytes.len() as u64);
        assert_eq!(r.durable.promised, Ballot::new(3, 2), "the vote raised it");
        assert!(r.durable.log.contains_key(&9));
    }

    #[test]
    fn a_checkpoint_streamed_is_the_checkpoint_encoded_at_its_counted_length() {
        let cp = Checkpoint {
            boot: 4,
            records: vec![Persist::Promise(Ballot::new(2, 1)), accept(), accept()],
        };
        let mut streamed = Vec::new();
        write_checkpoint(&cp, &mut streamed).unwrap();
        assert_eq!(streamed, encode_checkpoint(&cp));
        assert_eq!(checkpoint_len(&cp), streamed.len() as u64);
    }

    #[test]
    fn a_checkpoint_s_snapshot_state_is_found_in_its_bytes() {
        use synod_core::multi::Snapshot;
        let state = bytes::Bytes::from((0..5_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let snapshot = Snapshot {
            slot: 300,
            state: state.clone(),
            sessions: vec![1, 2, 3],
            membership: None,
        };
        let cp = Checkpoint {
            boot: 1 << 40,
            records: vec![Persist::Snapshot(snapshot), accept()],
        };
        let bytes = bytes::Bytes::from(encode_checkpoint(&cp));
        let (slot, found) = checkpoint_state(&bytes).unwrap();
        assert_eq!((slot, &found[..]), (300, &state[..]));
        let within = bytes.as_ptr_range();
        assert!(
            within.contains(&found.as_ptr()),
            "shares the checkpoint's buffer"
        );
        // No snapshot first (the old format's variant, or none at all), or no checkpoint.
        let old = Persist::SnapshotV1(synod_core::multi::SnapshotV1 {
            slot: 300,
            state,
            sessions: vec![],
        });
        for records in [vec![old], vec![Persist::Promise(Ballot::new(2, 1))], vec![]] {
            let cp = bytes::Bytes::from(encode_checkpoint(&Checkpoint { boot: 1, records }));
            assert_eq!(checkpoint_state(&cp), None);
        }
        // Cut inside the state: not found rather than a short slice.
        assert_eq!(checkpoint_state(&bytes.slice(..bytes.len() / 2)), None);
    }

    fn snapshot(state: &[u8], membership: bool) -> Persist<KvCommand> {
        let membership = membership.then(|| {
            synod_core::multi::Membership::of_voters(
                &[1, 2, 3],
                synod_core::quorum::QuorumSpec::Majority,
                4,
            )
            .unwrap()
        });
        Persist::Snapshot(Snapshot {
            slot: 77,
            state: bytes::Bytes::copy_from_slice(state),
            sessions: vec![9; 40],
            membership,
        })
    }

    #[test]
    fn a_checkpoint_in_head_state_and_tail_decodes_as_the_checkpoint() {
        let state: Vec<u8> = (0..3_000u32).map(|i| (i * 7) as u8).collect();
        for (boot, records) in [
            (
                300,
                vec![
                    snapshot(&state, true),
                    Persist::Promise(Ballot::new(2, 1)),
                    accept(),
                ],
            ),
            (0, vec![snapshot(&state, false)]),
            (u64::MAX, vec![snapshot(b"", false), accept()]),
        ] {
            let cp = Checkpoint { boot, records };
            let Some(Persist::Snapshot(s)) = cp.records.first() else {
                unreachable!()
            };
            let head = checkpoint_head(cp.boot, cp.records.len(), s.slot, s.state.len() as u64);
            let mut bytes = head.to_vec();
            bytes.extend_from_slice(&s.state);
            write_checkpoint_tail(&cp, &mut bytes).unwrap();
            let bytes = bytes::Bytes::from(bytes);
            assert_eq!(postcard::from_bytes::<Checkpoint>(&bytes).unwrap(), cp);
            assert_eq!(decode_checkpoint(&bytes).unwrap(), cp);
            assert_eq!(checkpoint_state(&bytes).unwrap(), (s.slot, s.state.clone()));
            // Only the numbers' widths differ from the checkpoint encoded whole.
            let whole = encode_checkpoint(&cp);
            assert_eq!(
                bytes[head.len()..],
                whole[whole.len() - (bytes.len() - head.len())..]
            );
        }
        // The widest numbers still read back.
        let head = checkpoint_head(u64::MAX, usize::MAX, u64::MAX, u64::MAX);
        let (read, rest) = postcard::take_from_bytes::<(u64, usize)>(&head).unwrap();
        assert_eq!(read, (u64::MAX, usize::MAX));
        assert_eq!(
            postcard::from_bytes::<(u32, u64, u64)>(rest).unwrap(),
            (5, u64::MAX, u64::MAX)
        );
        let no_snapshot = Checkpoint {
            boot: 1,
            records: vec![accept()],
        };
        assert!(write_checkpoint_tail(&no_snapshot, &mut Vec::new()).is_err());
    }

    #[test]
    fn a_checkpoint_decodes_as_postcard_decodes_it_with_the_state_shared() {
        let state: Vec<u8> = (0..3_000u32).map(|i| (i * 7) as u8).collect();
        let old = Persist::SnapshotV1(synod_core::multi::SnapshotV1 {
            slot: 3,
            state: bytes::Bytes::from_static(b"old"),
            sessions: vec![],
        });
        let cases = [
            vec![
                snapshot(&state, true),
                Persist::Promise(Ballot::new(2, 1)),
                accept(),
            ],
            vec![snapshot(&state, false)],
            vec![snapshot(b"", false), accept()],
            vec![Persist::Promise(Ballot::new(2, 1)), accept()],
            vec![old, accept()],
            vec![],
        ];
        for records in cases {
            let cp = Checkpoint { boot: 300, records };
            let bytes = bytes::Bytes::from(encode_checkpoint(&cp));
            let decoded = decode_checkpoint(&bytes).unwrap();
            assert_eq!(decoded, cp);
            assert_eq!(decoded, postcard::from_bytes::<Checkpoint>(&bytes).unwrap());
            if let Some(Persist::Snapshot(s)) = decoded.records.first() {
                assert!(
                    s.state.is_empty() || bytes.as_ptr_range().contains(&s.state.as_ptr()),
                    "the state is a slice of the checkpoint's bytes"
                );
            }
            // A cut checkpoint is an error, never a panic or a shorter checkpoint.
            for cut in 0..bytes.len() {
                assert!(
                    decode_checkpoint(&bytes.slice(..cut)).is_err(),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn bytes_after_a_checkpoint_of_no_records_are_not_read_as_its_snapshot() {
        // postcard ignores what follows a value; so must the shared decoding.
        let mut bytes = encode_checkpoint(&Checkpoint {
            boot: 1,
            records: vec![],
        });
        bytes.extend(postcard::to_stdvec(&snapshot(b"state", false)).unwrap());
        let bytes = bytes::Bytes::from(bytes);
        assert_eq!(decode_checkpoint(&bytes).unwrap().records, vec![]);
        assert_eq!(checkpoint_state(&bytes), None);
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            // From a real snapshot head on, so that the shared path is taken often.
            let cp = Checkpoint { boot: 1, records: vec![snapshot(b"state", true), accept()] };
            let mut bytes = encode_checkpoint(&cp);
            let at = head.len().min(bytes.len());
            bytes[..at].copy_from_slice(&head[..at]);
            let _ = decode_checkpoint(&bytes::Bytes::from(bytes));
            let _ = decode_checkpoint(&bytes::Bytes::from(head));
        }
    }

    #[test]
    fn a_record_that_does_not_decode_is_named() {
        let e = recover(None, [(7, &[0xFFu8, 0xFF][..])]).unwrap_err();
        assert!(e.to_string().contains("log record 7"), "{e}");
    }
}
