//! A generator of strictly serializable transactional histories, for property tests and
//! the benchmark: a discrete-event simulation of client processes against one in-memory
//! store, where each transaction executes atomically at an instant between its
//! invocation and its completion. Fail outcomes never execute; info outcomes may or may
//! not have executed, and retire their process as Jepsen does.

#![allow(dead_code)]

use distest_checkers::{Op, OpType, Process};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    ListAppend,
    RwRegister,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub workload: Workload,
    pub seed: u64,
    /// Concurrent client workers.
    pub workers: usize,
    pub txns: usize,
    /// Keys in use at any moment.
    pub active_keys: u64,
    /// After this many writes a key is retired and a fresh one takes its place (Jepsen's
    /// max-writes-per-key), which keeps reads short.
    pub max_writes_per_key: u32,
    pub max_mops: usize,
    /// Probabilities (percent) of fail and info outcomes.
    pub fail_pct: u32,
    pub info_pct: u32,
    /// Percent of list reads that come back stale (missing their last 1-3 elements):
    /// a way to make buggy histories for the benchmark. 0 for correct histories.
    pub stale_pct: u32,
}

impl Params {
    /// The benchmarks' histories: 10 workers, 1,000 keys in use, 16 writes per key (so
    /// reads stay short), 1-4 micro-ops, 2 % fail and 2 % info.
    pub fn bench(workload: Workload, txns: usize, stale_pct: u32) -> Params {
        Params {
            workload,
            seed: 42,
            workers: 10,
            txns,
            active_keys: 1_000,
            max_writes_per_key: 16,
            max_mops: 4,
            fail_pct: 2,
            info_pct: 2,
            stale_pct,
        }
    }

    pub fn small(workload: Workload, seed: u64) -> Params {
        Params {
            workload,
            seed,
            workers: 4,
            txns: 60,
            active_keys: 3,
            max_writes_per_key: 8,
            max_mops: 4,
            fail_pct: 10,
            info_pct: 10,
            stale_pct: 0,
        }
    }
}

enum State {
    Idle,
    Invoked { mops: Value },
    Executed { mops: Value, result: Value },
}

/// The store: list per key for list-append, register per key for rw-register.
#[derive(Default)]
struct Store {
    lists: HashMap<u64, Vec<u64>>,
    regs: HashMap<u64, u64>,
}

impl Store {
    /// Executes `mops` atomically, returning them with reads filled in.
    /// `stale_cut` > 0 drops that many trailing elements from list reads (a bug).
    fn execute(&mut self, workload: Workload, mops: &Value, stale_cut: usize) -> Value {
        let out: Vec<Value> = mops
            .as_array()
            .expect("generated micro-ops are a list")
            .iter()
            .map(|m| {
                let (f, k) = (m[0].as_str().unwrap(), m[1].as_u64().unwrap());
                match (workload, f) {
                    (Workload::ListAppend, "append") => {
                        self.lists
                            .entry(k)
                            .or_default()
                            .push(m[2].as_u64().unwrap());
                        m.clone()
                    }
                    (Workload::ListAppend, _) => {
                        let mut list = self.lists.get(&k).cloned().unwrap_or_default();
                        list.truncate(list.len().saturating_sub(stale_cut));
                        json!(["r", k, list])
                    }
                    (Workload::RwRegister, "w") => {
                        self.regs.insert(k, m[2].as_u64().unwrap());
                        m.clone()
                    }
                    (Workload::RwRegister, _) => json!(["r", k, self.regs.get(&k)]),
                }
            })
            .collect();
        Value::Array(out)
    }
}

/// Generates a history, handing each op to `sink` in history order (so huge histories
/// can be serialized without being held).
pub fn generate(p: &Params, sink: impl FnMut(Op)) {
    generate_keyed(p, false, sink)
}

