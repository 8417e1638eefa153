//! Framing of one log record.
//!
//! ```text
//! offset 0   crc32c  u32 LE   checksum of bytes 4..end (length, index, payload, padding)
//! offset 4   len     u32 LE   payload length
//! offset 8   index   u64 LE   the record's log index
//! offset 16  payload len bytes
//!            padding zeros up to the next multiple of 8
//! ```
//!
//! Why this shape:
//! - The checksum covers every byte of the frame, padding included, so any bit flip inside a
//!   frame is detected, not just flips inside the payload.
//! - The index is stored and checked: a frame is only valid at the position its index belongs
//!   to, and recovery can recognise an intact frame anywhere after a damaged one, which is how
//!   it tells mid-log corruption from a torn tail.
//! - Frames are 8-byte aligned, so that search only has to try every eighth offset.
//! - An all-zero header is never a valid frame (the checksum of twelve zero bytes is not zero),
//!   so zeroed, preallocated space reads as "nothing written here".

/// Bytes before a frame's payload.
pub const FRAME_HEADER_LEN: usize = 16;

/// Frames start and end on multiples of this.
pub const FRAME_ALIGN: usize = 8;

/// Hard upper bound on a payload, whatever the options say: keeps `len` arithmetic far from
/// overflow on every platform.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// Largest record index the log uses. Indexes read from disk above it are treated as damage,
/// which keeps every `index + n` far from overflow whatever the bytes say.
pub const MAX_INDEX: u64 = u64::MAX / 2;

/// Bytes a frame for a payload of `payload_len` bytes takes on disk.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + align_up(payload_len)
}

fn align_up(n: usize) -> usize {
    (n + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// Appends the frame of record `index` to `out`.
///
/// The caller has checked `payload.len() <= MAX_PAYLOAD_LEN` (the WAL refuses larger records
/// before getting here).
pub fn encode_frame(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&frame_head(index, payload));
    out.extend_from_slice(payload);
    out.resize(start + frame_len(payload.len()), 0);
}

/// The header of record `index`'s frame, checksum included: what [`encode_frame`] writes
/// before the payload. The payload follows it, then [`frame_padding`] zeros. For a writer that
/// writes a large payload from where it lies rather than copying it behind the header.
///
/// The caller has checked `payload.len() <= MAX_PAYLOAD_LEN`.
pub fn frame_head(index: u64, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    debug_assert!(payload.len() <= MAX_PAYLOAD_LEN);
    let mut head = [0; FRAME_HEADER_LEN];
    head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[8..].copy_from_slice(&index.to_le_bytes());
    let crc = crc32c::crc32c(&head[4..]);
    let crc = crc32c::crc32c_append(crc, payload);
    let crc = crc32c::crc32c_append(crc, &[0; FRAME_ALIGN][..frame_padding(payload.len())]);
    head[..4].copy_from_slice(&crc.to_le_bytes());
    head
}

/// The zeros after a payload of `payload_len` bytes, up to the frame's end.
pub fn frame_padding(payload_len: usize) -> usize {
    align_up(payload_len) - payload_len
}

/// An intact frame found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The record's index.
    pub index: u64,
    /// The record's bytes.
    pub payload: &'a [u8],
    /// Bytes the whole frame takes (header, payload, padding).
    pub len: usize,
}

