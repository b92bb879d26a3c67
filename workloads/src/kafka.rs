//! Maelstrom's `kafka`: append-only logs, one per key. Clients `send` unique messages to
//! a key, `poll` from their own position in every key they are assigned, commit the
//! offsets they have processed (`commit_offsets`), read committed offsets back
//! (`list_committed_offsets`) and now and then `assign` themselves a new set of keys
//! (which starts new keys at their committed offset). After the heal every node is
//! polled once from offset 0 over all keys (the final poll). Judged by the `kafka`
//! checker; the op shapes are its (Jepsen's).
//!
//! A process's first op is an `assign` of every key, so each client starts consuming at
//! once (from the committed offsets).
//!
//! Keys are the strings `"0"` … `"key_count - 1"`, fixed for the run, so the final poll
//! knows them all and every key collects enough messages to show skips and losses.

use crate::{CheckerSpec, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashSet;

pub struct Kafka {
    keys: Vec<String>,
    next_msg: u64,
    /// Processes that have had their first op (the assign of every key).
    started: HashSet<u64>,
}

impl Kafka {
    pub fn new(opts: &WorkloadOptions) -> Kafka {
        Kafka {
            keys: (0..opts.key_count.max(1)).map(|k| k.to_string()).collect(),
            next_msg: 0,
            started: HashSet::new(),
        }
    }
}

impl Workload for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn next_op(&mut self, process: u64, rng: &mut StdRng) -> OpRequest {
        if self.started.insert(process) {
            return OpRequest::new("assign", json!(self.keys));
        }
        match rng.gen_range(0..100) {
            0..=49 => {
                self.next_msg += 1;
                let key = &self.keys[rng.gen_range(0..self.keys.len())];
                OpRequest::new("send", json!([["send", key, self.next_msg]]))
            }
            50..=79 => OpRequest::new("poll", json!([["poll"]])),
            80..=87 => OpRequest::new("commit_offsets", Value::Null),
            88..=94 => OpRequest::new("list_committed_offsets", json!(self.keys)),
            _ => {
                let chosen: Vec<&String> = self.keys.iter().filter(|_| rng.gen_bool(0.6)).collect();
                OpRequest::new("assign", json!(chosen))
            }
        }
    }

    fn final_ops(&self) -> Vec<OpRequest> {
        vec![OpRequest::new(
            "poll",
            json!({"final": true, "keys": self.keys}),
        )]
    }

    fn checkers(&self) -> Vec<CheckerSpec> {
        vec![CheckerSpec::named("kafka")]
    }
}
