//! distest-workloads: workload shapes (register, list-append, rw-register, set, ...).
//!
//! A workload is three things: a generator of client ops (drawn from the run's seeded
//! RNG so a seed replays the same op mix), the final ops run once per node after the
//! heal (final reads), and the checkers that judge its history. The [`Client`] trait is
//! what a target adapter implements to execute those ops; it maps every outcome to
//! `ok`, `fail` (definitely did not happen) or `info` (unknown).

pub mod counter;
pub mod crdt;
pub mod echo;
pub mod kafka;
pub mod register;
pub mod set;
pub mod txn;
pub mod unique_ids;

use async_trait::async_trait;
pub use distest_checkers::CheckerSpec;
use distest_checkers::OpType;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// One op a workload asks a client to perform.
#[derive(Clone, Debug, PartialEq)]
pub struct OpRequest {
    pub f: String,
    pub value: Value,
    /// For keyed workloads (independent keys), recorded in the op's `key` field.
    pub key: Option<Value>,
    /// Keys this op is the last op on (the workload retires them): once its invocation
    /// is recorded, online checking can judge each such key when its ops are done.
    pub retires: Vec<Value>,
}

impl OpRequest {
    pub fn new(f: impl Into<String>, value: Value) -> OpRequest {
        OpRequest {
            f: f.into(),
            value,
            key: None,
            retires: Vec::new(),
        }
    }

    pub fn keyed(f: impl Into<String>, key: Value, value: Value) -> OpRequest {
        OpRequest {
            f: f.into(),
            value,
            key: Some(key),
            retires: Vec::new(),
        }
    }
}

/// How an op ended, as the client saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` or `Info`; never `Invoke`.
    pub kind: OpType,
    pub value: Value,
    pub error: Option<Value>,
}

impl Completion {
    pub fn ok(value: Value) -> Completion {
        Completion {
            kind: OpType::Ok,
            value,
            error: None,
        }
    }

    /// The op certainly did not take effect (the server said so before doing anything).
    pub fn fail(value: Value, error: impl Into<Value>) -> Completion {
        Completion {
            kind: OpType::Fail,
            value,
            error: Some(error.into()),
        }
    }

    /// The op may or may not have taken effect (timeout, connection lost after sending).
    pub fn info(value: Value, error: impl Into<Value>) -> Completion {
        Completion {
            kind: OpType::Info,
            value,
            error: Some(error.into()),
        }
    }
}

/// Executes ops against one node of a target. One client per process; after an `info`
/// the process retires and the orchestrator opens a fresh client for its successor.
#[async_trait]
pub trait Client: Send {
    async fn invoke(&mut self, op: &OpRequest) -> Completion;
}

/// Generates a workload's ops and names its checkers.
pub trait Workload: Send {
    fn name(&self) -> &'static str;
    /// The next op for `process`, drawn from the run's RNG.
    fn next_op(&mut self, process: u64, rng: &mut StdRng) -> OpRequest;
    /// Ops run once on every node after the heal and recovery wait (final reads).
    fn final_ops(&self) -> Vec<OpRequest> {
        Vec::new()
    }
    /// The checkers that judge this workload's history (`stats` is added by the caller).
    fn checkers(&self) -> Vec<CheckerSpec>;
}

/// Knobs shared by the workloads; each uses the ones that make sense for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadOptions {
    /// How many keys are active at once.
    pub key_count: u64,
    /// Writes (or ops) per key before a key is retired for a fresh one; keeps each key's
    /// history small enough for exact checking.
    pub ops_per_key: u64,
    /// Longest transaction, in micro-ops.
    pub max_txn_len: usize,
    /// Consistency model the isolation checkers hold the history to.
    pub consistency_model: Option<String>,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            key_count: 5,
            ops_per_key: 200,
            max_txn_len: 4,
            consistency_model: None,
        }
    }
}

#[derive(Debug, Error)]
#[error("unknown workload {name:?}; valid workloads are: {valid}")]
pub struct UnknownWorkload {
    pub name: String,
    pub valid: String,
}

/// Every workload distest knows. Adding one is one line here plus its file.
pub const WORKLOADS: &[&str] = &[
    "register",
    "list-append",
    "rw-register",
    "set",
    "counter",
    "or-set",
    "pn-counter",
    "g-counter",
    "lww-register",
    // Maelstrom's workloads (its `g-counter` and `pn-counter` are the CRDT ones above).
    "echo",
    "unique-ids",
    "broadcast",
    "g-set",
    "lin-kv",
    "txn-list-append",
    "txn-rw-register",
    "kafka",
];

