//! Group commit: many writers, one `fdatasync` per batch.
//!
//! A [`GroupCommitter`] owns the [`Wal`] and a dedicated flusher thread. Writers put records on
//! a queue and either block until they are durable, or hand over a callback. The flusher takes
//! everything queued, appends it in queue order, syncs once (or, if nothing queued asked for a
//! sync, only writes it: [`CommitHandle::write_then`]), and completes every submission of the
//! batch. While it syncs, new submissions pile up and form the next batch, so batches grow
//! with load by themselves: no timer, no added latency when the log is idle.
//!
//! For an async server, [`CommitHandle::append_then`] takes a callback that runs on the flusher
//! thread right after the sync (send on a oneshot channel from it); no runtime is needed here.
//! [`CommitHandle::append_inline`] appends and syncs on the caller's thread instead, but only
//! while the log is idle, so that a lone write at low load skips the two thread hand-offs.
//!
//! Who may touch the log: whoever set the queue's `busy` flag (the flusher for a batch, or an
//! inline writer), and only then the `wal` mutex. The flusher takes the two locks in both
//! orders (queue then log as it exits, log then queue when a sync fails); `busy` keeps those
//! from ever running at once.

use crate::error::{Result, StorageError};
use crate::wal::{Wal, WalStats};
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};

/// The result a submission gets: the indexes its records received, once they are durable.
pub type CommitResult = Result<Range<u64>>;

type Callback = Box<dyn FnOnce(CommitResult) + Send>;
type WalTask = Box<dyn FnOnce(&mut Wal) + Send>;

/// A blocked writer's mailbox.
struct Slot {
    result: Mutex<Option<CommitResult>>,
    thread: Thread,
}

enum Notify {
    Wake(Arc<Slot>),
    Call(Callback),
}

/// Delivers a submission's result exactly once: if the flusher dies before delivering (a bug,
/// or a panicking task), dropping the completion still answers [`StorageError::Closed`], so no
/// writer waits forever.
struct Completion(Option<Notify>);

impl Completion {
    /// A completion that calls `f` (on whichever thread completes it).
    fn call(f: impl FnOnce(CommitResult) + Send + 'static) -> Self {
        Completion(Some(Notify::Call(Box::new(f))))
    }

    fn complete(mut self, r: CommitResult) {
        if let Some(n) = self.0.take() {
            deliver(n, r);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            deliver(n, Err(StorageError::Closed));
        }
    }
}

fn deliver(n: Notify, r: CommitResult) {
    match n {
        Notify::Wake(slot) => {
            *lock(&slot.result) = Some(r);
            slot.thread.unpark();
        }
        // A panicking callback must not take the flusher (and every other writer) down with it.
        Notify::Call(f) => {
            let _ = catch_unwind(AssertUnwindSafe(move || f(r)));
        }
    }
}

enum Payload {
    One(Vec<u8>),
    Many(Vec<Vec<u8>>),
    /// Records that need no sync of their own: written to the file with the batch, durable
    /// with the next sync.
    Unsynced(Vec<Vec<u8>>),
}

impl Payload {
    fn records(&self) -> &[Vec<u8>] {
        match self {
            Payload::One(r) => std::slice::from_ref(r),
            Payload::Many(rs) | Payload::Unsynced(rs) => rs.as_slice(),
        }
    }
}

enum Op {
    Append(Payload, Completion),
    Run(WalTask),
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    closed: bool,
    failed: Option<StorageError>,
    /// Someone (the flusher, or a caller of [`CommitHandle::append_inline`]) holds the log.
    busy: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The log; the flusher or an inline writer locks it only while `busy` is theirs.
    wal: Mutex<Option<Wal>>,
    /// Signalled when work is queued or the committer is closing.
    work: Condvar,
    max_record_size: usize,
    durable_index: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    segments_created: AtomicU64,
}

impl Shared {
    /// An open queue with no log in it yet, counters at zero.
    fn new(max_record_size: usize, durable_index: u64) -> Self {
        Shared {
            queue: Mutex::new(Queue::default()),
            wal: Mutex::new(None),
            work: Condvar::new(),
            max_record_size,
            durable_index: AtomicU64::new(durable_index),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            segments_created: AtomicU64::new(0),
        }
    }
}

