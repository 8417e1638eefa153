//! Live heap bytes per key of the store, measured exactly with a counting allocator rather
//! than read off a process's resident size (which also holds the log, buffers and whatever the
//! allocator keeps back).
//!
//! ```sh
//! cargo run --release -p synod-kv --example memory -- 1000000 256
//! cargo run --release -p synod-kv --example memory -- 1000 256 1000   # what a compaction gives back
//! ```
//!
//! Puts KEYS distinct 16-byte keys with VALUE-byte values, one revision each, in no particular
//! order (as clients write them; keys written in ascending order leave the key map's nodes half
//! full), then reports the heap the store holds per key against the key and value bytes. With
//! WRITES above 1, writes every key that many times (a history of WRITES revisions each), and
//! reports the heap again after a compaction at the last revision, which leaves one each.

mod common;

use common::arg;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use synod_kv::{CompactionRequest, PutRequest, Store};

/// The system allocator, counting the bytes it has handed out and not yet been given back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's own arguments; the counter is
// bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let keys = arg(1, 1_000_000);
    let value_size = arg(2, 256);
    let writes = arg(3, 1);
    if writes == 0 {
        eprintln!("WRITES (argument 3) must be at least 1");
        std::process::exit(2);
    }
    let mut store = Store::new();
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..writes {
        for i in 0..keys {
            let req = PutRequest {
                // An odd multiplier permutes the 64-bit numbers: distinct keys, scattered.
                key: format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .into_bytes(),
                value: vec![b'v'; value_size].into(),
                ..PutRequest::default()
            };
            if let Err(e) = store.put(&req) {
                eprintln!("put {i} failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let data = keys * (16 + value_size);
    let report = |what: &str| {
        let held = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "{keys} keys of 16 + {value_size} bytes, {what}: store heap {:.1} MB, {:.0} bytes \
             per key, {:.2}x the key and value bytes",
            held as f64 / 1e6,
            held as f64 / keys as f64,
            held as f64 / data as f64
        );
    };
    if writes == 1 {
        report("written once");
        return;
    }
    report(&format!("written {writes} times"));
    let revision = store.revision();
    if let Err(e) = store.compact(&CompactionRequest { revision }) {
        eprintln!("compacting at {revision} failed: {e}");
        std::process::exit(1);
    }
    report(&format!("compacted at revision {revision}"));
}
