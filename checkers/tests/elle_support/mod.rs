//! Shared helpers for the Elle integration tests: a tiny DSL for transactional
//! histories (invocations get their reads nulled, as real clients record them).

#![allow(dead_code)]

pub mod gen;

use distest_checkers::{History, Op, OpType, Process};
use serde_json::Value;

/// Builds a history op by op; each op is 1 ms after the previous one.
#[derive(Default)]
pub struct H {
    ops: Vec<Op>,
}

/// The invocation form of a transaction: reads carry null.
pub fn nulled(mops: &Value) -> Value {
    Value::Array(
        mops.as_array()
            .expect("micro-ops are a list")
            .iter()
            .map(|m| {
                let a = m.as_array().expect("a micro-op is a list");
                let is_read = a[0].as_str().map(|s| s.trim_start_matches(':')) == Some("r");
                let mut out = a.clone();
                if is_read {
                    out[2] = Value::Null;
                }
                Value::Array(out)
            })
            .collect(),
    )
}

impl H {
    pub fn new() -> H {
        H::default()
    }

    fn push(&mut self, process: u64, kind: OpType, value: Value) -> &mut H {
        let n = self.ops.len() as u64;
        let mut op = Op::invoke(Process::Client(process), "txn", value);
        op.kind = kind;
        op.index = n;
        op.time = n * 1_000_000;
        self.ops.push(op);
        self
    }

    pub fn invoke(&mut self, process: u64, mops: Value) -> &mut H {
        let v = nulled(&mops);
        self.push(process, OpType::Invoke, v)
    }

    pub fn ok(&mut self, process: u64, mops: Value) -> &mut H {
        self.push(process, OpType::Ok, mops)
    }

    pub fn fail(&mut self, process: u64, mops: Value) -> &mut H {
        let v = nulled(&mops);
        self.push(process, OpType::Fail, v)
    }

    pub fn info(&mut self, process: u64, mops: Value) -> &mut H {
        let v = nulled(&mops);
        self.push(process, OpType::Info, v)
    }

    /// An invocation immediately followed by its ok completion.
    pub fn txn(&mut self, process: u64, mops: Value) -> &mut H {
        self.invoke(process, mops.clone()).ok(process, mops)
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.clone()
    }

    pub fn history(&self) -> History {
        History::new(self.ops.clone()).expect("test histories are well formed")
    }
}

/// The ring of the issue: T0 -ww-> T1 -ww-> ... -ww-> T(n-1) -rw-> T0, all concurrent (so
/// no realtime edge shortens it) and each version order shown by the next transaction's
/// own read, so nothing but the ring relates them: one G-single-item cycle of n
/// transactions, as list-append ops.
pub fn ring(n: u64) -> Vec<Op> {
    let txn = |i: u64| -> Value {
        let mut mops = Vec::new();
        if i == 0 {
            mops.push(serde_json::json!(["append", "z", 1]));
            mops.push(serde_json::json!(["r", "z", [1]]));
        } else {
            // The previous transaction's key: its element, then this one's.
            mops.push(serde_json::json!(["append", i - 1, 2]));
            mops.push(serde_json::json!(["r", i - 1, [1, 2]]));
        }
        if i + 1 < n {
            mops.push(serde_json::json!(["append", i, 1]));
        } else {
            mops.push(serde_json::json!(["r", "z", []]));
        }
        Value::Array(mops)
    };
    let mut h = H::new();
    for i in 0..n {
        h.invoke(i, txn(i));
    }
    for i in 0..n {
        h.ok(i, txn(i));
    }
    h.ops()
}

/// A ring of anti-dependencies: n concurrent transactions, each reading one key empty and
/// appending to the previous one's key, then n readers showing every append. T0 -rw->
/// T1 -rw-> ... -rw-> T0: a G2-item cycle of n transactions (adjacent rw edges only, so
/// snapshot isolation allows it), which the readers connect to thousands of realtime
/// edges under strict serializability.
pub fn rw_ring(n: u64) -> Vec<Op> {
    let txn = |i: u64| serde_json::json!([["r", i, []], ["append", (i + n - 1) % n, 1]]);
    let mut h = H::new();
    for i in 0..n {
        h.invoke(i, txn(i));
    }
    for i in 0..n {
        h.ok(i, txn(i));
    }
    for i in 0..n {
        h.invoke(n + i, serde_json::json!([["r", i, [1]]]));
    }
    for i in 0..n {
        h.ok(n + i, serde_json::json!([["r", i, [1]]]));
    }
    h.ops()
}
