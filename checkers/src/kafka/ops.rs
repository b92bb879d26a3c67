//! Reading Kafka-style ops: the sends, polls, commits and committed-offset lists each op
//! says happened. Shapes follow Jepsen's kafka test (see the module docs of [`super`]).

use crate::convergence::{Elem, Malformed};
use crate::history::Pair;
use crate::op::OpType;
use serde_json::Value;

/// One `[offset, message]` pair as a poll or an acknowledged send reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub offset: i64,
    pub msg: Elem,
}

/// What one op did, read from its invocation and completion.
#[derive(Debug, Default)]
pub struct OpEffects {
    /// Sends in op order: key, message, and the offset when the completion says it.
    pub sends: Vec<(Elem, Elem, Option<i64>)>,
    /// Polls in op order: per poll micro-op, each key with the records it returned.
    pub polls: Vec<Vec<(Elem, Vec<Record>)>>,
    /// `commit_offsets`/`list_committed_offsets`: key → offset.
    pub offsets: Vec<(Elem, i64)>,
    /// `assign`/`subscribe`: the keys now assigned.
    pub assigned: Vec<Elem>,
}

/// The kind of op, by its `f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `send`, `poll` or `txn`: micro-ops.
    Txn,
    Assign,
    Commit,
    ListCommitted,
    Other,
}

pub fn kind(f: &str) -> Kind {
    match f {
        "send" | "poll" | "txn" => Kind::Txn,
        "assign" | "subscribe" => Kind::Assign,
        "commit_offsets" => Kind::Commit,
        "list_committed_offsets" => Kind::ListCommitted,
        _ => Kind::Other,
    }
}

/// Whether the op is a final poll: a poll whose invocation value is `{"final": true, ...}`
/// (the workload's last read of every key from the beginning, after the heal).
pub fn is_final_poll(pair: &Pair<'_>) -> bool {
    pair.invoke.f == "poll" && pair.invoke.value.get("final") == Some(&Value::Bool(true))
}

/// Reads what `pair` did. Only `ok` completions carry observations (offsets, polled
/// records, committed offsets); an `info` or `fail` send still names its message.
pub fn effects(pair: &Pair<'_>, malformed: &mut Malformed) -> OpEffects {
    let mut out = OpEffects::default();
    let ok = pair.outcome() == OpType::Ok;
    let op = pair.completion.filter(|_| ok).unwrap_or(pair.invoke);
    match kind(&pair.invoke.f) {
        Kind::Txn => {
            // Final polls are invoked with an object; their completion has the micro-ops.
            if !ok && !pair.invoke.value.is_array() {
                return out;
            }
            let Some(mops) = op.value.as_array() else {
                malformed.note(op, "a send/poll/txn value must be a list of micro-ops");
                return out;
            };
            for mop in mops {
                if !read_mop(mop, ok, &mut out) {
                    malformed.note(op, "a micro-op must be [\"send\", k, v], [\"send\", k, [offset, v]] or [\"poll\", {k: [[offset, v], ...]}]");
                }
            }
        }
        Kind::Assign if ok => match op.value.as_array() {
            Some(keys) => out.assigned = keys.iter().map(Elem::of).collect(),
            None => malformed.note(op, "an assign value must be a list of keys"),
        },
        Kind::Commit | Kind::ListCommitted if ok => match op.value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    match v.as_i64() {
                        Some(o) => out.offsets.push((key_of(k), o)),
                        None => malformed.note(op, "committed offsets must be integers"),
                    }
                }
            }
            None => malformed.note(op, "committed offsets must be a map of keys to offsets"),
        },
        _ => {}
    }
    out
}

/// Keys of JSON maps are strings; a key that reads as an integer is the integer, so
/// `{"3": ...}` in a poll and `["send", 3, ...]` name the same key.
pub fn key_of(text: &str) -> Elem {
    match text.parse::<i64>() {
        Ok(i) if i.to_string() == text => Elem::Int(i),
        _ => Elem::of(&Value::String(text.to_string())),
    }
}

/// Reads one micro-op into `out`; false when it has the wrong shape.
fn read_mop(mop: &Value, ok: bool, out: &mut OpEffects) -> bool {
    let Some(parts) = mop.as_array() else {
        return false;
    };
    match parts.first().and_then(Value::as_str) {
        Some("send") if parts.len() == 3 => {
            let key = key_value(&parts[1]);
            match (&parts[2], ok) {
                // Completed: [offset, message]; the offset may be null when unknown.
                (Value::Array(pair), true) if pair.len() == 2 => {
                    let offset = pair[0].as_i64();
                    if !pair[0].is_null() && offset.is_none() {
                        return false;
                    }
                    out.sends.push((key, Elem::of(&pair[1]), offset));
                }
                (v, _) => out.sends.push((key, Elem::of(v), None)),
            }
            true
        }
        Some("poll") if parts.len() == 1 => true,
        Some("poll") if parts.len() == 2 => {
            if !ok {
                return true;
            }
            let Some(map) = parts[1].as_object() else {
                return parts[1].is_null();
            };
            let mut keys = Vec::with_capacity(map.len());
            for (k, records) in map {
                let Some(records) = records.as_array() else {
                    return false;
                };
                let mut read = Vec::with_capacity(records.len());
                for r in records {
                    match r.as_array().map(Vec::as_slice) {
                        Some([o, m]) => match o.as_i64() {
                            Some(offset) => read.push(Record {
                                offset,
                                msg: Elem::of(m),
                            }),
                            None => return false,
                        },
                        _ => return false,
                    }
                }
                keys.push((key_of(k), read));
            }
            out.polls.push(keys);
            true
        }
        _ => false,
    }
}

/// A key given as a JSON value (in a send micro-op): strings that read as integers are
/// the integer, like map keys.
fn key_value(v: &Value) -> Elem {
    match v {
        Value::String(s) => key_of(s),
        other => Elem::of(other),
    }
}
