//! Postcard encoding into a buffer allocated once, at exactly the encoding's size.
//!
//! `postcard::to_stdvec` grows its buffer by doubling. For a snapshot of a large store that
//! copies the bytes several times over and touches about twice their size in fresh pages,
//! which profiles of a busy leader showed as most of a snapshot's cost. Counting the size
//! first is a read-only walk over the value, far cheaper than the copies it saves.

use serde::Serialize;

/// How many bytes an encoding produces between two calls of its progress callback.
pub const PROGRESS_STEP: usize = 1 << 20;

/// Encodes `value` with postcard into a vector whose capacity is exactly its length.
pub fn to_vec_exact<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Vec<u8>> {
    to_vec_exact_with(value, &mut |_| {})
}

/// As [`to_vec_exact`], calling `progress` with the bytes walked so far (the size pass's, then
/// the size plus the write's: twice the length in all) about every [`PROGRESS_STEP`] of them.
/// A driver that wants a large encoding to take its time, so that it does not take a core from
/// the work in front of it, sleeps there.
pub fn to_vec_exact_with<T: Serialize + ?Sized>(
    value: &T,
    progress: &mut dyn FnMut(usize),
) -> postcard::Result<Vec<u8>> {
    // The size pass is a walk over the whole value too, so it reports as well: progress counts
    // the bytes of both passes, twice the encoding's length in all.
    let size = postcard::serialize_with_flavor(
        value,
        Counted {
            len: 0,
            progress: Progress::new(&mut *progress),
        },
    )?;
    let mut before = |n: usize| progress(size + n);
    let out = postcard::serialize_with_flavor(
        value,
        Presized {
            out: Vec::with_capacity(size),
            progress: Progress::new(&mut before),
        },
    )?;
    debug_assert_eq!(out.len(), size, "the size pass and the write agree");
    Ok(out)
}

/// Encodes `value` with postcard in one pass into a vector with room for `capacity` bytes
/// reserved up front, calling `progress` with the bytes written so far about every
/// [`PROGRESS_STEP`]. If the encoding outgrows `capacity` the vector grows as any vector does.
///
/// For a value whose size is known roughly (a store's next snapshot against its last), this
/// saves [`to_vec_exact_with`]'s size pass, a whole walk over the value, about as costly as
/// the write itself. Reserving more than is written costs address space, not memory: the
/// pages never written are never touched. If the room cannot be had (a system that does not
/// overcommit), it falls back to [`to_vec_exact_with`] rather than fail.
pub fn to_vec_reserved_with<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
    progress: &mut dyn FnMut(usize),
) -> postcard::Result<Vec<u8>> {
    let mut out = Vec::new();
    if out.try_reserve_exact(capacity).is_err() {
        return to_vec_exact_with(value, progress);
    }
    postcard::serialize_with_flavor(
        value,
        Presized {
            out,
            progress: Progress::new(progress),
        },
    )
}

/// A writer that passes every byte on to another and calls `progress` with the bytes written
/// so far about every [`PROGRESS_STEP`]: the encodings above report the same way.
pub struct ProgressWrite<'a> {
    out: &'a mut dyn std::io::Write,
    written: u64,
    progress: Progress<'a>,
}

impl<'a> ProgressWrite<'a> {
    /// Writes to `out`, reporting to `progress`.
    pub fn new(out: &'a mut dyn std::io::Write, progress: &'a mut dyn FnMut(usize)) -> Self {
        ProgressWrite {
            out,
            written: 0,
            progress: Progress::new(progress),
        }
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl std::io::Write for ProgressWrite<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(bytes)?;
        self.written += n as u64;
        self.progress.at(self.written as usize);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Calls its callback each time the length it is shown passes the next [`PROGRESS_STEP`].
struct Progress<'a> {
    next: usize,
    report: &'a mut dyn FnMut(usize),
}

impl<'a> Progress<'a> {
    fn new(report: &'a mut dyn FnMut(usize)) -> Self {
        Progress {
            next: PROGRESS_STEP,
            report,
        }
    }

