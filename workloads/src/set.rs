//! Jepsen's set workload: add unique elements, read the whole set now and then, and read
//! it once more on every node after the heal. Judged by the `set` checker: nothing
//! acknowledged may be lost.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

pub struct Set {
    next_element: u64,
}

impl Set {
    pub fn new(_opts: &WorkloadOptions) -> Set {
        Set { next_element: 0 }
    }
}

impl Workload for Set {
    fn name(&self) -> &'static str {
        "set"
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
        vec![CheckerSpec::named("set")]
    }
}