/// A lock that survives a panic elsewhere: the queue holds no invariant a panic could break
/// halfway, and refusing service would strand every writer.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Owns a [`Wal`] on a flusher thread and commits records from many writers in groups.
///
/// Dropping it (or [`close`](GroupCommitter::close)) completes everything already queued, then
/// stops the thread; later submissions through handles get [`StorageError::Closed`].
pub struct GroupCommitter {
    handle: CommitHandle,
    thread: Option<JoinHandle<Option<Wal>>>,
}

/// A cheap, clonable, thread-safe handle for submitting records to a [`GroupCommitter`].
#[derive(Clone)]
pub struct CommitHandle {
    shared: Arc<Shared>,
}

impl GroupCommitter {
    /// Starts the flusher thread, which takes over `wal`.
    pub fn start(wal: Wal) -> Result<GroupCommitter> {
        let max_record_size = wal.options().max_record_size;
        let durable = wal.durable_index();
        let dir = wal.dir().to_path_buf();
        let shared = Arc::new(Shared::new(max_record_size, durable));
        // The counters start where the log stands, not at zero.
        publish(&shared, &wal);
        *lock(&shared.wal) = Some(wal);
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("synod-wal-flusher".into())
            .spawn(move || flusher(s))
            .map_err(|e| StorageError::io("spawn the flusher thread for", &dir, e))?;
        Ok(GroupCommitter {
            handle: CommitHandle { shared },
            thread: Some(thread),
        })
    }

    /// A handle to submit records from other threads.
    pub fn handle(&self) -> CommitHandle {
        self.handle.clone()
    }

    /// Completes everything queued, stops the flusher and gives the log back.
    pub fn close(mut self) -> Result<Wal> {
        self.stop()
    }

    fn stop(&mut self) -> Result<Wal> {
        lock(&self.handle.shared.queue).closed = true;
        self.handle.shared.work.notify_all();
        let thread = self.thread.take().ok_or(StorageError::Closed)?;
        thread.join().ok().flatten().ok_or(StorageError::Closed)
    }
}

