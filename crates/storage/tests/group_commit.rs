//! Group commit: correctness under concurrency, batching, the completion styles, control
//! operations through the flusher, shutdown.

mod common;

use common::*;
use std::collections::HashSet;
use std::sync::mpsc;
use synod_storage::{CommitHandle, GroupCommitter, StorageError, Wal, WalOptions};

fn record(thread: u64, seq: u64) -> Vec<u8> {
    let mut r = thread.to_le_bytes().to_vec();
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend(std::iter::repeat_n(
        (thread * 7 + seq) as u8,
        (seq % 50) as usize,
    ));
    r
}

/// A committer over a log opened in `dir` with `opts`.
fn started(dir: &std::path::Path, opts: WalOptions) -> GroupCommitter {
    let (wal, _) = Wal::open(dir, opts).unwrap();
    GroupCommitter::start(wal).unwrap()
}

/// Holds the flusher inside a task until the returned sender is sent to; the task's thread
/// is joined by the caller.
fn hold_flusher(
    gc: &GroupCommitter,
) -> (
    mpsc::Sender<()>,
    std::thread::JoinHandle<synod_storage::Result<()>>,
) {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = gc.handle();
    let blocker = std::thread::spawn(move || {
        h.with_wal(move |_| {
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap()
        })
    });
    entered_rx.recv().unwrap();
    (release_tx, blocker)
}

/// Reopens the log and checks that every acknowledged (index, thread, seq) holds its bytes.
fn assert_read_back(dir: &std::path::Path, opts: WalOptions, acked: Vec<(u64, u64, u64)>) {
    let (_, rec) = Wal::open(dir, opts).unwrap();
    assert!(rec.report.truncation.is_none());
    for (index, t, seq) in acked {
        assert_eq!(rec.records[(index - 1) as usize].data, record(t, seq));
    }
}

/// Runs `threads` writers at once, each appending `per` records with `append` (which returns
/// the index its record got); checks that each writer's records keep their order and are
/// durable when acknowledged, and that the indexes are `1..=threads * per`, each once.
/// Returns every acknowledged (index, thread, seq).
fn writers_at_once(
    gc: &GroupCommitter,
    threads: u64,
    per: u64,
    append: fn(&CommitHandle, u64, u64) -> u64,
) -> Vec<(u64, u64, u64)> {
    let threads: Vec<_> = (0..threads)
        .map(|t| {
            let h = gc.handle();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut last = 0;
                for seq in 0..per {
                    let index = append(&h, t, seq);
                    assert!(index > last, "one writer's records keep their order");
                    assert!(h.durable_index() >= index);
                    last = index;
                    mine.push((index, t, seq));
                }
                mine
            })
        })
        .collect();
    let n = threads.len() as u64 * per;
    let acked: Vec<(u64, u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let indexes: HashSet<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(indexes, (1..=n).collect::<HashSet<u64>>());
    acked
}

#[test]
fn concurrent_writers_get_distinct_consecutive_indexes_and_their_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(2048);
    let gc = started(dir.path(), opts.clone());
    let acked = writers_at_once(&gc, 8, 150, |h, t, seq| {
        h.append_durable(record(t, seq)).unwrap()
    });
    let stats = gc.stats();
    assert_eq!(stats.records, 1200);
    assert!(stats.syncs >= 1 && stats.syncs <= 1200);
    let wal = gc.close().unwrap();
    assert_eq!(wal.last_index(), 1200);
    assert!(
        wal.segment_paths().len() > 1,
        "rollover happened under concurrency"
    );
    drop(wal);
    assert_read_back(dir.path(), opts, acked);
}

#[test]
fn records_queued_while_the_flusher_is_busy_share_one_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let gc = started(dir.path(), small(1 << 16));
    // Hold the flusher inside a task until 50 submissions are queued behind it.
    let (release_tx, blocker) = hold_flusher(&gc);
    let receivers: Vec<_> = (0..50u64)
        .map(|i| gc.append_channel(vec![record(0, i)]))
        .collect();
    let before = gc.stats().syncs;
    release_tx.send(()).unwrap();
    blocker.join().unwrap().unwrap();
    let ranges: Vec<_> = receivers
        .into_iter()
        .map(|r| r.recv().unwrap().unwrap())
        .collect();
    // Submission order is index order.
    for (i, r) in ranges.iter().enumerate() {
        assert_eq!(*r, (i as u64 + 1)..(i as u64 + 2));
    }
    assert_eq!(
        gc.stats().syncs - before,
        1,
        "one fdatasync for the whole batch"
    );
}

