//! Maelstrom's `unique-ids`: every op asks a node for a fresh id; no id may be handed out
//! twice, across all nodes. Judged by the `unique-ids` checker.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use serde_json::Value;

pub struct UniqueIds;

impl UniqueIds {
    pub fn new(_opts: &WorkloadOptions) -> UniqueIds {
        UniqueIds
    }
}

impl Workload for UniqueIds {
    fn name(&self) -> &'static str {
        "unique-ids"
    }

    fn next_op(&mut self, _process: u64, _rng: &mut StdRng) -> OpRequest {
        OpRequest::new("generate", Value::Null)
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named("unique-ids")]
    }
}