impl std::ops::Deref for GroupCommitter {
    type Target = CommitHandle;
    fn deref(&self) -> &CommitHandle {
        &self.handle
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

impl CommitHandle {
    /// Appends one record and blocks until it is durable; returns its index.
    pub fn append_durable(&self, record: Vec<u8>) -> Result<u64> {
        self.wait(Payload::One(record)).map(|r| r.start)
    }

    /// Appends records (consecutive indexes, in order) and blocks until all are durable;
    /// returns their indexes. An empty batch waits until everything queued before it is durable.
    pub fn append_batch_durable(&self, records: Vec<Vec<u8>>) -> Result<Range<u64>> {
        self.wait(Payload::Many(records))
    }

    /// Appends records and returns at once; `on_durable` runs on the flusher thread once they
    /// are durable (or failed). Keep it short, e.g. a channel send: the next batch waits for it.
    /// Submissions from one thread are appended in the order they were made.
    pub fn append_then(
        &self,
        records: Vec<Vec<u8>>,
        on_durable: impl FnOnce(CommitResult) + Send + 'static,
    ) {
        let done = Completion::call(on_durable);
        self.submit(Payload::Many(records), done);
    }

    /// Appends records and returns at once, without asking for a sync: `on_written` runs on
    /// the flusher thread once they are written to the file (not necessarily durable; the next
    /// sync, of anyone's records, makes them so, as the file keeps their order). For records
    /// whose loss in a crash costs nothing but a catch-up. Ordered with every other submission.
    pub fn write_then(
        &self,
        records: Vec<Vec<u8>>,
        on_written: impl FnOnce(CommitResult) + Send + 'static,
    ) {
        let done = Completion::call(on_written);
        self.submit(Payload::Unsynced(records), done);
    }

    /// Appends records and returns at once with a receiver that gets their result.
    pub fn append_channel(&self, records: Vec<Vec<u8>>) -> mpsc::Receiver<CommitResult> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.append_then(records, move |r| {
            let _ = tx.send(r);
        });
        rx
    }

    /// Runs `f` on the flusher thread with exclusive access to the log, after every record
    /// queued before it is durable, and returns its result: for truncation, compaction, reset.
    /// A panic in `f` is re-raised here.
    pub fn with_wal<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Wal) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        let shared = self.shared.clone();
        let task: WalTask = Box::new(move |wal| {
            let r = catch_unwind(AssertUnwindSafe(|| f(wal)));
            // Publish what `f` changed (a truncation lowers the durable index) before the
            // caller wakes, so it never reads the counters from before its own operation.
            publish(&shared, wal);
            let _ = tx.send(r);
        });
        {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                return Err(StorageError::Closed);
            }
            q.ops.push(Op::Run(task));
        }
        self.shared.work.notify_one();
        match rx.recv() {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(StorageError::Closed),
        }
    }

    /// Index of the last record known durable.
    pub fn durable_index(&self) -> u64 {
        self.shared.durable_index.load(Ordering::Acquire)
    }

    /// The log's counters, as of the last completed batch.
    pub fn stats(&self) -> WalStats {
        let s = &self.shared;
        WalStats {
            records: s.records.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            segments_created: s.segments_created.load(Ordering::Relaxed),
        }
    }

    /// Appends records and syncs them on the calling thread, if the log is idle: nothing
    /// queued and no batch being written. Gives the records back otherwise, to be submitted
    /// the usual way. For a caller that would only wait for the flusher anyway (a lone write
    /// at low load), this saves the two thread hand-offs a submission costs.
    ///
    /// Everything submitted before it is durable when it returns, though the callbacks of
    /// earlier [`CommitHandle::append_then`] calls may not have run yet.
    pub fn append_inline(
        &self,
        records: Vec<Vec<u8>>,
    ) -> std::result::Result<CommitResult, Vec<Vec<u8>>> {
        self.inline(Payload::Many(records))
    }

    /// [`CommitHandle::write_then`] on the calling thread, if the log is idle (as
    /// [`CommitHandle::append_inline`], without the sync); gives the records back otherwise.
    pub fn write_inline(
        &self,
        records: Vec<Vec<u8>>,
    ) -> std::result::Result<CommitResult, Vec<Vec<u8>>> {
        self.inline(Payload::Unsynced(records))
    }

    fn inline(&self, payload: Payload) -> std::result::Result<CommitResult, Vec<Vec<u8>>> {
        let give_back = |p: Payload| match p {
            Payload::One(r) => vec![r],
            Payload::Many(rs) | Payload::Unsynced(rs) => rs,
        };
        if let Some(e) = self.too_large(payload.records()) {
            return Ok(Err(e));
        }
        {
            let mut q = lock(&self.shared.queue);
            if q.busy || !q.ops.is_empty() || q.closed || q.failed.is_some() {
                return Err(give_back(payload));
            }
            q.busy = true;
        }
        // Gives the log back if this thread panics while it holds it (a bug in the log): the
        // flusher and every writer would otherwise wait for it forever.
        let guard = InlineGuard(&self.shared);
        let (tx, rx) = mpsc::sync_channel(1);
        let done = Completion::call(move |r| {
            let _ = tx.send(r);
        });
        let mut ops = vec![Op::Append(payload, done)];
        let done = run_ops(&self.shared, &mut ops);
        std::mem::forget(guard);
        let queued = {
            let mut q = lock(&self.shared.queue);
            q.busy = false;
            !q.ops.is_empty() || q.closed
        };
        if queued {
            self.shared.work.notify_all();
        }
        done.deliver();
        // Without the log (the flusher has exited) the completion was dropped: Closed.
        Ok(rx.recv().unwrap_or(Err(StorageError::Closed)))
    }

    fn wait(&self, payload: Payload) -> CommitResult {
        let slot = Arc::new(Slot {
            result: Mutex::new(None),
            thread: thread::current(),
        });
        self.submit(payload, Completion(Some(Notify::Wake(slot.clone()))));
        loop {
            if let Some(r) = lock(&slot.result).take() {
                return r;
            }
            thread::park();
        }
    }

    /// Refuses a submission with a record over the limit, before it reaches the log.
    fn too_large(&self, records: &[Vec<u8>]) -> Option<StorageError> {
        let max = self.shared.max_record_size;
        let len = records
            .iter()
            .map(Vec::len)
            .max()
            .filter(|&len| len > max)?;
        Some(StorageError::RecordTooLarge { len, max })
    }

    fn submit(&self, payload: Payload, done: Completion) {
        if let Some(e) = self.too_large(payload.records()) {
            return done.complete(Err(e));
        }
        let mut q = lock(&self.shared.queue);
        if let Some(e) = &q.failed {
            let e = StorageError::Poisoned(Arc::new(e.clone()));
            drop(q);
            return done.complete(Err(e));
        }
        if q.closed {
            drop(q);
            return done.complete(Err(StorageError::Closed));
        }
        let was_empty = q.ops.is_empty();
        q.ops.push(Op::Append(payload, done));
        drop(q);
        // The flusher only sleeps on an empty queue, so only the first submission must wake it.
        if was_empty {
            self.shared.work.notify_one();
        }
    }
}

