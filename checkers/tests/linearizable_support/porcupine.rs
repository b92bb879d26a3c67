//! porcupine-rs models of a cas-register and a keyed kv store, and the conversion of a
//! distest history into porcupine operations: the reference the `linearizable` checker
//! is compared with (differential tests, benchmark).

use distest_checkers::{History, OpType};
use porcupine_rs::{Model, Operation};
use serde_json::Value;
use std::collections::BTreeMap;

/// porcupine's view of a cas-register op; `known: false` for an unknown outcome.
#[derive(Clone, Debug)]
pub enum RegOp {
    Read(i64),
    Write(i64),
    Cas(i64, i64, bool),
}

#[derive(Clone)]
pub struct PorcupineRegister;

/// Values are small non-negative integers; `null` is -1.
fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(-1)
}

impl Model for PorcupineRegister {
    type State = i64;
    type Op = RegOp;
    type Metadata = ();
    fn init() -> i64 {
        -1
    }
    fn step(s: &i64, op: &RegOp) -> (bool, i64) {
        match *op {
            RegOp::Read(v) => (v == *s, *s),
            RegOp::Write(v) => (true, v),
            RegOp::Cas(old, new, true) => (old == *s, new),
            // Unknown outcome: either it matched and applied, or it did nothing.
            RegOp::Cas(old, new, false) => (true, if old == *s { new } else { *s }),
        }
    }
}

/// porcupine's view of a kv op on one key.
#[derive(Clone, Debug)]
pub enum KvOp {
    Get(String),
    Put(String),
    Append(String),
}

#[derive(Clone)]
pub struct PorcupineKv;

impl Model for PorcupineKv {
    type State = String;
    type Op = (u64, KvOp);
    type Metadata = ();
    fn init() -> String {
        String::new()
    }
    fn step(s: &String, (_, op): &(u64, KvOp)) -> (bool, String) {
        match op {
            KvOp::Get(v) => (v == s, s.clone()),
            KvOp::Put(v) => (true, v.clone()),
            KvOp::Append(v) => (true, format!("{s}{v}")),
        }
    }
    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let mut by_key: BTreeMap<u64, Vec<Operation<Self>>> = BTreeMap::new();
        for op in history {
            by_key.entry(op.op.0).or_default().push(op.clone());
        }
        by_key.into_values().collect()
    }
}

/// Pairs of (invocation, completion) as porcupine operations, via `convert`:
/// `convert(f, invocation value, ok value or None when unknown)`; `None` drops the op.
pub fn to_porcupine<M: Model>(
    history: &History,
    convert: impl Fn(&str, &Value, Option<&Value>) -> Option<M::Op>,
) -> Vec<Operation<M>> {
    history
        .pairs()
        .filter(|p| p.outcome() != OpType::Fail)
        .filter_map(|p| {
            let ok = p.completion.filter(|c| c.kind == OpType::Ok);
            let op = convert(&p.invoke.f, &p.invoke.value, ok.map(|c| &c.value))?;
            Some(Operation {
                client_id: None,
                call_time: p.invoke.index as i64,
                return_time: ok.map_or(i64::MAX, |c| c.index as i64),
                op,
                metadata: None,
            })
        })
        .collect()
}

pub fn register_op(f: &str, input: &Value, ok: Option<&Value>) -> Option<RegOp> {
    match f {
        "read" => ok.map(|v| RegOp::Read(int(v))),
        "write" => Some(RegOp::Write(int(input))),
        _ => Some(RegOp::Cas(int(&input[0]), int(&input[1]), ok.is_some())),
    }
}

pub fn kv_op(f: &str, input: &Value, ok: Option<&Value>) -> Option<(u64, KvOp)> {
    let key = input[0].as_u64().unwrap_or(0);
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let op = match f {
        "get" => KvOp::Get(text(&ok?[1])),
        "put" => KvOp::Put(text(&input[1])),
        _ => KvOp::Append(text(&input[1])),
    };
    Some((key, op))
}
