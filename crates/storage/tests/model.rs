//! Property test: random sequences of appends, syncs, truncations, compactions and reopens
//! against a model (a plain vector). On every reopen the log must hold a prefix of the model
//! that contains at least every synced record: never less, never different, never invented.

mod common;

use common::small;
use proptest::prelude::*;
use synod_storage::{Record, Wal};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Sync,
    /// Truncate this many records off the end (bounded by what is there).
    TruncateBack(u64),
    /// Compact below `first_index + n`.
    Compact(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..120).prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => (0u64..8).prop_map(Op::TruncateBack),
        1 => (0u64..20).prop_map(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_a_vector(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = small(320);
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
        // Records the log should hold, from its first index on.
        let mut model: Vec<Record> = Vec::new();
        let mut durable = 0u64;
        for op in ops {
            match op {
                Op::Append(data) => {
                    let index = wal.append(&data).unwrap();
                    prop_assert_eq!(index, wal.first_index() + model.len() as u64);
                    model.push(Record { index, data });
                }
                Op::Sync => {
                    durable = wal.sync().unwrap();
                    prop_assert_eq!(durable, wal.last_index());
                }
                Op::TruncateBack(n) => {
                    let last = wal.last_index();
                    let to = last.saturating_sub(n).max(wal.first_index() - 1);
                    wal.truncate_after(to).unwrap();
                    model.retain(|r| r.index <= to);
                    durable = durable.min(to);
                    prop_assert_eq!(wal.last_index(), to);
                }
                Op::Compact(n) => {
                    wal.compact(wal.first_index() + n).unwrap();
                    let first = wal.first_index();
                    model.retain(|r| r.index >= first);
                }
                Op::Reopen => {
                    drop(wal);
                    let (w, rec) = Wal::open(dir.path(), opts.clone()).unwrap();
                    wal = w;
                    prop_assert!(rec.records.len() <= model.len());
                    prop_assert_eq!(&rec.records[..], &model[..rec.records.len()]);
                    let last = rec.records.last().map_or(wal.first_index() - 1, |r| r.index);
                    prop_assert!(last >= durable, "lost synced records: {} < {}", last, durable);
                    model = rec.records;
                    durable = wal.durable_index();
                }
            }
        }
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), opts).unwrap();
        prop_assert!(rec.report.truncation.is_none());
        prop_assert_eq!(rec.records, model);
    }
}