/// The flusher thread: batch, append, sync, complete; until closed and drained.
fn flusher(shared: Arc<Shared>) -> Option<Wal> {
    let _close = CloseOnExit(&shared);
    let mut ops = Vec::new();
    loop {
        {
            let mut q = lock(&shared.queue);
            // An inline writer holds the log: its records go first, ours after.
            while (q.ops.is_empty() && !q.closed) || q.busy {
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.ops.is_empty() {
                return lock(&shared.wal).take();
            }
            std::mem::swap(&mut ops, &mut q.ops);
            q.busy = true;
        }
        let done = run_ops(&shared, &mut ops);
        lock(&shared.queue).busy = false;
        done.deliver();
    }
}

/// Synced submissions whose writers have not heard yet. The last batch of a turn is delivered
/// once the log is free again, so that a woken writer finds it idle; a batch synced before a
/// [`CommitHandle::with_wal`] task is delivered at once, while the log is still held.
struct Synced(Vec<(Completion, Range<u64>)>, Result<()>);

impl Synced {
    fn deliver(self) {
        let Synced(batch, r) = self;
        for (done, range) in batch {
            done.complete(r.clone().map(|_| range));
        }
    }
}

/// Appends and runs `ops` in order with the log locked, syncing once per stretch of appends;
/// the last stretch's writers are told by the caller.
fn run_ops(shared: &Shared, ops: &mut Vec<Op>) -> Synced {
    let mut guard = lock(&shared.wal);
    let Some(wal) = guard.as_mut() else {
        // The flusher has exited; dropping the completions answers Closed.
        ops.clear();
        return Synced(Vec::new(), Ok(()));
    };
    let mut batch: Vec<(Completion, Range<u64>)> = Vec::new();
    let mut sync = false;
    for op in ops.drain(..) {
        match op {
            Op::Append(payload, done) => {
                let start = wal.next_index();
                sync |= !matches!(payload, Payload::Unsynced(_));
                let r = payload
                    .records()
                    .iter()
                    .try_for_each(|r| wal.append(r).map(|_| ()));
                match r {
                    Ok(()) => batch.push((done, start..wal.next_index())),
                    Err(e) => done.complete(Err(e)),
                }
            }
            Op::Run(task) => {
                // A task runs after everything queued before it is durable.
                commit(shared, wal, std::mem::take(&mut batch), true).deliver();
                sync = false;
                task(wal);
                publish(shared, wal);
            }
        }
    }
    commit(shared, wal, batch, sync)
}

/// Closes the log if an inline writer panics while it holds it (a bug in the log): the log,
/// perhaps halfway through a frame, is dropped unsynced, queued and later submissions are
/// answered [`StorageError::Closed`], and the flusher exits, instead of everyone waiting for a
/// log that is never given back.
struct InlineGuard<'a>(&'a Shared);

impl Drop for InlineGuard<'_> {
    fn drop(&mut self) {
        // The panicking frame has released the log's lock by now.
        drop(lock(&self.0.wal).take());
        {
            let mut q = lock(&self.0.queue);
            q.busy = false;
            q.closed = true;
        }
        self.0.work.notify_all();
    }
}

