//! What a range over many keys costs the store itself, with no log, network or gRPC around it.
//!
//! ```sh
//! cargo run --release -p synod-kv --example range_cost -- 1000000 256 20
//! ```
//!
//! Loads KEYS distinct 16-byte keys with VALUE-byte values, then times ROUNDS of each of three
//! reads over every key, as `etcdctl get "" --prefix` with `--limit 10`, with `--count-only`
//! and with `--keys-only` would ask, and prints the median milliseconds per read of each. Every
//! one must walk all the keys (a range answers with the count of what it matched); what differs
//! is how much of each match it copies out.

mod common;

use common::{arg, loaded_store};
use std::time::{Duration, Instant};
use synod_kv::{RangeRequest, Store};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The median time of `rounds` reads of `req`, and the size of the last answer.
fn median(store: &Store, req: &RangeRequest, rounds: usize) -> (Duration, usize, i64) {
    let mut times = Vec::with_capacity(rounds);
    let mut answer = (0, 0);
    for _ in 0..rounds {
        let start = Instant::now();
        let r = match store.range(req) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("range failed: {e}");
                std::process::exit(1);
            }
        };
        times.push(start.elapsed());
        answer = (r.kvs.len(), r.count);
    }
    times.sort();
    (times[rounds / 2], answer.0, answer.1)
}

fn main() {
    let keys = arg(1, 1_000_000);
    let value_size = arg(2, 256);
    let rounds = arg(3, 20).max(1);
    let store = loaded_store(keys, value_size);
    // Every key: from the empty key to the end of the key space (`--prefix ""`).
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let cases = [
        (
            "limit 10",
            RangeRequest {
                limit: 10,
                ..all.clone()
            },
        ),
        (
            "count only",
            RangeRequest {
                count_only: true,
                ..all.clone()
            },
        ),
        (
            "keys only",
            RangeRequest {
                keys_only: true,
                ..all.clone()
            },
        ),
    ];
    for (what, req) in &cases {
        let (t, returned, count) = median(&store, req, rounds);
        println!(
            "{keys} keys, {what}: {:.1} ms per range (median of {rounds}), {returned} returned of {count}",
            t.as_secs_f64() * 1e3
        );
    }
}
