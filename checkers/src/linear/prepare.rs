//! From a [`History`] to the search's input: per-key partitions of parsed model ops.
//!
//! Jepsen's semantics are applied here, once: a `fail` did not happen and is dropped; an
//! `info` or missing completion may have happened at any time after its invocation, so
//! the op keeps its invocation position and has no return position (it returns at
//! +infinity, and the search may also leave it out); nemesis ops are ignored. Ops are
//! split by their `key` field (Jepsen's independent keys), or by a `[k v]` value for
//! models that say so: linearizability is compositional, so each key is checked alone.

use super::hash::ValueIds;
use super::model::{pair_of, Interner, Model, OpInput};
use crate::history::History;
use crate::op::{Op, OpType};
use serde_json::Value;

/// One op of a partition.
#[derive(Debug)]
pub(crate) struct PartOp<O> {
    pub op: O,
    /// History position of the invocation.
    pub invoke: u32,
    /// History position of the `ok` completion; `None` when the outcome is unknown.
    pub ret: Option<u32>,
}

/// The ops of one key, in invocation order.
#[derive(Debug)]
pub(crate) struct Partition<O> {
    /// The key (`None` for unkeyed histories).
    pub key: Option<Value>,
    pub ops: Vec<PartOp<O>>,
    pub values: Interner,
}

/// An op the model cannot read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PrepareError {
    /// The offending op, as Jepsen prints it.
    pub op: String,
    pub reason: String,
}

impl PrepareError {
    fn at(op: &Op, reason: String) -> PrepareError {
        PrepareError {
            op: op.to_string(),
            reason,
        }
    }
}

/// An op's key, argument and (when known) result, with a `[k v]` tuple unwrapped.
struct Parts<'a> {
    key: Option<&'a Value>,
    input: &'a Value,
    output: Option<&'a Value>,
}

fn split<'a, M: Model>(invoke: &'a Op, output: Option<&'a Op>) -> Result<Parts<'a>, String> {
    let output = output.map(|c| &c.value);
    if let Some(key) = &invoke.key {
        return Ok(Parts {
            key: Some(key),
            input: &invoke.value,
            output,
        });
    }
    if !M::KEY_IN_VALUE {
        return Ok(Parts {
            key: None,
            input: &invoke.value,
            output,
        });
    }
    let untuple = |v: &'a Value| {
        pair_of(v).ok_or_else(|| {
            format!("the op has no key field and its value {v} is not a [key value] tuple; record the key in \"key\" or the value as [k v]")
        })
    };
    let (key, input) = untuple(&invoke.value)?;
    let output = match output {
        Some(v) => Some(untuple(v)?.1),
        None => None,
    };
    Ok(Parts {
        key: Some(key),
        input,
        output,
    })
}

/// Parses the already split op `parts` of the invocation `invoke`.
fn parse_parts<M: Model>(
    model: &M,
    invoke: &Op,
    parts: &Parts<'_>,
    values: &mut Interner,
) -> Result<Option<M::Op>, PrepareError> {
    let input = OpInput {
        f: &invoke.f,
        input: parts.input,
        output: parts.output,
    };
    model
        .parse(&input, values)
        .map_err(|reason| PrepareError::at(invoke, reason))
}

/// Splits `history` into per-key partitions of parsed ops, keys in order of first use;
/// `fail`s and nemesis ops are left out. One sequential pass: each op is read once, in
/// history order, which is what the memory system likes best for long histories.
pub(crate) fn partition<M: Model>(
    model: &M,
    history: &History,
) -> Result<Vec<Partition<M::Op>>, PrepareError> {
    let mut parts: Vec<Partition<M::Op>> = Vec::new();
    // Key id -> partition; unkeyed ops go to `unkeyed`.
    let mut keys = ValueIds::default();
    let mut by_key: Vec<usize> = Vec::new();
    let mut unkeyed: Option<usize> = None;
    let ops = history.ops();
    for (pos, invoke) in ops.iter().enumerate() {
        if !invoke.is_client() || !invoke.is_invoke() {
            continue;
        }
        let ok = match history.partner(pos) {
            Some(c) if ops[c].kind == OpType::Fail => continue,
            Some(c) if ops[c].kind == OpType::Ok => Some(c),
            _ => None,
        };
        let parts_of_op = split::<M>(invoke, ok.map(|c| &ops[c]))
            .map_err(|reason| PrepareError::at(invoke, reason))?;
        let slot = match parts_of_op.key {
            Some(key) => {
                let (id, new) = keys.id(key);
                if new {
                    by_key.push(parts.len());
                }
                by_key[id as usize]
            }
            None => *unkeyed.get_or_insert(parts.len()),
        };
        if slot == parts.len() {
            parts.push(Partition {
                key: parts_of_op.key.cloned(),
                ops: Vec::new(),
                values: Interner::new(),
            });
        }
        let part = &mut parts[slot];
        if let Some(op) = parse_parts(model, invoke, &parts_of_op, &mut part.values)? {
            part.ops.push(PartOp {
                op,
                invoke: pos as u32,
                ret: ok.map(|c| c as u32),
            });
        }
    }
    Ok(parts)
}

/// The ops of `part` as the history looked right after position `cut`: ops invoked later
/// are gone, ops that completed later have an unknown outcome (and may drop out, like a
/// read whose result is not known yet). Used to find the first op that cannot be placed.
pub(crate) fn truncate<M: Model>(
    model: &M,
    history: &History,
    part: &Partition<M::Op>,
    cut: u32,
) -> (Vec<PartOp<M::Op>>, Interner) {
    let mut values = part.values.clone();
    let mut ops = Vec::new();
    for p in part.ops.iter().take_while(|p| p.invoke <= cut) {
        let ret = p.ret.filter(|&r| r <= cut);
        let invoke = &history.ops()[p.invoke as usize];
        let ok = ret.map(|r| &history.ops()[r as usize]);
        // These ops parsed before with their full outcome; an unknown outcome only
        // removes information, so parsing again cannot fail.
        let parsed = split::<M>(invoke, ok)
            .ok()
            .and_then(|parts| parse_parts(model, invoke, &parts, &mut values).ok());
        if let Some(Some(op)) = parsed {
            ops.push(PartOp {
                op,
                invoke: p.invoke,
                ret,
            });
        }
    }
    (ops, values)
}
