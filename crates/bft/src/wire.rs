//! What goes over a connection: length-prefixed frames, each one postcard-encoded [`Frame`].
//!
//! The first frame on a connection says who opened it. Nothing trusts that claim for what it
//! matters: every protocol message is signed by its author and checked by the core, and a
//! client's replies go to a connection only once it carried a request that client signed. The
//! claim only sets the frame limit: small for clients and strangers, large for replicas,
//! whose state transfers carry the whole store.

use crate::kv::{KvOp, KvResult};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use synod_core::pbft::Message;
use synod_core::NodeId;
use tokio_util::codec::LengthDelimitedCodec;

/// The PBFT messages of the key-value service.
pub type KvMessage = Message<KvOp, KvResult>;

/// Largest frame accepted, in bytes: a state transfer carries the whole store, so this bounds
/// the store a replica can hand to a peer that fell behind.
pub const MAX_FRAME: usize = 256 << 20;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The opener's id (a replica, or a client that wants its replies here).
    Hello {
        /// The id claimed.
        from: NodeId,
    },
    /// A protocol message.
    Message(KvMessage),
}

/// A frame that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("undecodable frame: {0}")]
pub struct BadFrame(#[from] postcard::Error);

impl Frame {
    /// The frame's bytes, without the length prefix.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("encoding into memory does not fail"))
    }

    /// A frame from a peer's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Frame, BadFrame> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// Largest frame from a connection that has not said who it is, or that is a client's: a
/// hello, or a request with its operation.
pub const MAX_CLIENT_FRAME: usize = 4 << 20;

/// The codec every connection uses: a 4-byte big-endian length, then the frame, up to `max`
/// bytes.
pub fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let f = Frame::Hello { from: 7 };
        assert_eq!(Frame::decode(&f.encode()).expect("decodes"), f);
        assert!(Frame::decode(&[9, 9, 9]).is_err());
        assert!(Frame::decode(&[]).is_err());
    }
}
