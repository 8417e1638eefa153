//! How deep a command may nest when it is decoded. Commands arrive from peers inside their
//! messages, and two of them contain commands: `KvCommand::As` and a transaction's nested
//! transactions. Decoding follows the nesting on the stack, so a frame of a few megabytes
//! nesting a million deep overflowed the stack and aborted the server. Each nested level now
//! passes through a counter, and past [`MAX_NESTING`] the decode fails instead.

use serde::de::{Deserialize, Deserializer, Error};
use std::cell::Cell;

/// Levels of `As` and nested transactions one command may hold. etcd's own gRPC decoding
/// stops at a message depth of 100, two per nested transaction, so no client sends deeper
/// than about 50; a node's own commands hold at most one `As`.
pub(crate) const MAX_NESTING: u32 = 64;

thread_local! {
    /// Nested levels entered by the decode under way on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// One level entered; left when dropped, whichever way the decode ends.
struct Level;

impl Level {
    fn enter<E: Error>() -> Result<Level, E> {
        DEPTH.with(|d| {
            let n = d.get();
            if n >= MAX_NESTING {
                return Err(E::custom(format!(
                    "a command nested more than {MAX_NESTING} deep"
                )));
            }
            d.set(n + 1);
            Ok(Level)
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// A nested value, counted as one level.
pub(crate) fn nested<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<T, D::Error> {
    let _level = Level::enter::<D::Error>()?;
    T::deserialize(de)
}

/// A boxed nested value, counted as one level.
pub(crate) fn boxed<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    de: D,
) -> Result<Box<T>, D::Error> {
    nested(de).map(Box::new)
}

#[cfg(test)]
mod tests {
    use super::MAX_NESTING;
    use crate::{KvCommand, RequestOp, TxnRequest};

    /// `As` wrapped `depth` times around a lease listing.
    fn as_nested(depth: u32) -> KvCommand {
        (0..depth).fold(KvCommand::LeaseList, |cmd, _| KvCommand::As {
            user: String::new(),
            cmd: Box::new(cmd),
        })
    }

    /// A transaction whose success branch nests `depth` more.
    fn txn_nested(depth: u32) -> KvCommand {
        let inner = (0..depth).fold(TxnRequest::default(), |t, _| TxnRequest {
            success: vec![RequestOp::Txn(t)],
            ..Default::default()
        });
        KvCommand::Txn(inner)
    }

    fn decodes(cmd: &KvCommand) -> bool {
        let bytes = postcard::to_stdvec(cmd).unwrap();
        postcard::from_bytes::<KvCommand>(&bytes).is_ok_and(|back| back == *cmd)
    }

    #[test]
    fn nesting_up_to_the_limit_decodes_and_past_it_is_refused() {
        assert!(decodes(&as_nested(MAX_NESTING)));
        assert!(!decodes(&as_nested(MAX_NESTING + 1)));
        assert!(decodes(&txn_nested(MAX_NESTING)));
        assert!(!decodes(&txn_nested(MAX_NESTING + 1)));
        // The count is back at zero after a refusal.
        assert!(decodes(&as_nested(MAX_NESTING)));
    }

    /// Made by hand: building the command itself would take as deep a stack as decoding it.
    #[test]
    fn a_million_levels_are_refused_not_a_stack_overflow() {
        // `As` is variant 12 of `KvCommand`, an empty user name is one byte, `LeaseList` is 9.
        let mut bytes: Vec<u8> = std::iter::repeat_n([12u8, 0], 1_000_000)
            .flatten()
            .collect();
        bytes.push(9);
        assert!(postcard::from_bytes::<KvCommand>(&bytes).is_err());
        // `Txn` is variant 3 of `KvCommand` and of `RequestOp`; a transaction's three lists
        // each start with their length: no compares, one success, (the nested one), no failures.
        let mut bytes = vec![3u8];
        for _ in 0..1_000_000 {
            bytes.extend_from_slice(&[0, 1, 3]);
        }
        bytes.extend_from_slice(&[0, 0, 0]);
        bytes.extend(std::iter::repeat_n(0u8, 1_000_000));
        assert!(postcard::from_bytes::<KvCommand>(&bytes).is_err());
    }
}
