//! Jepsen's set workload: add unique elements, read the whole set now and then, and read
//! it once more on every node after the heal. Judged by the `set` checker: nothing
//! acknowledged may be lost.
//!
//! Maelstrom's `broadcast` and `g-set` are this shape on replicas that only converge
//! eventually: every acknowledged element must reach every node. So besides `set`
//! (Jepsen's set-full, with its stable and lost latencies) they are judged by
//! `crdt-convergence` as an or-set without removes: each node's final read holds every
//! acknowledged element, all final reads agree, and no node's reads ever shrink.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

pub struct Set {
    name: &'static str,
    next_element: u64,
}

impl Set {
    /// `set`, `broadcast` or `g-set`.
    pub fn new(name: &'static str, _opts: &WorkloadOptions) -> Set {
        Set {
            name,
            next_element: 0,
        }
    }
}

impl Workload for Set {
    fn name(&self) -> &'static str {
        self.name
    }

    fn next_op(&mut self, _process: u64, rng: &mut StdRng) -> OpRequest {
        if rng.gen_bool(0.1) {
            OpRequest::new("read", Value::Null)
        } else {
            self.next_element += 1;
            OpRequest::new("add", json!(self.next_element))
        }
    }

    fn final_ops(&self) -> Vec<OpRequest> {
        vec![OpRequest::new("read", json!({"final": true}))]
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        match self.name {
            "set" => vec![CheckerSpec::named("set")],
            _ => vec![
                CheckerSpec::named("set"),
                CheckerSpec::named("crdt-convergence").with_model("or-set"),
            ],
        }
    }
}
