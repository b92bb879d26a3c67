//! Maelstrom's `echo`: each op sends a unique payload and expects it back unchanged.
//! Judged by the `echo` checker.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use serde_json::json;

pub struct Echo {
    next: u64,
}

impl Echo {
    pub fn new(_opts: &WorkloadOptions) -> Echo {
        Echo { next: 0 }
    }
}

impl Workload for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn next_op(&mut self, _process: u64, _rng: &mut StdRng) -> OpRequest {
        self.next += 1;
        OpRequest::new("echo", json!(format!("Please echo {}", self.next)))
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named("echo")]
    }
}