/// Why the bytes at some offset are not an intact frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The header is all zeros: space that was never written.
    Unwritten,
    /// The buffer ends before the frame does.
    Truncated {
        /// Bytes the frame needs (at least the header).
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// The length field is beyond any record this log can hold.
    TooLong {
        /// The length field.
        len: u32,
    },
    /// The checksum does not match.
    Checksum {
        /// The checksum stored in the frame.
        stored: u32,
        /// The checksum of the bytes as found.
        computed: u32,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Unwritten => write!(f, "zeroed (unwritten) space"),
            FrameError::Truncated { needed, available } => write!(
                f,
                "partial record: needs {needed} bytes, only {available} remain"
            ),
            FrameError::TooLong { len } => write!(f, "impossible record length {len}"),
            FrameError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// The header fields of the frame at the start of `buf`, if the header is there.
fn header(buf: &[u8]) -> Option<(u32, u32, u64)> {
    let h: &[u8; FRAME_HEADER_LEN] = buf.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
    let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let index = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    Some((crc, len, index))
}

/// Decodes the frame at the start of `buf`. Never panics, whatever the bytes.
pub fn decode_frame(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    decode_frame_if(buf, |_| true).map(|f| f.expect("predicate accepts every index"))
}

/// Like [`decode_frame`], but gives up with `Ok(None)` before computing the checksum when the
/// stored index fails `want`: searching a damaged region for intact frames stays cheap.
pub(crate) fn decode_frame_if(
    buf: &[u8],
    want: impl Fn(u64) -> bool,
) -> Result<Option<Frame<'_>>, FrameError> {
    let Some((crc, len, index)) = header(buf) else {
        return Err(if buf.iter().all(|&b| b == 0) {
            FrameError::Unwritten
        } else {
            FrameError::Truncated {
                needed: FRAME_HEADER_LEN,
                available: buf.len(),
            }
        });
    };
    if crc == 0 && len == 0 && index == 0 {
        return Err(FrameError::Unwritten);
    }
    if len as usize > MAX_PAYLOAD_LEN {
        return Err(FrameError::TooLong { len });
    }
    let total = frame_len(len as usize);
    let Some(frame) = buf.get(..total) else {
        return Err(FrameError::Truncated {
            needed: total,
            available: buf.len(),
        });
    };
    if !want(index) {
        return Ok(None);
    }
    let computed = crc32c::crc32c(&frame[4..]);
    if computed != crc {
        return Err(FrameError::Checksum {
            stored: crc,
            computed,
        });
    }
    Ok(Some(Frame {
        index,
        payload: &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len as usize],
        len: total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_zero_header_is_never_a_valid_frame() {
        assert_ne!(crc32c::crc32c(&[0u8; 12]), 0);
        assert_eq!(decode_frame(&[0u8; 64]), Err(FrameError::Unwritten));
        assert_eq!(decode_frame(&[0u8; 5]), Err(FrameError::Unwritten));
        assert_eq!(decode_frame(&[]), Err(FrameError::Unwritten));
    }

    #[test]
    fn a_length_is_refused_above_the_limit_and_read_at_it() {
        let header = |len: u32| {
            let mut h = vec![0xab; 4];
            h.extend_from_slice(&len.to_le_bytes());
            h.extend_from_slice(&9u64.to_le_bytes());
            h
        };
        let over = MAX_PAYLOAD_LEN as u32 + 1;
        assert_eq!(
            decode_frame(&header(over)),
            Err(FrameError::TooLong { len: over })
        );
        // At the limit the frame is possible, only not all here.
        assert_eq!(
            decode_frame(&header(MAX_PAYLOAD_LEN as u32)),
            Err(FrameError::Truncated {
                needed: frame_len(MAX_PAYLOAD_LEN),
                available: FRAME_HEADER_LEN
            })
        );
    }

    #[test]
    fn only_an_all_zero_header_is_unwritten() {
        // Index 0 is never written by the log, but a frame that says it is still a frame: the
        // caller, not the decoder, decides it does not belong.
        let mut buf = Vec::new();
        encode_frame(0, b"x", &mut buf);
        assert_eq!(decode_frame(&buf).unwrap().index, 0);
    }

    #[test]
    fn a_frame_whose_checksum_is_zero_is_still_a_frame() {
        // The last four bytes solve crc32c(length, index, payload) = 0 (CRC-32C is affine over
        // GF(2), so flipping chosen bits of them reaches any checksum): one record in 2^32 has
        // this checksum, and reading its zero as unwritten space would lose it and all after.
        let payload = [b's', b'y', b'n', b'd', 0x33, 0x90, 0x49, 0x8f];
        let mut buf = Vec::new();
        encode_frame(1, &payload, &mut buf);
        assert_eq!(buf[..4], [0, 0, 0, 0], "the checksum field is zero");
        let f = decode_frame(&buf).unwrap();
        assert_eq!((f.index, f.payload), (1, &payload[..]));
    }

    #[test]
    fn errors_say_what_was_found() {
        let shown = [
            FrameError::Unwritten.to_string(),
            FrameError::Truncated {
                needed: 24,
                available: 5,
            }
            .to_string(),
            FrameError::TooLong { len: 77 }.to_string(),
            FrameError::Checksum {
                stored: 1,
                computed: 2,
            }
            .to_string(),
        ];
        assert!(shown[0].contains("unwritten"), "{}", shown[0]);
        assert!(
            shown[1].contains("24") && shown[1].contains('5'),
            "{}",
            shown[1]
        );
        assert!(shown[2].contains("77"), "{}", shown[2]);
        assert!(shown[3].contains("0x00000001"), "{}", shown[3]);
    }

    #[test]
    fn an_empty_record_round_trips() {
        let mut buf = Vec::new();
        encode_frame(7, b"", &mut buf);
        assert_eq!(buf.len(), FRAME_HEADER_LEN);
        let f = decode_frame(&buf).unwrap();
        assert_eq!((f.index, f.payload, f.len), (7, &b""[..], 16));
    }

    #[test]
    fn every_bit_of_a_frame_is_covered() {
        let mut buf = Vec::new();
        encode_frame(42, b"hello, paxos", &mut buf);
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_frame(&bad).is_err(), "bit {bit} undetected");
        }
    }

    proptest! {
        #[test]
        fn frames_round_trip(
            recs in prop::collection::vec((any::<u64>(), prop::collection::vec(any::<u8>(), 0..300)), 0..20)
        ) {
            let mut buf = Vec::new();
            for (index, payload) in &recs {
                encode_frame(*index, payload, &mut buf);
            }
            let mut at = 0;
            for (index, payload) in &recs {
                let f = decode_frame(&buf[at..]).unwrap();
                prop_assert_eq!(f.index, *index);
                prop_assert_eq!(f.payload, &payload[..]);
                prop_assert_eq!(f.len, frame_len(payload.len()));
                prop_assert_eq!(f.len % FRAME_ALIGN, 0);
                at += f.len;
            }
            prop_assert_eq!(at, buf.len());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(buf in prop::collection::vec(any::<u8>(), 0..400)) {
            for at in 0..buf.len() {
                if let Ok(f) = decode_frame(&buf[at..]) {
                    prop_assert!(f.len <= buf.len() - at);
                }
            }
        }

        #[test]
        fn any_prefix_of_a_frame_is_rejected(payload in prop::collection::vec(any::<u8>(), 0..100), cut in 0usize..116) {
            let mut buf = Vec::new();
            encode_frame(3, &payload, &mut buf);
            let cut = cut.min(buf.len() - 1);
            prop_assert!(decode_frame(&buf[..cut]).is_err());
        }
    }
}
