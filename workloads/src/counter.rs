//! Jepsen's counter: add small deltas to one counter, read it now and then, and read it
//! once more on every node after the heal. Judged by the `counter` checker: every read
//! lies between what the acknowledged adds require and what the possible ones allow.
//!
//! Deltas are mostly positive with some negative ones (the checker takes both), so a read
//! that lost an add and one that saw an add twice are both outside the bounds.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

pub struct Counter;

impl Counter {
    pub fn new(_opts: &WorkloadOptions) -> Counter {
        Counter
    }
}

impl Workload for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn next_op(&mut self, _process: u64, rng: &mut StdRng) -> OpRequest {
        if rng.gen_bool(0.25) {
            return OpRequest::new("read", Value::Null);
        }
        let magnitude = rng.gen_range(1..=5i64);
        let delta = if rng.gen_bool(0.2) {
            -magnitude
        } else {
            magnitude
        };
        OpRequest::new("add", json!(delta))
    }

    fn final_ops(&self) -> Vec<OpRequest> {
        vec![OpRequest::new("read", json!({"final": true}))]
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named("counter")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn adds_carry_nonzero_deltas_of_both_signs_and_reads_carry_null() {
        let mut w = Counter::new(&WorkloadOptions::default());
        let mut rng = StdRng::seed_from_u64(5);
        let ops: Vec<OpRequest> = (0..400).map(|i| w.next_op(i, &mut rng)).collect();
        assert!(ops.iter().any(|o| o.f == "read" && o.value.is_null()));
        let deltas: Vec<i64> = ops
            .iter()
            .filter(|o| o.f == "add")
            .map(|o| o.value.as_i64().unwrap())
            .collect();
        assert!(deltas.iter().all(|d| *d != 0 && d.abs() <= 5));
        assert!(deltas.iter().any(|d| *d < 0) && deltas.iter().any(|d| *d > 0));
        assert!(ops.iter().all(|o| o.key.is_none()));
    }
}
