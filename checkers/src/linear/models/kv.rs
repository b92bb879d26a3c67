//! `kv`: a map from keys to string values with `get`, `put` and `append`.
//!
//! The checker partitions a kv history by key (each key is an independent register of
//! strings, and linearizability is compositional), so this model sees one key's ops and
//! its state is that key's value. A key never written reads as the empty string; a get
//! that returns `null` is read as the empty string too (many stores answer a missing key
//! with nothing). `append` concatenates. Values that are not JSON strings are compared by
//! their JSON text (`5` is `"5"`). `read`/`write` are accepted as aliases of `get`/`put`.

use crate::linear::model::{unknown_f, Interner, Model, OpInput};
use serde_json::Value;
use std::sync::Arc;

/// One kv op on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Get(Arc<str>),
    Put(Arc<str>),
    Append(Arc<str>),
}

/// The string map, one key at a time. States are shared strings: a get or put step
/// costs a reference count, not a copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

/// The string a JSON value stands for in this model.
fn text_of(value: &Value) -> Arc<str> {
    match value {
        Value::Null => Arc::from(""),
        Value::String(s) => Arc::from(s.as_str()),
        other => Arc::from(other.to_string()),
    }
}

impl Model for Kv {
    type State = Arc<str>;
    type Op = KvOp;
    const KEY_IN_VALUE: bool = true;

    fn init(&self) -> Arc<str> {
        Arc::from("")
    }

    fn parse(&self, op: &OpInput<'_>, _values: &mut Interner) -> Result<Option<KvOp>, String> {
        match op.f {
            "get" | "read" => Ok(op.output.map(|v| KvOp::Get(text_of(v)))),
            "put" | "write" => Ok(Some(KvOp::Put(text_of(op.input)))),
            "append" => Ok(Some(KvOp::Append(text_of(op.input)))),
            other => Err(unknown_f("kv", other, "get, put, append (read, write)")),
        }
    }

    fn step(&self, state: &Arc<str>, op: &KvOp) -> Option<Arc<str>> {
        match op {
            KvOp::Get(v) => (v == state).then(|| state.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Append(v) => {
                let mut next = String::with_capacity(state.len() + v.len());
                next.push_str(state);
                next.push_str(v);
                Some(Arc::from(next))
            }
        }
    }

    fn show_state(&self, state: &Arc<str>, _values: &Interner) -> Value {
        Value::String(state.to_string())
    }

    fn state_bytes(&self, state: &Arc<str>) -> usize {
        // Shared strings are counted once per holder: an overestimate, on the safe side.
        std::mem::size_of::<Arc<str>>() + state.len()
    }
}
