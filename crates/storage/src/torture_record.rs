//! The records the crash test's helper binary writes; shared by the binary and the test.

/// The record thread `thread` of run `run` writes as its `seq`th: its identity, then bytes
/// derived from it, of a length that varies so segments fill unevenly.
pub fn torture_record(run: u32, thread: u32, seq: u64) -> Vec<u8> {
    let len = 16 + ((seq * 37 + thread as u64 * 101 + run as u64 * 13) % 700) as usize;
    let mut r = Vec::with_capacity(len);
    r.extend_from_slice(&run.to_le_bytes());
    r.extend_from_slice(&thread.to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq ^ ((run as u64) << 40) ^ ((thread as u64) << 20);
    while r.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        r.push((x >> 56) as u8);
    }
    r
}
