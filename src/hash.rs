//! A fast, randomly seeded hash for the crate's own tables.
//!
//! The route table is probed on every request and the multi-process aggregator looks
//! up every key of every file on its first scrape; SipHash would be a large share of
//! both. This hash mixes eight bytes a step. Its seed is random per table, and the
//! tables it serves are capped (series) or filled from local files (keys), so a
//! client cannot grow a probe sequence without bound.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

/// Builds [`FastHasher`]s from one random seed.
#[derive(Clone, Debug)]
pub(crate) struct FastHashBuilder {
    seed: u64,
}

impl Default for FastHashBuilder {
    fn default() -> Self {
        Self {
            seed: RandomState::new().hash_one(0x7072_6f6d_6574_6865u64),
        }
    }
}

impl BuildHasher for FastHashBuilder {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.seed)
    }
}

/// The hasher of [`FastHashBuilder`].
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.mix(u64::from(value));
    }

    fn write_u16(&mut self, value: u16) {
        self.mix(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.mix(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    fn finish(&self) -> u64 {
        // A final avalanche, so the low bits a table masks depend on every input bit.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_inputs_hash_equal_and_seeds_differ() {
        let builder = FastHashBuilder::default();
        assert_eq!(
            builder.hash_one("/users/{id}"),
            builder.hash_one("/users/{id}")
        );
        assert_ne!(
            builder.hash_one("/users/{id}"),
            builder.hash_one("/users/{ie}")
        );
        assert_ne!(builder.hash_one("ab"), builder.hash_one("ab\0"));
        assert_ne!(
            FastHashBuilder::default().hash_one(1u64),
            FastHashBuilder::default().hash_one(1u64)
        );
    }
}
