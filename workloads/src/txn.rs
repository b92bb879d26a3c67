//! Elle's transactional workloads: transactions of 1..=N micro-ops over a rotating set of
//! keys, half reads (`["r", k, null]`) and half writes — appends (`["append", k, v]`) for
//! list-append, blind writes (`["w", k, v]`) for rw-register. Written values are unique
//! per key: that is what lets the checker recover each key's version order and name
//! exactly the write a read observed.

use crate::{CheckerSpec, KeyRotation, OpRequest, Workload, WorkloadOptions};
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
    keys: KeyRotation,
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
            keys: KeyRotation::new(opts.key_count, opts.ops_per_key),
            next_value: HashMap::new(),
            max_txn_len: opts.max_txn_len.max(1),
            consistency_model: opts.consistency_model.clone(),
        }
    }
}

impl Workload for Txn {
    fn name(&self) -> &'static str {
        self.name
    }

    fn next_op(&mut self, _process: u64, rng: &mut StdRng) -> OpRequest {
        let len = rng.gen_range(1..=self.max_txn_len);
        let mut retires = Vec::new();
        let mops: Vec<Value> = (0..len)
            .map(|_| {
                let (key, retired) = self.keys.pick(rng);
                if retired {
                    retires.push(json!(key));
                }
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
        op.retires = retires;
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
}
