//! Jepsen's linearizable register: read, write and compare-and-set on a few independent
//! keys, judged by the linearizability checker with the `cas-register` model.
//!
//! Values come from a small range on purpose: collisions make cas succeed sometimes and
//! make stale reads visible. Maelstrom's `lin-kv` is this workload under its name.

use crate::{CheckerSpec, KeyRotation, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

pub struct Register {
    name: &'static str,
    keys: KeyRotation,
}

impl Register {
    /// `register` or `lin-kv`.
    pub fn new(name: &'static str, opts: &WorkloadOptions) -> Register {
        Register {
            name,
            keys: KeyRotation::new(opts.key_count, opts.ops_per_key),
        }
    }
}

impl Workload for Register {
    fn name(&self) -> &'static str {
        self.name
    }

    fn next_op(&mut self, _process: u64, rng: &mut StdRng) -> OpRequest {
        let (key, retired) = self.keys.pick(rng);
        let key = json!(key);
        let mut op = match rng.gen_range(0..4) {
            0 | 1 => OpRequest::keyed("read", key.clone(), Value::Null),
            2 => OpRequest::keyed("write", key.clone(), json!(rng.gen_range(0..5))),
            _ => OpRequest::keyed(
                "cas",
                key.clone(),
                json!([rng.gen_range(0..5), rng.gen_range(0..5)]),
            ),
        };
        if retired {
            op.retires.push(key);
        }
        op
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named("linearizable").with_model("cas-register")]
    }
}
