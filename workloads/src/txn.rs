//! Elle's transactional workloads: transactions of 1..=N micro-ops over a rotating set of
//! keys, half reads (`["r", k, null]`) and half writes — appends (`["append", k, v]`) for
//! list-append, blind writes (`["w", k, v]`) for rw-register. Written values are unique
//! per key: that is what lets the checker recover each key's version order and name
//! exactly the write a read observed.
//!
//! Keys live in generations ([`Generations`]): `key_count` keys at a time, all retired
//! together, so no transaction ever spans two generations. That is what lets the online
//! isolation checkers settle a retired generation's transactions and drop them: keys
//! retired one by one would tie each transaction to later ones through multi-key
//! transactions, and nothing would ever settle.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Which of Elle's two shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    ListAppend,
    RwRegister,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::ListAppend => "list-append",
            Shape::RwRegister => "rw-register",
        }
    }

    /// The micro-op that writes.
    fn write_f(self) -> &'static str {
        match self {
            Shape::ListAppend => "append",
            Shape::RwRegister => "w",
        }
    }
}

pub struct Txn {
    /// The workload's name: the shape's, or Maelstrom's `txn-list-append` /
    /// `txn-rw-register` for the same shape.
    name: &'static str,
    shape: Shape,
    keys: Generations,
    /// The last value written per key of the live generation.
    next_value: HashMap<u64, u64>,
    max_txn_len: usize,
    consistency_model: Option<String>,
}

impl Txn {
    pub fn new(shape: Shape, opts: &WorkloadOptions) -> Txn {
        Txn::named(shape.name(), shape, opts)
    }

    pub fn named(name: &'static str, shape: Shape, opts: &WorkloadOptions) -> Txn {
        Txn {
            name,
            shape,
            keys: Generations::new(opts.key_count, opts.ops_per_key),
            next_value: HashMap::new(),
            max_txn_len: opts.max_txn_len.max(1),
            consistency_model: opts.consistency_model.clone(),
        }
    }
}

/// Keys in generations: `count` keys live at once; after `count * ops_per_key`
/// micro-ops all of them retire together and `count` fresh ones (never used before)
/// take their place.
#[derive(Clone, Debug)]
struct Generations {
    first: u64,
    count: u64,
    per_generation: u64,
    used: u64,
}

impl Generations {
    fn new(key_count: u64, ops_per_key: u64) -> Generations {
        let count = key_count.max(1);
        Generations {
            first: 0,
            count,
            per_generation: count.saturating_mul(ops_per_key.max(1)),
            used: 0,
        }
    }

    /// A key of the live generation, counting one micro-op against it.
    fn pick(&mut self, rng: &mut StdRng) -> u64 {
        self.used += 1;
        self.first + rng.gen_range(0..self.count)
    }

    /// After a transaction's micro-ops were picked: the keys to retire (the whole
    /// generation, when it has had its micro-ops), the next generation then live.
    fn end_txn(&mut self) -> std::ops::Range<u64> {
        if self.used < self.per_generation {
            return 0..0;
        }
        let retired = self.first..self.first + self.count;
        self.first += self.count;
        self.used = 0;
        retired
    }
}

impl Workload for Txn {
    fn name(&self) -> &'static str {
        self.name
    }

    fn next_op(&mut self, _process: u64, rng: &mut StdRng) -> OpRequest {
        let len = rng.gen_range(1..=self.max_txn_len);
        let mops: Vec<Value> = (0..len)
            .map(|_| {
                let key = self.keys.pick(rng);
                if rng.gen_bool(0.5) {
                    json!(["r", key, null])
                } else {
                    let v = self.next_value.entry(key).or_insert(0);
                    *v += 1;
                    json!([self.shape.write_f(), key, *v])
                }
            })
            .collect();
        let mut op = OpRequest::new("txn", Value::Array(mops));
        let retired = self.keys.end_txn();
        for key in retired.clone() {
            self.next_value.remove(&key);
        }
        op.retires = retired.map(|k| json!(k)).collect();
        op
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named(self.shape.name())
            .with_consistency_model(self.consistency_model.as_deref())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn written_values_are_unique_per_key_in_both_shapes() {
        for shape in [Shape::ListAppend, Shape::RwRegister] {
            let mut w = Txn::new(shape, &WorkloadOptions::default());
            let mut rng = StdRng::seed_from_u64(3);
            let mut seen = std::collections::HashSet::new();
            for _ in 0..500 {
                let op = w.next_op(0, &mut rng);
                for mop in op.value.as_array().unwrap() {
                    if mop[0] == shape.write_f() {
                        assert!(seen.insert((mop[1].clone(), mop[2].clone())), "{mop}");
                    } else {
                        assert_eq!(mop[0], "r");
                        assert!(mop[2].is_null(), "invocations carry reads as null");
                    }
                }
            }
            assert!(!seen.is_empty());
        }
    }

    #[test]
    fn a_transaction_spans_one_generation_and_a_generation_retires_whole() {
        let opts = WorkloadOptions {
            key_count: 3,
            ops_per_key: 5,
            ..WorkloadOptions::default()
        };
        let mut w = Txn::new(Shape::ListAppend, &opts);
        let mut rng = StdRng::seed_from_u64(7);
        let mut retired = std::collections::HashSet::new();
        let mut generations = 0;
        for _ in 0..400 {
            let op = w.next_op(0, &mut rng);
            let keys: Vec<u64> = op
                .value
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m[1].as_u64().unwrap())
                .collect();
            let generation = keys[0] / 3;
            assert!(keys.iter().all(|k| k / 3 == generation), "{keys:?}");
            assert!(keys.iter().all(|k| !retired.contains(k)), "a key reused");
            if !op.retires.is_empty() {
                let mut r: Vec<u64> = op.retires.iter().map(|k| k.as_u64().unwrap()).collect();
                r.sort_unstable();
                assert_eq!(
                    r,
                    vec![generation * 3, generation * 3 + 1, generation * 3 + 2]
                );
                retired.extend(r);
                generations += 1;
            }
        }
        assert!(generations > 10, "{generations}");
    }
}
