//! The search's memo: the set of configurations already explored.
//!
//! A configuration is a short slice of `u32` (see `wgl.rs`). A long search visits millions of
//! them, so they are stored back to back in one arena and indexed by an open-addressing table
//! of 8-byte slots: about 20-30 bytes each, with no allocation per entry.

/// A set of `u32` slices.
pub(crate) struct Visited {
    /// 0: empty. Otherwise the high 32 bits are the high half of the entry's hash (to skip most
    /// comparisons against the arena) and the low 32 bits its arena offset plus one.
    slots: Vec<u64>,
    /// Each entry: its length, then its words.
    arena: Vec<u32>,
    len: usize,
}

/// The arena outgrew 32-bit offsets (16 GiB): far past any sensible memory limit.
#[derive(Debug)]
pub(crate) struct Full;

impl Visited {
    pub(crate) fn new() -> Self {
        Visited {
            slots: vec![0; 1 << 10],
            arena: Vec::new(),
            len: 0,
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * 8 + self.arena.capacity() * 4
    }

    /// Adds `key`; true if it was not there yet.
    pub(crate) fn insert(&mut self, key: &[u32]) -> Result<bool, Full> {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let h = hash(key);
        let Err(i) = self.find(key, h) else {
            return Ok(false);
        };
        let off = self.arena.len();
        if off + key.len() + 2 >= u32::MAX as usize {
            return Err(Full);
        }
        self.arena.push(key.len() as u32);
        self.arena.extend_from_slice(key);
        self.slots[i] = (h & !0xFFFF_FFFF) | (off as u64 + 1);
        self.len += 1;
        Ok(true)
    }

    /// `Ok` if present, else `Err(free slot)`.
    fn find(&self, key: &[u32], h: u64) -> Result<(), usize> {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return Err(i);
            }
            if s >> 32 == h >> 32 && self.entry((s as u32 - 1) as usize) == key {
                return Ok(());
            }
            i = (i + 1) & mask;
        }
    }

    fn entry(&self, off: usize) -> &[u32] {
        let len = self.arena[off] as usize;
        &self.arena[off + 1..off + 1 + len]
    }

    fn grow(&mut self) {
        self.slots = vec![0; self.slots.len() * 2];
        let mask = self.slots.len() - 1;
        let mut off = 0;
        while off < self.arena.len() {
            let key = self.entry(off);
            let (h, len) = (hash(key), key.len());
            let mut i = h as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (h & !0xFFFF_FFFF) | (off as u64 + 1);
            off += 1 + len;
        }
    }
}

/// FxHash's mixing per word, then MurmurHash3's finalizer so that both the low bits (the slot)
/// and the high bits (the tag) depend on every word.
fn hash(key: &[u32]) -> u64 {
    let mut h = key.len() as u64;
    for &w in key {
        h = (h.rotate_left(5) ^ w as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_slices() {
        let mut v = Visited::new();
        for i in 0..10_000u32 {
            let key: Vec<u32> = (0..1 + i % 7).map(|j| i * 31 + j).collect();
            assert!(v.insert(&key).unwrap(), "{i} is new");
        }
        for i in 0..10_000u32 {
            let key: Vec<u32> = (0..1 + i % 7).map(|j| i * 31 + j).collect();
            assert!(!v.insert(&key).unwrap(), "{i} was there");
        }
        assert!(v.insert(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap());
        assert_eq!(v.len, 10_001);
    }
}
