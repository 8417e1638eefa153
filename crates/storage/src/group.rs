//! Group commit: many writers, one `fdatasync` per batch.
//!
//! A [`GroupCommitter`] owns the [`Wal`] on a dedicated flusher thread. Writers put records on
//! a queue and either block until they are durable, or hand over a callback. The flusher takes
//! everything queued, appends it in queue order, syncs once, and completes every submission of
//! the batch. While it syncs, new submissions pile up and form the next batch, so batches grow
//! with load by themselves: no timer, no added latency when the log is idle.
//!
//! For an async server, [`CommitHandle::append_then`] takes a callback that runs on the flusher
//! thread right after the sync (send on a oneshot channel from it); no runtime is needed here.

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
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when work is queued or the committer is closing.
    work: Condvar,
    max_record_size: usize,
    durable_index: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    segments_created: AtomicU64,
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
    thread: Option<JoinHandle<Wal>>,
}

/// A cheap, clonable, thread-safe handle for submitting records to a [`GroupCommitter`].
#[derive(Clone)]
pub struct CommitHandle {
    shared: Arc<Shared>,
}

impl GroupCommitter {
    /// Starts the flusher thread, which takes over `wal`.
    pub fn start(wal: Wal) -> Result<GroupCommitter> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            max_record_size: wal.options().max_record_size,
            durable_index: AtomicU64::new(wal.durable_index()),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            segments_created: AtomicU64::new(0),
        });
        // The counters start where the log stands, not at zero.
        publish(&shared, &wal);
        let s = shared.clone();
        let dir = wal.dir().to_path_buf();
        let thread = thread::Builder::new()
            .name("synod-wal-flusher".into())
            .spawn(move || flusher(s, wal))
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
        thread.join().map_err(|_| StorageError::Closed)
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
        let done = Completion(Some(Notify::Call(Box::new(on_durable))));
        self.submit(Payload::Many(records), done);
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

    fn submit(&self, payload: Payload, done: Completion) {
        let too_large = match &payload {
            Payload::One(r) => std::slice::from_ref(r).iter().map(Vec::len).max(),
            Payload::Many(rs) => rs.iter().map(Vec::len).max(),
        }
        .filter(|&len| len > self.shared.max_record_size);
        if let Some(len) = too_large {
            return done.complete(Err(StorageError::RecordTooLarge {
                len,
                max: self.shared.max_record_size,
            }));
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
fn flusher(shared: Arc<Shared>, mut wal: Wal) -> Wal {
    let _close = CloseOnExit(&shared);
    let mut ops = Vec::new();
    loop {
        {
            let mut q = lock(&shared.queue);
            while q.ops.is_empty() && !q.closed {
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.ops.is_empty() {
                return wal;
            }
            std::mem::swap(&mut ops, &mut q.ops);
        }
        let mut batch: Vec<(Completion, Range<u64>)> = Vec::new();
        for op in ops.drain(..) {
            match op {
                Op::Append(payload, done) => {
                    let start = wal.next_index();
                    let r = match &payload {
                        Payload::One(rec) => wal.append(rec).map(|_| ()),
                        Payload::Many(recs) => {
                            recs.iter().try_for_each(|r| wal.append(r).map(|_| ()))
                        }
                    };
                    match r {
                        Ok(()) => batch.push((done, start..wal.next_index())),
                        Err(e) => done.complete(Err(e)),
                    }
                }
                Op::Run(task) => {
                    commit(&shared, &mut wal, &mut batch);
                    task(&mut wal);
                    publish(&shared, &wal);
                }
            }
        }
        commit(&shared, &mut wal, &mut batch);
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

/// One `fdatasync` for the batch, then every submission in it learns the outcome.
fn commit(shared: &Shared, wal: &mut Wal, batch: &mut Vec<(Completion, Range<u64>)>) {
    if batch.is_empty() {
        return;
    }
    let r = wal.sync();
    if let Err(e) = &r {
        lock(&shared.queue).failed = Some(e.clone());
    }
    publish(shared, wal);
    for (done, range) in batch.drain(..) {
        done.complete(r.clone().map(|_| range));
    }
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
