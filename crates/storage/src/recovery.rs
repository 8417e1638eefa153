//! Deciding what a log directory holds: intact records, a torn tail, or corruption.
//!
//! The rules, and why they are sound:
//! - Every segment but the last was synced in full before the next one was created, and a
//!   segment gets its real name only after its header is durable. So a crash can only tear the
//!   *last* segment's frames. Damage anywhere else (a bad header, garbage after the last frame
//!   of an earlier segment, a gap in the indexes between segments) is corruption.
//! - In the last segment, the first spot that is not the next intact frame ends the records.
//!   If only zeros follow, that is the normal end of the log. If non-zero bytes follow but no
//!   intact frame that could be a later record, it is a torn tail: the write that was in flight
//!   at the crash, never reported durable. It is cut (zeroed) and reported.
//! - If an intact frame for a later index follows the damage, later records were written (and
//!   may have been acknowledged) after the damaged one, so the damage is not the unfinished
//!   end of the last write: corruption.
//!
//! Corruption is an error naming the file and offset, unless repair was asked for: then the log
//! is cut at the damage (the rest of that segment zeroed, later segments removed) and the cut is
//! reported. Nothing is ever skipped silently.
//!
//! One case the rules cannot tell apart: a power loss (not a process crash) in the middle of
//! writing a batch can persist a later page of that batch but not an earlier one. That looks
//! like corruption and is refused; no acknowledged record is lost, and repair then discards
//! only records that were never acknowledged.

use crate::error::{Result, StorageError};
use crate::record::{FrameError, MAX_INDEX};
use crate::report::{Truncation, TruncationKind};
use crate::segment::{self, classify_tail, decode_header, scan_frames, Stop, Tail};
use crate::wal::Record;
use std::path::{Path, PathBuf};

/// What to do to the directory, and what it holds once that is done.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Every intact record, in order.
    pub records: Vec<Record>,
    /// Segments that stay, `(first_index, path)`, in order; appends continue in the last one.
    pub kept: Vec<(u64, PathBuf)>,
    /// Where appends continue in the last kept segment.
    pub data_end: u64,
    /// Non-zero bytes from `data_end` up to here in the last kept segment must be zeroed.
    pub zero_end: u64,
    /// When no segment is kept: the first index of the new one.
    pub fresh_first: u64,
    /// Segments to remove, highest first so a crash midway leaves a prefix of the log.
    pub remove: Vec<PathBuf>,
    /// What was cut, if anything.
    pub truncation: Option<Truncation>,
}

/// Analyses the segments `listing` (sorted by first index) whose bytes `read` returns. Reads
/// one segment at a time; never panics, whatever the bytes; changes nothing.
pub(crate) fn analyze(
    listing: &[(u64, PathBuf)],
    mut read: impl FnMut(&Path) -> Result<Vec<u8>>,
    repair: bool,
    default_first: u64,
) -> Result<Plan> {
    let mut plan = Plan {
        records: Vec::new(),
        kept: Vec::new(),
        data_end: segment::SEGMENT_HEADER_LEN as u64,
        zero_end: segment::SEGMENT_HEADER_LEN as u64,
        fresh_first: listing
            .first()
            .map_or(default_first, |(i, _)| (*i).clamp(1, MAX_INDEX)),
        remove: Vec::new(),
        truncation: None,
    };
    let mut expected: Option<u64> = None;
    for (i, (name_index, path)) in listing.iter().enumerate() {
        let last = i + 1 == listing.len();
        let bytes = read(path)?;
        let damage = Damage {
            listing,
            at: i,
            repair,
        };
        let first = match decode_header(&bytes) {
            Ok(first) => first,
            Err((offset, reason)) => return damage.header(plan, offset, reason),
        };
        if first == 0 || first > MAX_INDEX {
            let reason = format!("first index {first} is out of range (1..={MAX_INDEX})");
            return damage.header(plan, 16, reason);
        }
        if first != *name_index {
            let reason = format!("header says first index {first}, file name says {name_index}");
            return damage.header(plan, 16, reason);
        }
        if let Some(e) = expected.filter(|e| *e != first) {
            let reason = if first > e {
                format!("segment starts at index {first}, but the previous segment ends at index {}: records are missing", e - 1)
            } else {
                format!("segment starts at index {first}, overlapping the previous segment, which ends at index {}", e - 1)
            };
            return damage.header(plan, 16, reason);
        }
        let scan = scan_frames(&bytes, first);
        let next = first + scan.payloads.len() as u64;
        let tail = classify_tail(&bytes, scan.data_end, next);
        let stop = match &scan.stop {
            Some(Stop::Frame(FrameError::Unwritten)) | None => {
                "non-zero bytes after the last record".to_string()
            }
            Some(s) => s.to_string(),
        };
        plan.records.extend(
            scan.payloads
                .iter()
                .enumerate()
                .map(|(k, &(off, len))| Record {
                    index: first + k as u64,
                    data: bytes[off..off + len].to_vec(),
                }),
        );
        plan.kept.push((first, path.clone()));
        plan.data_end = scan.data_end as u64;
        plan.zero_end = scan.data_end as u64;
        match tail {
            Tail::Clean => {}
            Tail::Garbage {
                nonzero_end,
                intact_after: None,
            } if last => {
                plan.zero_end = nonzero_end as u64;
                plan.truncation = Some(Truncation {
                    kind: TruncationKind::TornTail,
                    path: path.clone(),
                    offset: scan.data_end as u64,
                    bytes: (nonzero_end - scan.data_end) as u64,
                    removed_segments: Vec::new(),
                    reason: stop,
                });
            }
            Tail::Garbage {
                nonzero_end,
                intact_after,
            } => {
                let reason = match intact_after {
                    Some((at, index)) => format!(
                        "{stop}, yet an intact record (index {index}) follows at offset {at}: \
                         not a torn write"
                    ),
                    None => format!(
                        "{stop} after the last record of a segment that is not the last one \
                         (earlier segments are synced in full): not a torn write"
                    ),
                };
                let bytes = (nonzero_end - scan.data_end) as u64;
                return damage.frames(
                    plan,
                    scan.data_end as u64,
                    nonzero_end as u64,
                    bytes,
                    reason,
                );
            }
        }
        expected = Some(next);
    }
    Ok(plan)
}

