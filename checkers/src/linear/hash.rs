//! Fast hashing for the checker's own tables, and a map from JSON values to dense ids.
//!
//! The tables hash small integers and short strings millions of times and compare keys
//! fully, so they need speed, not resistance to crafted collisions: FxHash's
//! multiply-rotate instead of SipHash.

use serde_json::Value;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// FxHash (rustc's hasher): one rotate, xor and multiply per word.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.write_u64(u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// SplitMix64's finalizer: spreads a hash over all 64 bits (and makes Zobrist words).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of a model state, well spread.
pub(crate) fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = FxHasher::default();
    value.hash(&mut h);
    splitmix64(h.finish())
}

/// Dense ids for JSON values, identified by their JSON text (so `1` and `1.0` differ, as
/// in Jepsen). Integers and strings, the common cases, skip the text rendering.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueIds {
    ints: FxMap<i64, u32>,
    strings: FxMap<String, u32>,
    /// Everything else, by JSON text.
    others: FxMap<String, u32>,
    count: u32,
}

impl ValueIds {
    /// The id of `value`, and whether it is new.
    pub fn id(&mut self, value: &Value) -> (u32, bool) {
        let next = self.count;
        let (id, new) = match value {
            Value::Number(n) if n.is_i64() => {
                let id = *self
                    .ints
                    .entry(n.as_i64().expect("checked is_i64"))
                    .or_insert(next);
                (id, id == next)
            }
            Value::String(s) => match self.strings.get(s.as_str()) {
                Some(&id) => (id, false),
                None => {
                    self.strings.insert(s.clone(), next);
                    (next, true)
                }
            },
            other => {
                let id = *self.others.entry(other.to_string()).or_insert(next);
                (id, id == next)
            }
        };
        if new {
            self.count = self
                .count
                .checked_add(1)
                .expect("fewer than 4 billion distinct values");
        }
        (id, new)
    }
}