/// Builds the workload called `name`.
pub fn build(name: &str, opts: &WorkloadOptions) -> Result<Box<dyn Workload>, UnknownWorkload> {
    Ok(match name {
        "register" => Box::new(register::Register::new("register", opts)),
        "list-append" => Box::new(txn::Txn::new(txn::Shape::ListAppend, opts)),
        "rw-register" => Box::new(txn::Txn::new(txn::Shape::RwRegister, opts)),
        "set" => Box::new(set::Set::new("set", opts)),
        "counter" => Box::new(counter::Counter::new(opts)),
        "or-set" => Box::new(crdt::Crdt::new(crdt::Kind::OrSet, opts)),
        "pn-counter" => Box::new(crdt::Crdt::new(crdt::Kind::PnCounter, opts)),
        "g-counter" => Box::new(crdt::Crdt::new(crdt::Kind::GCounter, opts)),
        "lww-register" => Box::new(crdt::Crdt::new(crdt::Kind::LwwRegister, opts)),
        "echo" => Box::new(echo::Echo::new(opts)),
        "unique-ids" => Box::new(unique_ids::UniqueIds::new(opts)),
        "broadcast" => Box::new(set::Set::new("broadcast", opts)),
        "g-set" => Box::new(set::Set::new("g-set", opts)),
        "lin-kv" => Box::new(register::Register::new("lin-kv", opts)),
        "txn-list-append" => Box::new(txn::Txn::named(
            "txn-list-append",
            txn::Shape::ListAppend,
            opts,
        )),
        "txn-rw-register" => Box::new(txn::Txn::named(
            "txn-rw-register",
            txn::Shape::RwRegister,
            opts,
        )),
        "kafka" => Box::new(kafka::Kafka::new(opts)),
        other => {
            return Err(UnknownWorkload {
                name: other.to_string(),
                valid: WORKLOADS.join(", "),
            })
        }
    })
}

/// Rotating keys: `key_count` keys are active; each gets `ops_per_key` ops, then is
/// replaced by a fresh one. Shared by the keyed workloads.
#[derive(Clone, Debug)]
pub(crate) struct KeyRotation {
    active: Vec<(u64, u64)>, // (key, ops so far)
    next_key: u64,
    ops_per_key: u64,
}

impl KeyRotation {
    pub(crate) fn new(key_count: u64, ops_per_key: u64) -> KeyRotation {
        let key_count = key_count.max(1);
        KeyRotation {
            active: (0..key_count).map(|k| (k, 0)).collect(),
            next_key: key_count,
            ops_per_key: ops_per_key.max(1),
        }
    }

    /// Picks an active key and counts one op against it; `true` when that was the key's
    /// last op (it is retired for a fresh one).
    pub(crate) fn pick(&mut self, rng: &mut StdRng) -> (u64, bool) {
        use rand::Rng;
        let slot = rng.gen_range(0..self.active.len());
        let (key, used) = &mut self.active[slot];
        let chosen = *key;
        *used += 1;
        let retired = *used >= self.ops_per_key;
        if retired {
            *key = self.next_key;
            *used = 0;
            self.next_key += 1;
        }
        (chosen, retired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn unknown_workload_lists_valid_names() {
        let err = build("bank", &WorkloadOptions::default()).err().unwrap();
        assert!(err.to_string().contains("list-append"), "{err}");
    }

    #[test]
    fn same_seed_gives_same_ops() {
        for name in WORKLOADS {
            let gen = |seed| {
                let mut w = build(name, &WorkloadOptions::default()).unwrap();
                let mut rng = StdRng::seed_from_u64(seed);
                (0..50)
                    .map(|i| w.next_op(i % 5, &mut rng))
                    .collect::<Vec<_>>()
            };
            assert_eq!(gen(7), gen(7), "{name}");
            // Echo payloads and id requests are the same whatever the seed.
            if !["echo", "unique-ids"].contains(name) {
                assert_ne!(gen(7), gen(8), "{name}");
            }
        }
    }

    #[test]
    fn every_workload_answers_to_its_name_and_its_checkers_build() {
        for name in WORKLOADS {
            let w = build(name, &WorkloadOptions::default()).unwrap();
            assert_eq!(w.name(), *name);
            for spec in w.checkers() {
                spec.build().unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    #[test]
    fn kafka_sends_unique_messages_and_polls_every_key_at_the_end() {
        let mut w = build("kafka", &WorkloadOptions::default()).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut msgs = std::collections::HashSet::new();
        let mut fs = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let op = w.next_op(0, &mut rng);
            if op.f == "send" {
                assert!(msgs.insert(op.value[0][2].clone()), "{:?}", op.value);
            }
            fs.insert(op.f);
        }
        assert_eq!(
            fs.into_iter().collect::<Vec<_>>(),
            [
                "assign",
                "commit_offsets",
                "list_committed_offsets",
                "poll",
                "send"
            ]
        );
        let finals = w.final_ops();
        assert_eq!(finals[0].value["final"], true);
        assert_eq!(finals[0].value["keys"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn key_rotation_retires_keys_after_their_budget() {
        let mut keys = KeyRotation::new(2, 3);
        let mut rng = StdRng::seed_from_u64(1);
        let picked: Vec<(u64, bool)> = (0..30).map(|_| keys.pick(&mut rng)).collect();
        for k in 0..8 {
            let uses: Vec<bool> = picked.iter().filter(|p| p.0 == k).map(|p| p.1).collect();
            assert!(uses.len() <= 3);
            // Retired on its third use, and only then.
            assert_eq!(
                uses.iter().filter(|&&r| r).count(),
                usize::from(uses.len() == 3)
            );
            assert_eq!(uses.last() == Some(&true), uses.len() == 3);
        }
        assert!(picked.iter().any(|&(k, _)| k >= 4), "fresh keys appear");
    }
}
