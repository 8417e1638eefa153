//! What the store's examples share: counts from the command line, and a sequence of numbers
//! in no particular order to make keys from. Each example uses part of it.
#![allow(dead_code)]

/// Command-line argument `n` as a count, or `default` when it is absent; exits with a message
/// when it is not a count.
pub fn arg(n: usize, default: usize) -> usize {
    match std::env::args().nth(n) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|e| {
            eprintln!("argument {n} ({s:?}) is not a count: {e}");
            std::process::exit(2)
        }),
    }
}

/// A xorshift step: numbers in no order, the same on every run for the same seed.
pub fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A store holding `keys` distinct 16-byte keys in no order (the same on every run), each with
/// a `value_size`-byte value; exits with a message if a put fails.
pub fn loaded_store(keys: usize, value_size: usize) -> synod_kv::Store {
    let mut store = synod_kv::Store::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..keys {
        let req = synod_kv::PutRequest {
            key: format!("{:016x}", xorshift(&mut x)).into_bytes(),
            value: vec![7; value_size].into(),
            ..Default::default()
        };
        if let Err(e) = store.put(&req) {
            eprintln!("put failed: {e}");
            std::process::exit(1);
        }
    }
    store
}

/// This process's user and system CPU seconds so far, from `/proc/self/stat` (zeros if it
/// cannot be read).
pub fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u / 100.0, s / 100.0),
        _ => (0.0, 0.0),
    }
}