/// [`generate`], with keys in generations when `generations` is set: `active_keys` keys
/// at a time, all replaced together after `active_keys * max_writes_per_key` writes (as
/// distest's txn workload rotates them), so no transaction spans two generations.
pub fn generate_keyed(p: &Params, generations: bool, mut sink: impl FnMut(Op)) {
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let mut store = Store::default();
    let mut states: Vec<State> = (0..p.workers).map(|_| State::Idle).collect();
    let mut pids: Vec<u64> = (0..p.workers as u64).collect();
    let mut index = 0u64;
    let mut started = 0usize;
    // Key rotation: slot -> (key id, writes so far).
    let mut slots: Vec<(u64, u32)> = (0..p.active_keys).map(|k| (k, 0)).collect();
    let mut next_key = p.active_keys;
    let mut next_value = 1u64;
    let per_generation = p.active_keys * u64::from(p.max_writes_per_key);
    let mut generation_writes = 0u64;
    let mut emit = |sink: &mut dyn FnMut(Op), pid: u64, kind: OpType, value: Value| {
        let mut op = Op::invoke(Process::Client(pid), "txn", value);
        op.kind = kind;
        op.index = index;
        op.time = index * 1_000;
        index += 1;
        sink(op);
    };
    let nulled = |mops: &Value| -> Value {
        Value::Array(
            mops.as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    if m[0] == "r" {
                        json!(["r", m[1], null])
                    } else {
                        m.clone()
                    }
                })
                .collect(),
        )
    };
    // Bounded: every step advances one worker; each txn takes at most three steps.
    let max_steps = p.txns * 3 * p.workers.max(1) * 8 + 1000;
    for _ in 0..max_steps {
        if started >= p.txns && states.iter().all(|s| matches!(s, State::Idle)) {
            break;
        }
        let w = rng.gen_range(0..p.workers);
        let pid = pids[w];
        states[w] = match std::mem::replace(&mut states[w], State::Idle) {
            State::Idle if started < p.txns => {
                started += 1;
                let n = rng.gen_range(1..=p.max_mops);
                let mops: Vec<Value> = (0..n)
                    .map(|_| {
                        let slot = rng.gen_range(0..slots.len());
                        let key = slots[slot].0;
                        if rng.gen_bool(0.5) {
                            json!(["r", key, null])
                        } else {
                            let v = next_value;
                            next_value += 1;
                            slots[slot].1 += 1;
                            generation_writes += 1;
                            if !generations && slots[slot].1 >= p.max_writes_per_key {
                                slots[slot] = (next_key, 0);
                                next_key += 1;
                            }
                            let f = if p.workload == Workload::ListAppend {
                                "append"
                            } else {
                                "w"
                            };
                            json!([f, key, v])
                        }
                    })
                    .collect();
                // A generation ends between transactions, never inside one.
                if generations && generation_writes >= per_generation {
                    generation_writes = 0;
                    for s in slots.iter_mut() {
                        *s = (next_key, 0);
                        next_key += 1;
                    }
                }
                let mops = Value::Array(mops);
                emit(&mut sink, pid, OpType::Invoke, mops.clone());
                State::Invoked { mops }
            }
            State::Idle => State::Idle,
            State::Invoked { mops } => {
                let roll = rng.gen_range(0..100);
                if roll < p.fail_pct {
                    emit(&mut sink, pid, OpType::Fail, nulled(&mops));
                    State::Idle
                } else if roll < p.fail_pct + p.info_pct / 2 {
                    // Timed out before it ever reached the store.
                    emit(&mut sink, pid, OpType::Info, nulled(&mops));
                    pids[w] += p.workers as u64;
                    State::Idle
                } else {
                    let cut = if rng.gen_range(0..100) < p.stale_pct {
                        rng.gen_range(1..=3)
                    } else {
                        0
                    };
                    let result = store.execute(p.workload, &mops, cut);
                    State::Executed { mops, result }
                }
            }
            State::Executed { mops, result } => {
                if rng.gen_range(0..100) < p.info_pct / 2 {
                    // Executed, but the client never learned it.
                    emit(&mut sink, pid, OpType::Info, nulled(&mops));
                    pids[w] += p.workers as u64;
                } else {
                    emit(&mut sink, pid, OpType::Ok, result);
                }
                State::Idle
            }
        };
    }
}

/// Collects a whole generated history.
pub fn history_ops(p: &Params) -> Vec<Op> {
    let mut ops = Vec::new();
    generate(p, |op| ops.push(op));
    ops
}
