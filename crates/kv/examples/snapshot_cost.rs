//! What encoding a snapshot of a large store costs, with a size pass first (the exact
//! allocation a store's first snapshot gets) and in one pass into room reserved from the last
//! snapshot's length (every later one), under the allocator the server runs on.
//!
//! ```sh
//! cargo run --release -p synod-kv --example snapshot_cost -- 1000000 256 5
//! ```
//!
//! Puts KEYS distinct 16-byte keys with VALUE-byte values in no particular order, then encodes
//! the store ROUNDS times each way and restores it from the encoding, and prints the wall time
//! and this process's user and system CPU for each. System time is mostly the kernel handing out fresh pages, which depends on
//! what the allocator kept from the round before, so user time is the figure to compare.
//!
//! Then, as a server saves a snapshot: encoded into memory and that written to a file, against
//! encoded straight into the file (`EncodeState::to_writer`), each file synced at the end. The
//! files go in the directory given as a fourth argument (default: the system's temporary
//! directory) and are removed.

mod common;

use common::{arg, cpu, loaded_store};
use std::io::Write;
use std::time::Instant;
use synod_core::encode::{to_vec_exact_with, to_vec_reserved_with};
use synod_core::multi::StateMachine;
use synod_kv::Store;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `encode`, printing what it cost; returns the encoding's length.
fn measure(what: &str, encode: impl FnOnce() -> Vec<u8>) -> usize {
    measure_len(what, || encode().len())
}

/// Runs `encode`, which returns how many bytes it made, printing what it cost.
fn measure_len(what: &str, encode: impl FnOnce() -> usize) -> usize {
    let (user, sys) = cpu();
    let start = Instant::now();
    let len = encode();
    let wall = start.elapsed();
    let (user2, sys2) = cpu();
    println!(
        "{what:>13}: {:>11} bytes, {:>6.0} ms wall, user {:.2} s, system {:.2} s",
        len,
        wall.as_secs_f64() * 1000.0,
        user2 - user,
        sys2 - sys
    );
    len
}

fn main() {
    let keys = arg(1, 1_000_000);
    let value_size = arg(2, 256);
    let rounds = arg(3, 5);
    let store = loaded_store(keys, value_size);
    for round in 1..=rounds {
        println!("round {round}");
        let len = measure("two pass", || {
            to_vec_exact_with(&store, &mut |_| {}).expect("the store serializes")
        });
        let bytes = to_vec_reserved_with(&store, 2 * len + (1 << 20), &mut |_| {})
            .expect("the store serializes");
        measure_len("restore", || match Store::restore(&bytes) {
            Ok(s) => {
                let n = bytes.len();
                drop(s);
                n
            }
            Err(e) => {
                eprintln!("cannot restore: {e}");
                std::process::exit(1);
            }
        });
    }
    let dir = std::env::args()
        .nth(4)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let path = dir.join(format!("snapshot_cost.{}", std::process::id()));
    let file = || match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot create {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let done = |f: std::fs::File, r: std::io::Result<u64>| match r
        .and_then(|n| f.sync_all().map(|()| n))
    {
        Ok(n) => n as usize,
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    for round in 1..=rounds {
        println!("round {round}, to a file");
        measure_len("memory, file", || {
            let bytes = store.snapshot_later().to_vec(&mut |_| {});
            let mut f = file();
            let written = f.write_all(&bytes).map(|()| bytes.len() as u64);
            done(f, written)
        });
        measure_len("straight", || {
            let mut f = file();
            let written = store.snapshot_later().to_writer(&mut f, &mut |_| {});
            done(f, written)
        });
    }
    let _ = std::fs::remove_file(&path);
}