#[test]
fn callbacks_batches_and_empty_batches() {
    let dir = tempfile::tempdir().unwrap();
    let gc = started(dir.path(), small(1 << 16));
    let (tx, rx) = mpsc::channel();
    gc.append_then(
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
        move |r| tx.send(r).unwrap(),
    );
    assert_eq!(rx.recv().unwrap().unwrap(), 1..4);
    assert_eq!(gc.append_batch_durable(vec![]).unwrap(), 4..4);
    assert_eq!(gc.append_batch_durable(vec![b"d".to_vec()]).unwrap(), 4..5);
    // A callback that panics does not take the flusher down.
    gc.append_then(vec![b"e".to_vec()], |_| panic!("careless callback"));
    assert_eq!(gc.append_durable(b"f".to_vec()).unwrap(), 6);
}

#[test]
fn an_oversized_record_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        max_record_size: 8,
        ..small(1 << 16)
    };
    let gc = started(dir.path(), opts);
    assert!(matches!(
        gc.append_batch_durable(vec![b"ok".to_vec(), vec![0; 9]]),
        Err(StorageError::RecordTooLarge { len: 9, max: 8 })
    ));
    assert_eq!(gc.append_durable(b"fine".to_vec()).unwrap(), 1);
    // The limit itself is allowed.
    assert_eq!(gc.append_durable(vec![7; 8]).unwrap(), 2);
}

#[test]
fn control_operations_run_in_order_on_the_flusher() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(1 << 16);
    let gc = started(dir.path(), opts.clone());
    for i in 0..10 {
        gc.append_durable(record(1, i)).unwrap();
    }
    gc.with_wal(|wal| wal.truncate_after(4)).unwrap().unwrap();
    assert_eq!(gc.durable_index(), 4);
    assert_eq!(gc.append_durable(b"five".to_vec()).unwrap(), 5);
    let last = gc.with_wal(|wal| wal.last_index()).unwrap();
    assert_eq!(last, 5);
    drop(gc);
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records.len(), 5);
    assert_eq!(rec.records[4].data, b"five");
}

#[test]
#[should_panic(expected = "task panicked")]
fn a_panicking_task_is_reraised_in_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let gc = started(dir.path(), small(1 << 16));
    let _ = gc.with_wal(|_| panic!("task panicked"));
}

#[test]
fn after_close_handles_are_refused_and_the_log_is_handed_back() {
    let dir = tempfile::tempdir().unwrap();
    let gc = started(dir.path(), small(1 << 16));
    let h = gc.handle();
    let pending = h.append_channel(vec![b"queued".to_vec()]);
    let mut wal = gc.close().unwrap();
    // Everything queued before close was completed.
    assert_eq!(pending.recv().unwrap().unwrap(), 1..2);
    assert_eq!(wal.durable_index(), 1);
    assert!(matches!(
        h.append_durable(b"late".to_vec()),
        Err(StorageError::Closed)
    ));
    assert!(matches!(
        h.with_wal(|w| w.last_index()),
        Err(StorageError::Closed)
    ));
    assert_eq!(wal.append(b"direct").unwrap(), 2);
}

#[test]
fn counters_start_where_the_log_stands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small(2048)).unwrap();
    wal.append(&record(1, 1)).unwrap();
    wal.sync().unwrap();
    let before = wal.stats();
    assert!(before.bytes > 0);
    let gc = GroupCommitter::start(wal).unwrap();
    let after = gc.stats();
    assert_eq!((after.records, after.bytes), (before.records, before.bytes));
    assert_eq!(gc.handle().durable_index(), 1);
}

#[test]
fn an_inline_write_syncs_on_the_callers_thread_when_the_log_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(1 << 16);
    let gc = started(dir.path(), opts.clone());
    let before = gc.stats().syncs;
    let r = gc.append_inline(vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(r.ok().map(|r| r.unwrap()), Some(1..3));
    assert_eq!(gc.durable_index(), 2);
    assert_eq!(gc.stats().syncs - before, 1);
    // Queued writes after it take the next indexes.
    assert_eq!(gc.append_durable(b"c".to_vec()).unwrap(), 3);
    assert_eq!(
        gc.append_inline(vec![b"d".to_vec()])
            .ok()
            .map(|r| r.unwrap()),
        Some(4..5)
    );
    drop(gc);
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    let data: Vec<&[u8]> = rec.records.iter().map(|r| r.data.as_slice()).collect();
    assert_eq!(data, [&b"a"[..], b"b", b"c", b"d"]);
}

#[test]
fn an_inline_write_gives_its_records_back_while_the_log_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let gc = started(dir.path(), small(1 << 16));
    let (release_tx, blocker) = hold_flusher(&gc);
    // The flusher is inside a batch.
    let back = gc.append_inline(vec![b"x".to_vec()]).err();
    assert_eq!(back, Some(vec![b"x".to_vec()]));
    // Something queued (behind the busy flusher) also sends an inline write the usual way.
    let queued = gc.append_channel(vec![b"y".to_vec()]);
    assert!(gc.append_inline(vec![b"z".to_vec()]).is_err());
    release_tx.send(()).unwrap();
    blocker.join().unwrap().unwrap();
    assert_eq!(queued.recv().unwrap().unwrap(), 1..2);
    assert_eq!(
        gc.append_inline(vec![b"z".to_vec()])
            .ok()
            .map(|r| r.unwrap()),
        Some(2..3)
    );
}

