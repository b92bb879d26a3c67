//! Elle's rw-register workload: transactions of writes and reads of single values. Each
//! written value is unique per key, so a read names exactly the write it observed.

use crate::{CheckerSpec, KeyRotation, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct RwRegister {
    keys: KeyRotation,
    next_value: HashMap<u64, u64>,
    max_txn_len: usize,
    consistency_model: Option<String>,
}

impl RwRegister {
    pub fn new(opts: &WorkloadOptions) -> RwRegister {
        RwRegister {
            keys: KeyRotation::new(opts.key_count, opts.ops_per_key),
            next_value: HashMap::new(),
            max_txn_len: opts.max_txn_len.max(1),
            consistency_model: opts.consistency_model.clone(),
        }
    }
}

impl Workload for RwRegister {
    fn name(&self) -> &'static str {
        "rw-register"
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
                    json!(["w", key, *v])
                }
            })
            .collect();
        OpRequest::new("txn", Value::Array(mops))
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        let mut spec = CheckerSpec::named("rw-register");
        spec.consistency_model = self.consistency_model.clone();
        vec![spec]
    }
}
