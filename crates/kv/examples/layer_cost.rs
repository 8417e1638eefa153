//! What a snapshot laid on the last one saves against one encoded whole, for a store that keeps
//! its history (nothing compacted), as the benchmark's comparison leaves it.
//!
//! ```sh
//! cargo run --release -p synod-kv --example layer_cost -- 1000 256 200000 5
//! ```
//!
//! Puts WRITES values of VALUE bytes over KEYS keys per round, ROUNDS times, and after each
//! round snapshots the store twice: encoded whole (`EncodeState::to_vec`) and laid on the
//! last layered snapshot (`EncodeState::to_vec_after`). Prints each one's length, wall time
//! and this process's user and system CPU, then the CPU and wall time of restoring each. Both
//! are made in memory: the server copies the base from a mapping of its last checkpoint file,
//! which may read it from the disk first.

mod common;

use common::{arg, cpu, xorshift};
use std::time::Instant;
use synod_core::multi::StateMachine;
use synod_kv::Store;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `f`, printing what it cost under `what`.
fn measure<T>(what: &str, f: impl FnOnce() -> T, len: impl Fn(&T) -> usize) -> T {
    let (user, sys) = cpu();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let (user2, sys2) = cpu();
    println!(
        "{what:>16}: {:>11} bytes, {:>6.0} ms wall, user {:.2} s, system {:.2} s",
        len(&out),
        wall.as_secs_f64() * 1000.0,
        user2 - user,
        sys2 - sys
    );
    out
}

fn restore(what: &str, bytes: &[u8]) {
    let store = measure(
        what,
        || match Store::restore(bytes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot restore: {e}");
                std::process::exit(1);
            }
        },
        |_| bytes.len(),
    );
    drop(store);
}

fn main() {
    let keys = arg(1, 1_000).max(1);
    let value_size = arg(2, 256);
    let writes = arg(3, 200_000);
    let rounds = arg(4, 5);
    let mut store = Store::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut layered: Vec<u8> = store.snapshot();
    for round in 1..=rounds {
        for _ in 0..writes {
            let req = synod_kv::PutRequest {
                key: format!("{:016x}", xorshift(&mut x) % keys as u64).into_bytes(),
                value: vec![7; value_size].into(),
                ..Default::default()
            };
            if let Err(e) = store.put(&req) {
                eprintln!("put failed: {e}");
                std::process::exit(1);
            }
        }
        println!("round {round}: revision {}", store.revision());
        let whole = measure(
            "whole",
            || store.snapshot_later().to_vec(&mut |_| {}),
            Vec::len,
        );
        let next = measure(
            "layered",
            || store.snapshot_later().to_vec_after(&layered, &mut |_| {}),
            Vec::len,
        );
        restore("restore whole", &whole);
        restore("restore layered", &next);
        layered = next;
    }
}