/// Where damage was found, and what to do about it.
struct Damage<'a> {
    listing: &'a [(u64, PathBuf)],
    at: usize,
    repair: bool,
}

impl Damage<'_> {
    fn path(&self) -> &Path {
        &self.listing[self.at].1
    }

    fn later_segments(&self, from: usize) -> Vec<PathBuf> {
        self.listing[from..]
            .iter()
            .rev()
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Damage in segment `at`'s header or its place in the sequence: the whole segment and all
    /// later ones go; appends continue after the previous segment's records.
    fn header(self, mut plan: Plan, offset: u64, reason: String) -> Result<Plan> {
        if !self.repair {
            return Err(StorageError::corrupt(self.path(), offset, reason));
        }
        plan.remove = self.later_segments(self.at);
        plan.truncation = Some(Truncation {
            kind: TruncationKind::Repaired,
            path: self.path().to_path_buf(),
            offset: 0,
            bytes: 0,
            removed_segments: plan.remove.iter().rev().cloned().collect(),
            reason: format!("at offset {offset}: {reason}"),
        });
        if plan.kept.is_empty() {
            plan.fresh_first = self.listing[self.at].0.clamp(1, MAX_INDEX);
        }
        Ok(plan)
    }

    /// Damage among segment `at`'s frames at `offset`: the rest of the segment is zeroed up to
    /// `zero_end`, later segments go.
    fn frames(
        self,
        mut plan: Plan,
        offset: u64,
        zero_end: u64,
        bytes: u64,
        reason: String,
    ) -> Result<Plan> {
        if !self.repair {
            return Err(StorageError::corrupt(self.path(), offset, reason));
        }
        plan.remove = self.later_segments(self.at + 1);
        plan.zero_end = zero_end;
        plan.truncation = Some(Truncation {
            kind: TruncationKind::Repaired,
            path: self.path().to_path_buf(),
            offset,
            bytes,
            removed_segments: plan.remove.iter().rev().cloned().collect(),
            reason,
        });
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_frame;
    use crate::segment::encode_header;
    use proptest::prelude::*;

    /// A segment image: a valid header for `first` (or not), frames, then arbitrary bytes.
    fn image() -> impl Strategy<Value = (u64, bool, Vec<Vec<u8>>, Vec<u8>)> {
        (
            prop_oneof![Just(0u64), 1u64..50, Just(MAX_INDEX), Just(u64::MAX)],
            any::<bool>(),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..4),
            prop::collection::vec(any::<u8>(), 0..64),
        )
    }

    proptest! {
        #[test]
        fn analysing_arbitrary_segments_never_panics(
            images in prop::collection::vec(image(), 0..4),
            repair in any::<bool>(),
        ) {
            let mut files = std::collections::HashMap::new();
            let mut listing = Vec::new();
            for (i, (first, valid, recs, junk)) in images.iter().enumerate() {
                let mut b = if *valid { encode_header(*first).to_vec() } else { junk.clone() };
                for (k, r) in recs.iter().enumerate() {
                    encode_frame(first.wrapping_add(k as u64), r, &mut b);
                }
                b.extend_from_slice(junk);
                let path = PathBuf::from(format!("seg{i}"));
                files.insert(path.clone(), b);
                listing.push((*first, path));
            }
            listing.sort();
            let read = |p: &Path| Ok(files[p].clone());
            if let Ok(plan) = analyze(&listing, read, repair, 1) {
                prop_assert!(plan.fresh_first >= 1);
                for w in plan.records.windows(2) {
                    prop_assert_eq!(w[0].index + 1, w[1].index);
                }
            }
        }
    }
}
