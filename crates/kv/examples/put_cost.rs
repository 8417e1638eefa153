//! What a put costs the store itself at a given size, with no log, network or gRPC around it.
//!
//! ```sh
//! cargo run --release -p synod-kv --example put_cost -- 1000000 256 1000000
//! ```
//!
//! Loads KEYS distinct 16-byte keys with VALUE-byte values in no particular order, then times
//! PUTS overwrites of keys drawn from them and PUTS puts of new keys, and prints nanoseconds per
//! put for each, under the allocator the server runs on. Each put keeps its revision (no
//! compaction), as in `bench/scale.sh`.
//!
//! Then PUTS overwrites again while a snapshot's copy of the store is held (what a node's store
//! does while its snapshot is encoded): a put on a key not written since the copy copies that
//! key's history and the key map's path to it instead of changing them in place.

mod common;

use common::{arg, xorshift as next};
use std::time::Instant;
use synod_kv::{PutRequest, Store};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn put(store: &mut Store, key: u64, value_size: usize) {
    let req = PutRequest {
        key: format!("{key:016x}").into_bytes(),
        value: vec![7; value_size].into(),
        ..Default::default()
    };
    if let Err(e) = store.put(&req) {
        eprintln!("put failed: {e}");
        std::process::exit(1);
    }
}

fn main() {
    let keys = arg(1, 1_000_000);
    let value_size = arg(2, 256);
    let puts = arg(3, 1_000_000);
    let mut store = Store::new();
    let mut loaded = Vec::with_capacity(keys);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..keys {
        let k = next(&mut x);
        loaded.push(k);
        put(&mut store, k, value_size);
    }
    let mut pick: u64 = 0x2545_F491_4F6C_DD1D;
    let start = Instant::now();
    for _ in 0..puts {
        let k = loaded[(next(&mut pick) % keys as u64) as usize];
        put(&mut store, k, value_size);
    }
    let overwrite = start.elapsed();
    let start = Instant::now();
    for _ in 0..puts {
        put(&mut store, next(&mut x), value_size);
    }
    let fresh = start.elapsed();
    let per = |d: std::time::Duration| d.as_nanos() as f64 / puts as f64;
    println!(
        "{keys} keys: overwrite {:.0} ns/put, new key {:.0} ns/put",
        per(overwrite),
        per(fresh)
    );
    let start = Instant::now();
    for _ in 0..puts {
        let k = loaded[(next(&mut pick) % keys as u64) as usize];
        put(&mut store, k, value_size);
    }
    let again = start.elapsed();
    let copy = store.shared_copy();
    // Three rounds: the map's nodes are copied once each, a key's history once per key.
    let held: Vec<String> = (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..puts {
                let k = loaded[(next(&mut pick) % keys as u64) as usize];
                put(&mut store, k, value_size);
            }
            format!("{:.0}", per(start.elapsed()))
        })
        .collect();
    let start = Instant::now();
    drop(copy);
    let dropped = start.elapsed();
    println!(
        "overwrite {:.0} ns/put; with a snapshot's copy held {} ns/put in three rounds; \
         dropping the copy {} ms",
        per(again),
        held.join(", "),
        dropped.as_millis()
    );
}