#[test]
fn an_inline_write_refuses_an_oversized_record_and_a_closed_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        max_record_size: 8,
        ..small(1 << 16)
    };
    let gc = started(dir.path(), opts);
    let h = gc.handle();
    assert!(matches!(
        h.append_inline(vec![b"ok".to_vec(), vec![0; 9]]),
        Ok(Err(StorageError::RecordTooLarge { len: 9, max: 8 }))
    ));
    assert_eq!(
        h.append_inline(vec![b"fine".to_vec()])
            .ok()
            .map(|r| r.unwrap()),
        Some(1..2)
    );
    let wal = gc.close().unwrap();
    assert_eq!(wal.last_index(), 1);
    assert!(h.append_inline(vec![b"late".to_vec()]).is_err());
    assert!(matches!(
        h.append_durable(b"late".to_vec()),
        Err(StorageError::Closed)
    ));
}

#[test]
fn inline_and_queued_writers_at_once_get_distinct_indexes_and_their_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(2048);
    let gc = started(dir.path(), opts.clone());
    let acked = writers_at_once(&gc, 6, 100, |h, t, seq| {
        // Even threads try inline first; odd ones always queue.
        let range = match t % 2 {
            0 => match h.append_inline(vec![record(t, seq)]) {
                Ok(r) => r.unwrap(),
                Err(back) => h.append_batch_durable(back).unwrap(),
            },
            _ => h.append_batch_durable(vec![record(t, seq)]).unwrap(),
        };
        assert_eq!(range.end - range.start, 1);
        range.start
    });
    drop(gc);
    assert_read_back(dir.path(), opts, acked);
}

#[test]
fn unsynced_writes_reach_the_file_and_become_durable_with_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(1 << 16);
    let gc = started(dir.path(), opts.clone());
    let before = gc.stats().syncs;
    // On the flusher: written, not synced.
    let (tx, rx) = mpsc::channel();
    gc.write_then(vec![b"a".to_vec()], move |r| tx.send(r).unwrap());
    assert_eq!(rx.recv().unwrap().unwrap(), 1..2);
    // On the caller's thread, while the log is idle: the same.
    let r = gc.write_inline(vec![b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(r.ok().map(|r| r.unwrap()), Some(2..4));
    assert_eq!(gc.stats().syncs, before, "no sync asked for");
    assert_eq!(gc.durable_index(), 0);
    // In the file already: another process reading it sees them.
    let rec = Wal::inspect(dir.path(), &opts).unwrap();
    assert_eq!(rec.records.len(), 3);
    // The next sync covers them; a sync-needing write queued with an unsynced one syncs both.
    let (tx, rx) = mpsc::channel();
    gc.write_then(vec![b"d".to_vec()], move |r| tx.send(r).unwrap());
    assert_eq!(gc.append_durable(b"e".to_vec()).unwrap(), 5);
    assert_eq!(rx.recv().unwrap().unwrap(), 4..5);
    assert_eq!(gc.durable_index(), 5);
    assert_eq!(gc.stats().syncs - before, 1);
    // Busy: given back.
    let (release, blocker) = hold_flusher(&gc);
    assert_eq!(
        gc.write_inline(vec![b"x".to_vec()]).err(),
        Some(vec![b"x".to_vec()])
    );
    release.send(()).unwrap();
    blocker.join().unwrap().unwrap();
    drop(gc);
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    let data: Vec<&[u8]> = rec.records.iter().map(|r| r.data.as_slice()).collect();
    assert_eq!(data, [&b"a"[..], b"b", b"c", b"d", b"e"]);
}

#[test]
fn a_task_after_unsynced_writes_finds_them_durable() {
    // `with_wal` promises everything queued before the task is durable, even when all of it
    // was written without a sync in an earlier turn and nothing else is queued with the task.
    let dir = tempfile::tempdir().unwrap();
    let gc = started(dir.path(), small(1 << 16));
    let (tx, rx) = mpsc::channel();
    gc.write_then(vec![b"a".to_vec(), b"b".to_vec()], move |r| {
        tx.send(r).unwrap()
    });
    assert_eq!(rx.recv().unwrap().unwrap(), 1..3);
    assert_eq!(gc.durable_index(), 0, "written, not synced");
    let seen = gc.with_wal(|wal| wal.durable_index()).unwrap();
    assert_eq!(
        seen, 2,
        "the task ran before the unsynced records were synced"
    );
    assert_eq!(gc.durable_index(), 2);
}
