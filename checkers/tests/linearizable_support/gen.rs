//! Random histories with known linearization points, for differential tests and the
//! benchmark: a simulated cas-register or kv store that applies each op at one instant
//! between its invocation and its completion, so an unperturbed history is linearizable
//! by construction.

#![allow(dead_code)] // the tests and the benchmark use different parts

use distest_checkers::{Op, OpType, Process};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What to simulate.
#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    /// Client slots running concurrently.
    pub processes: usize,
    /// Invocations in total.
    pub ops: usize,
    /// Written values are drawn from `0..values` (few values: more ambiguity).
    pub values: u64,
    /// Keys are drawn from `0..keys`; 0 means an unkeyed history.
    pub keys: u64,
    /// Probability that an op ends `info` (the client crashed; the op may have applied).
    pub p_info: f64,
    /// `true`: kv (get/put/append, `[k v]` values); `false`: cas-register (read/write/cas).
    pub kv: bool,
}

enum Slot {
    Idle,
    /// Invoked at this history position, not applied yet.
    Invoked(usize),
    /// Applied; completes with this type and value.
    Applied(usize, OpType, Value),
}

/// Simulates `cfg` with `rng`: a history in JSONL shape (dense indices, times in ns).
pub fn simulate(rng: &mut impl Rng, cfg: &GenConfig) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::with_capacity(cfg.ops * 2);
    let mut slots: Vec<(u64, Slot)> = (0..cfg.processes as u64).map(|p| (p, Slot::Idle)).collect();
    let mut next_process = cfg.processes as u64;
    let mut invoked = 0usize;
    let mut register: HashMap<u64, Value> = HashMap::new();
    let push = |ops: &mut Vec<Op>, op: Op| {
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            time: index * 1_000,
            ..op
        });
    };
    // Bounded: every turn invokes, applies or completes an op, or retires an idle slot.
    while !slots.is_empty() {
        let s = rng.gen_range(0..slots.len());
        let process = slots[s].0;
        match std::mem::replace(&mut slots[s].1, Slot::Idle) {
            Slot::Idle if invoked >= cfg.ops => {
                slots.swap_remove(s);
            }
            Slot::Idle => {
                let op = new_op(rng, cfg, process);
                slots[s].1 = Slot::Invoked(ops.len());
                push(&mut ops, op);
                invoked += 1;
            }
            Slot::Invoked(at) if invoked >= cfg.ops && rng.gen_bool(cfg.p_info) => {
                // The history ends with this op still in flight: no completion at all.
                let _ = at;
                slots.swap_remove(s);
            }
            Slot::Invoked(at) if rng.gen_bool(cfg.p_info / 2.0) => {
                // Crashed before the op reached the store: info, and it never happened.
                let done = ops[at].complete(OpType::Info, ops[at].value.clone());
                push(&mut ops, done);
                slots[s].0 = next_process;
                next_process += 1;
            }
            Slot::Invoked(at) => {
                let (kind, value) = apply(&mut register, cfg, &ops[at]);
                slots[s].1 = Slot::Applied(at, kind, value);
            }
            Slot::Applied(at, kind, value) => {
                let crashed = rng.gen_bool(cfg.p_info);
                let done = if crashed {
                    ops[at].complete(OpType::Info, ops[at].value.clone())
                } else {
                    ops[at].complete(kind, value)
                };
                push(&mut ops, done);
                if crashed {
                    slots[s].0 = next_process;
                    next_process += 1;
                }
            }
        }
    }
    ops
}

fn new_op(rng: &mut impl Rng, cfg: &GenConfig, process: u64) -> Op {
    let v = json!(rng.gen_range(0..cfg.values));
    let p = Process::Client(process);
    let key = (cfg.keys > 0).then(|| rng.gen_range(0..cfg.keys));
    if cfg.kv {
        let k = json!(key.unwrap_or(0));
        let s = json!(v.to_string());
        return match rng.gen_range(0..3) {
            0 => Op::invoke(p, "get", json!([k, null])),
            1 => Op::invoke(p, "put", json!([k, s])),
            _ => Op::invoke(p, "append", json!([k, s])),
        };
    }
    let op = match rng.gen_range(0..3) {
        0 => Op::invoke(p, "read", Value::Null),
        1 => Op::invoke(p, "write", v),
        _ => Op::invoke(p, "cas", json!([rng.gen_range(0..cfg.values), v])),
    };
    match key {
        Some(k) => op.with_key(json!(k)),
        None => op,
    }
}

/// Applies `op` to the simulated store: the completion it earns.
fn apply(store: &mut HashMap<u64, Value>, cfg: &GenConfig, op: &Op) -> (OpType, Value) {
    if cfg.kv {
        let k = op.value[0].as_u64().unwrap_or(0);
        let cur = store.entry(k).or_insert_with(|| json!(""));
        return match op.f.as_str() {
            "get" => (OpType::Ok, json!([k, cur.clone()])),
            "put" => {
                *cur = op.value[1].clone();
                (OpType::Ok, op.value.clone())
            }
            _ => {
                let joined = format!(
                    "{}{}",
                    cur.as_str().unwrap_or(""),
                    op.value[1].as_str().unwrap_or("")
                );
                *cur = json!(joined);
                (OpType::Ok, op.value.clone())
            }
        };
    }
    let k = op.key.as_ref().and_then(Value::as_u64).unwrap_or(0);
    let cur = store.entry(k).or_insert(Value::Null);
    match op.f.as_str() {
        "read" => (OpType::Ok, cur.clone()),
        "write" => {
            *cur = op.value.clone();
            (OpType::Ok, op.value.clone())
        }
        _ => {
            if *cur == op.value[0] {
                *cur = op.value[1].clone();
                (OpType::Ok, op.value.clone())
            } else {
                (OpType::Fail, op.value.clone())
            }
        }
    }
}

/// Changes one `ok` read's result to another value (maybe still a possible one).
pub fn perturb(rng: &mut impl Rng, ops: &mut [Op], cfg: &GenConfig) {
    let reads: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok && (o.f == "read" || o.f == "get"))
        .map(|(i, _)| i)
        .collect();
    if reads.is_empty() {
        return;
    }
    let at = reads[rng.gen_range(0..reads.len())];
    let v = rng.gen_range(0..=cfg.values);
    ops[at].value = if cfg.kv {
        let k = ops[at].value[0].clone();
        json!([k, v.to_string()])
    } else if v == cfg.values {
        Value::Null
    } else {
        json!(v)
    };
}
