//! Elle's list-append workload: transactions of appends and reads over a rotating set of
//! keys. Appended values are unique per key, which is what lets the checker recover the
//! version order of every key from the reads alone.

use crate::{CheckerSpec, KeyRotation, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct ListAppend {
    keys: KeyRotation,
    next_value: HashMap<u64, u64>,
    max_txn_len: usize,
    consistency_model: Option<String>,
}

impl ListAppend {
    pub fn new(opts: &WorkloadOptions) -> ListAppend {
        ListAppend {
            keys: KeyRotation::new(opts.key_count, opts.ops_per_key),
            next_value: HashMap::new(),
            max_txn_len: opts.max_txn_len.max(1),
            consistency_model: opts.consistency_model.clone(),
        }
    }
}

impl Workload for ListAppend {
    fn name(&self) -> &'static str {
        "list-append"
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
                    json!(["append", key, *v])
                }
            })
            .collect();
        OpRequest::new("txn", Value::Array(mops))
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        let mut spec = CheckerSpec::named("list-append");
        spec.consistency_model = self.consistency_model.clone();
        vec![spec]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn appended_values_are_unique_per_key() {
        let mut w = ListAppend::new(&WorkloadOptions::default());
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let op = w.next_op(0, &mut rng);
            for mop in op.value.as_array().unwrap() {
                if mop[0] == "append" {
                    assert!(seen.insert((mop[1].clone(), mop[2].clone())), "{mop}");
                }
            }
        }
    }
}