/// Closes the queue when the flusher exits, even by a panic (a bug): queued submissions are
/// dropped, which answers them [`StorageError::Closed`], and later ones are refused at once.
struct CloseOnExit<'a>(&'a Shared);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        let orphans = {
            let mut q = lock(&self.0.queue);
            q.closed = true;
            std::mem::take(&mut q.ops)
        };
        drop(orphans);
    }
}

/// One `fdatasync` for the batch (with `sync`; otherwise its records are only written to the
/// file); its submissions learn the outcome from [`Synced::deliver`].
fn commit(
    shared: &Shared,
    wal: &mut Wal,
    batch: Vec<(Completion, Range<u64>)>,
    sync: bool,
) -> Synced {
    if batch.is_empty() && !sync {
        return Synced(batch, Ok(()));
    }
    let r = match sync {
        true => wal.sync().map(|_| ()),
        false => wal.write_out(),
    };
    if let Err(e) = &r {
        lock(&shared.queue).failed = Some(e.clone());
    }
    publish(shared, wal);
    Synced(batch, r.map(|_| ()))
}

fn publish(shared: &Shared, wal: &Wal) {
    let s = wal.stats();
    shared.records.store(s.records, Ordering::Relaxed);
    shared.bytes.store(s.bytes, Ordering::Relaxed);
    shared.syncs.store(s.syncs, Ordering::Relaxed);
    shared
        .segments_created
        .store(s.segments_created, Ordering::Relaxed);
    shared
        .durable_index
        .store(wal.durable_index(), Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_dropped_unfinished_reports_the_log_closed() {
        // A waiter must hear something when the log goes away with its batch unsynced.
        let (tx, rx) = std::sync::mpsc::channel();
        drop(Completion::call(move |r| {
            let _ = tx.send(matches!(r, Err(StorageError::Closed)));
        }));
        assert_eq!(rx.try_recv(), Ok(true));
        // One completed is told once, with its result.
        let (tx, rx) = std::sync::mpsc::channel();
        Completion::call(move |r| {
            let _ = tx.send(r.is_ok());
        })
        .complete(Ok(3..4));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![true]);
    }

    #[test]
    fn an_inline_writer_that_panics_holding_the_log_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), crate::WalOptions::default()).unwrap();
        let gc = GroupCommitter::start(wal).unwrap();
        let shared = gc.handle().shared;
        // What `inline` does, then a panic with the log locked (a bug in the log).
        let crashed = thread::scope(|s| {
            s.spawn(|| {
                lock(&shared.queue).busy = true;
                let _guard = InlineGuard(&shared);
                let _wal = lock(&shared.wal);
                panic!("a bug while appending inline");
            })
            .join()
        });
        assert!(crashed.is_err());
        let (busy, closed, has_wal) = {
            let q = lock(&shared.queue);
            (q.busy, q.closed, lock(&shared.wal).is_some())
        };
        // Whatever the guard did, free the flusher so that a failure fails instead of hanging.
        lock(&shared.queue).busy = false;
        shared.work.notify_all();
        assert_eq!((busy, closed, has_wal), (false, true, false));
        assert!(matches!(
            gc.append_durable(b"after".to_vec()),
            Err(StorageError::Closed)
        ));
        assert!(matches!(gc.close(), Err(StorageError::Closed)));
    }

    #[test]
    fn a_flusher_that_panics_answers_what_it_leaves_queued() {
        // A committer's shared state with no log and no flusher.
        let shared = Arc::new(Shared::new(1 << 10, 0));
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Completion::call(move |r| {
            let _ = tx.send(r);
        });
        lock(&shared.queue)
            .ops
            .push(Op::Append(Payload::One(b"queued".to_vec()), queued));
        let crashed = thread::scope(|s| {
            s.spawn(|| {
                let _close = CloseOnExit(&shared);
                panic!("a bug in the flusher");
            })
            .join()
        });
        assert!(crashed.is_err());
        assert!(matches!(rx.try_recv(), Ok(Err(StorageError::Closed))));
        // Later submissions are refused at once instead of queued for no one.
        let handle = CommitHandle { shared };
        assert!(matches!(
            handle.append_durable(b"later".to_vec()),
            Err(StorageError::Closed)
        ));
    }
}
