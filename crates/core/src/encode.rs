//! Postcard encoding into a buffer allocated once, at exactly the encoding's size.
//!
//! `postcard::to_stdvec` grows its buffer by doubling. For a snapshot of a large store that
//! copies the bytes several times over and touches about twice their size in fresh pages,
//! which profiles of a busy leader showed as most of a snapshot's cost. Counting the size
//! first is a read-only walk over the value, far cheaper than the copies it saves.

use serde::Serialize;

/// Encodes `value` with postcard into a vector whose capacity is exactly its length.
pub fn to_vec_exact<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Vec<u8>> {
    let size = postcard::experimental::serialized_size(value)?;
    let out = postcard::serialize_with_flavor(value, Presized(Vec::with_capacity(size)))?;
    debug_assert_eq!(out.len(), size, "the size pass and the write agree");
    Ok(out)
}

/// A postcard output that appends to a vector allocated beforehand.
struct Presized(Vec<u8>);

impl postcard::ser_flavors::Flavor for Presized {
    type Output = Vec<u8>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
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
}
