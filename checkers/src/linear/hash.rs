//! Fast hashing for the checker's own tables, and a map from JSON values to dense ids.
//!
//! The tables hash small integers and short strings millions of times and compare keys
//! fully, so they need speed, not resistance to crafted collisions: FxHash's
//! multiply-rotate instead of SipHash.

use serde_json::Value;
use std::hash::{Hash, Hasher};

pub(crate) use crate::fxhash::{FxHasher, FxMap};

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

/// Integers in `0..SMALL_INTS` get their ids from a table, without hashing (keys and
/// values of generated workloads are small integers).
const SMALL_INTS: usize = 1 << 12;
/// Marks "no id yet" in the small-integer table.
const NO_ID: u32 = u32::MAX;

/// Dense ids for JSON values, identified by their JSON text (so `1` and `1.0` differ, as
/// in Jepsen). Integers and strings, the common cases, skip the text rendering.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueIds {
    /// Ids of the integers `0..SMALL_INTS`, grown on demand.
    small: Vec<u32>,
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
            Value::Number(n) if n.as_u64().is_some_and(|k| k < SMALL_INTS as u64) => {
                let k = n.as_u64().expect("checked as_u64") as usize;
                if k >= self.small.len() {
                    self.small.resize(k + 1, NO_ID);
                }
                match self.small[k] {
                    NO_ID => {
                        self.small[k] = next;
                        (next, true)
                    }
                    id => (id, false),
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_ids_tell_apart_what_jepsen_tells_apart_across_the_small_int_table() {
        let mut ids = ValueIds::default();
        let values = [
            json!(0),
            json!(1),
            json!(SMALL_INTS as u64 - 1),
            json!(SMALL_INTS as u64),
            json!(-1),
            json!(1.0),
            json!("1"),
            json!(u64::MAX),
            json!([1, 2]),
            json!(null),
        ];
        let first: Vec<(u32, bool)> = values.iter().map(|v| ids.id(v)).collect();
        assert!(first.iter().all(|&(_, new)| new), "{first:?}");
        let distinct: std::collections::BTreeSet<u32> = first.iter().map(|&(id, _)| id).collect();
        assert_eq!(distinct.len(), values.len());
        assert_eq!(
            distinct,
            (0..values.len() as u32).collect(),
            "ids are dense"
        );
        for (v, &(id, _)) in values.iter().zip(&first) {
            assert_eq!(ids.id(v), (id, false), "{v}");
        }
    }
}
