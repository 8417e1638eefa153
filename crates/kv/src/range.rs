//! Which keys a `(key, range_end)` pair selects, with etcd's conventions.

use std::ops::Bound;

/// A set of keys: one key, a half-open range, or everything from a key on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly this key (`range_end` empty).
    One(Vec<u8>),
    /// `[start, end)`.
    Span(Vec<u8>, Vec<u8>),
    /// Every key `>= start` (`range_end` is `"\0"`; with key `"\0"` too, every key).
    From(Vec<u8>),
}

impl KeyRange {
    /// Interprets etcd's `key` and `range_end` fields.
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::One(key.to_vec()),
            [0] => KeyRange::From(if key == [0] { Vec::new() } else { key.to_vec() }),
            end => KeyRange::Span(key.to_vec(), end.to_vec()),
        }
    }

    /// The `range_end` that selects every key with `prefix` (what `--prefix` sends).
    pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return end;
            }
        }
        vec![0]
    }

    /// True if `key` is selected.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::One(k) => k == key,
            KeyRange::Span(s, e) => s.as_slice() <= key && key < e.as_slice(),
            KeyRange::From(s) => s.as_slice() <= key,
        }
    }

    /// Bounds for an ordered map's `range` over keys that borrow as `[u8]`, borrowing this
    /// range's own keys.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        match self {
            KeyRange::One(k) => (Bound::Included(k), Bound::Included(k)),
            KeyRange::Span(s, e) if s >= e => (Bound::Excluded(s), Bound::Excluded(s)),
            KeyRange::Span(s, e) => (Bound::Included(s), Bound::Excluded(e)),
            KeyRange::From(s) => (Bound::Included(s), Bound::Unbounded),
        }
    }

    /// True if the range is empty by construction (end at or before start).
    pub fn is_empty(&self) -> bool {
        matches!(self, KeyRange::Span(s, e) if s >= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_conventions() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::One(b"a".to_vec()));
        assert!(KeyRange::new(b"a", b"c").contains(b"b"));
        assert!(!KeyRange::new(b"a", b"c").contains(b"c"));
        assert!(KeyRange::new(b"a", &[0]).contains(b"zzz"));
        assert!(KeyRange::new(&[0], &[0]).contains(b""));
        assert!(KeyRange::new(b"b", b"a").is_empty());
    }

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(KeyRange::prefix_end(b"abc"), b"abd".to_vec());
        assert_eq!(KeyRange::prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(KeyRange::prefix_end(&[0xff, 0xff]), vec![0]);
        let r = KeyRange::new(b"foo/", &KeyRange::prefix_end(b"foo/"));
        assert!(r.contains(b"foo/bar") && !r.contains(b"foo0") && !r.contains(b"fo"));
    }
}