    fn at(&mut self, len: usize) {
        if len >= self.next {
            (self.report)(len);
            self.next = len + PROGRESS_STEP;
        }
    }
}

/// A postcard output that only counts.
struct Counted<'a> {
    len: usize,
    progress: Progress<'a>,
}

impl postcard::ser_flavors::Flavor for Counted<'_> {
    type Output = usize;

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.len += 1;
        self.progress.at(self.len);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.len += bytes.len();
        self.progress.at(self.len);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// A postcard output that appends to a vector allocated beforehand.
struct Presized<'a> {
    out: Vec<u8>,
    progress: Progress<'a>,
}

impl postcard::ser_flavors::Flavor for Presized<'_> {
    type Output = Vec<u8>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.out.push(byte);
        self.progress.at(self.out.len());
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.out.extend_from_slice(bytes);
        self.progress.at(self.out.len());
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_postcards_own_in_one_exact_allocation() {
        let value: Vec<(u32, String)> = (0..500).map(|i| (i, "x".repeat(i as usize))).collect();
        let out = to_vec_exact(&value).unwrap();
        assert_eq!(out, postcard::to_stdvec(&value).unwrap());
        assert_eq!(out.capacity(), out.len());
    }

    #[test]
    fn one_pass_into_reserved_room_gives_the_same_bytes_whatever_the_room() {
        let value: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 100_000]).collect();
        let expected = postcard::to_stdvec(&value).unwrap();
        for room in [
            0,
            10,
            expected.len() - 1,
            expected.len(),
            2 * expected.len(),
        ] {
            let mut seen = Vec::new();
            let out = to_vec_reserved_with(&value, room, &mut |n| seen.push(n)).unwrap();
            assert_eq!(out, expected, "room {room}");
            assert!(out.capacity() >= room, "room {room}");
            // One pass: progress never counts past the encoding's length.
            assert!(seen.len() >= 3, "room {room}: {seen:?}");
            assert!(
                seen.iter().all(|&n| n <= out.len()),
                "room {room}: {seen:?}"
            );
        }
        // Room no allocator can give: the exact encoding instead of a failure.
        let out = to_vec_reserved_with(&value, usize::MAX, &mut |_| {}).unwrap();
        assert_eq!(out, expected);
        assert_eq!(out.capacity(), out.len());
    }

    #[test]
    fn a_progress_writer_passes_everything_on_and_reports_every_step() {
        use std::io::Write;
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut report = |n| seen.push(n);
        {
            let mut w = ProgressWrite::new(&mut out, &mut report);
            for i in 0..5_000u32 {
                w.write_all(&[i as u8; 1_000]).unwrap();
            }
            assert_eq!(w.written(), 5_000_000);
        }
        assert_eq!(out.len(), 5_000_000);
        assert_eq!(out[4_999_999], (4_999u32 as u8));
        assert_eq!(seen.len(), 4, "{seen:?}");
        for w in seen.windows(2) {
            assert!(w[1] >= w[0] + PROGRESS_STEP, "{seen:?}");
        }
    }

    #[test]
    fn progress_is_reported_after_every_step_and_changes_nothing() {
        let value: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 100_000]).collect();
        let mut seen = Vec::new();
        let out = to_vec_exact_with(&value, &mut |n| seen.push(n)).unwrap();
        assert_eq!(out, postcard::to_stdvec(&value).unwrap());
        let walked = 2 * out.len();
        assert!(
            seen.len() >= 2 && seen.len() <= walked / PROGRESS_STEP,
            "{seen:?}"
        );
        for (i, w) in seen.windows(2).enumerate() {
            assert!(w[1] >= w[0] + PROGRESS_STEP, "step {i}: {seen:?}");
        }
        assert!(seen.iter().all(|&n| n <= walked));
        assert!(
            seen.iter().any(|&n| n > out.len()),
            "the write pass reports too: {seen:?}"
        );
    }
}
