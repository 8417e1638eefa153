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
