//! Transaction ops as the readers hand them over, before interning: a batch of ops whose
//! micro-ops hold integers inline and anything else by reference into the batch.
//!
//! Two producers fill a [`RawBatch`]: the fast JSONL reader ([`super::jsonl`]), which
//! parses distest's lines straight into it (no `serde_json::Value` per key or value),
//! and [`RawBatch::push_op`] for ops already parsed (EDN, Jepsen logs, any `History`, and
//! JSONL lines the fast reader leaves to serde). One consumer,
//! [`super::txn::TxnsBuilder`], interns and pairs them. The shape of a transaction's
//! value is checked here, once, for both producers.

use crate::op::{Op, OpType, Process};
use serde_json::Value;

/// A key or value: integers inline, `null`, or anything else by index into
/// [`RawBatch::others`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RawVal {
    Null,
    Int(i64),
    Other(u32),
}

/// A micro-op's first element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum MopName {
    Append,
    Write,
    Read,
    /// Any other name: its text is `others[i]`.
    Other(u32),
}

/// `[name key value]`; a list value's elements are `elems[list.0..list.0 + list.1]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawMop {
    pub name: MopName,
    pub key: RawVal,
    pub val: RawVal,
    /// (start, len) of a list value in `elems`; `NOT_A_LIST` in `.1` otherwise.
    pub list: (u32, u32),
}

pub(crate) const NOT_A_LIST: u32 = u32::MAX;

/// One op; only client `txn` ops carry micro-ops.
#[derive(Clone, Debug)]
pub(crate) struct RawOp {
    pub index: u64,
    pub time: u64,
    /// The client process, `None` for the nemesis.
    pub process: Option<u64>,
    pub kind: OpType,
    /// `f == "txn"` and a client process: the only ops the Elle checkers judge.
    pub txn: bool,
    /// (start, len) in `mops`.
    pub mops: (u32, u32),
    /// Why the op's value is no list of micro-ops (txn ops only).
    pub malformed: Option<String>,
    /// The input line the op starts on (0 when unknown).
    pub line: usize,
}

/// A batch of ops in history order.
#[derive(Default, Debug)]
pub(crate) struct RawBatch {
    pub ops: Vec<RawOp>,
    pub mops: Vec<RawMop>,
    pub elems: Vec<RawVal>,
    pub others: Vec<Value>,
    /// A line the batch could not read, and why; the reader reports it once every
    /// earlier op has been taken.
    pub failed: Option<(usize, String)>,
}

impl RawBatch {
    pub fn clear(&mut self) {
        self.ops.clear();
        self.mops.clear();
        self.elems.clear();
        self.others.clear();
        self.failed = None;
    }

    pub fn mops_of(&self, op: &RawOp) -> &[RawMop] {
        &self.mops[op.mops.0 as usize..(op.mops.0 + op.mops.1) as usize]
    }

    pub fn list(&self, m: &RawMop) -> Option<&[RawVal]> {
        (m.list.1 != NOT_A_LIST)
            .then(|| &self.elems[m.list.0 as usize..(m.list.0 + m.list.1) as usize])
    }

    pub fn other(&mut self, v: Value) -> RawVal {
        self.others.push(v);
        RawVal::Other(self.others.len() as u32 - 1)
    }

    /// Appends op `op` of batch `from` with its micro-ops and values.
    pub fn push_from(&mut self, from: &RawBatch, op: &RawOp) {
        let start = self.mops.len() as u32;
        for m in from.mops_of(op) {
            let list = match from.list(m) {
                Some(items) => {
                    let at = self.elems.len() as u32;
                    for &e in items {
                        let e = self.copied(from, e);
                        self.elems.push(e);
                    }
                    (at, items.len() as u32)
                }
                None => (0, NOT_A_LIST),
            };
            let name = match m.name {
                MopName::Other(i) => {
                    self.others.push(from.others[i as usize].clone());
                    MopName::Other(self.others.len() as u32 - 1)
                }
                name => name,
            };
            let (key, val) = (self.copied(from, m.key), self.copied(from, m.val));
            self.mops.push(RawMop {
                name,
                key,
                val,
                list,
            });
        }
        self.ops.push(RawOp {
            mops: (start, self.mops.len() as u32 - start),
            ..op.clone()
        });
    }

    /// `v` of batch `from`, as a value of this batch.
    fn copied(&mut self, from: &RawBatch, v: RawVal) -> RawVal {
        match v {
            RawVal::Other(i) => self.other(from.others[i as usize].clone()),
            v => v,
        }
    }

    /// Appends every op of `other`, in its order.
    pub fn append(&mut self, other: &RawBatch) {
        for op in &other.ops {
            self.push_from(other, op);
        }
    }

    /// A raw value from a parsed one.
    fn val(&mut self, v: &Value) -> RawVal {
        match v {
            Value::Null => RawVal::Null,
            Value::Number(n) if n.as_i64().is_some() => RawVal::Int(n.as_i64().expect("checked")),
            other => self.other(other.clone()),
        }
    }

    /// Appends an op already parsed; checks a txn op's value has Elle's shape (a list of
    /// `[name key value]` lists with a string name).
    pub fn push_op(&mut self, op: &Op, line: usize) {
        let process = match op.process {
            Process::Client(p) => Some(p),
            Process::Nemesis => None,
        };
        let txn = process.is_some() && op.f == "txn";
        let start = self.mops.len() as u32;
        let mut malformed = None;
        if txn {
            if let Err(what) = self.push_mops(&op.value) {
                self.mops.truncate(start as usize);
                malformed = Some(what);
            }
        }
        let count = self.mops.len() as u32 - start;
        self.ops.push(RawOp {
            index: op.index,
            time: op.time,
            process,
            kind: op.kind,
            txn,
            mops: (start, count),
            malformed,
            line,
        });
    }

    fn push_mops(&mut self, value: &Value) -> Result<(), String> {
        let list = value
            .as_array()
            .ok_or_else(|| format!("the value {value} is not a list"))?;
        for (i, m) in list.iter().enumerate() {
            let parts = m
                .as_array()
                .filter(|a| a.len() == 3)
                .ok_or_else(|| format!("micro-op {i} is {m}, not a 3-element list"))?;
            let name = parts[0]
                .as_str()
                .map(|s| s.trim_start_matches(':'))
                .ok_or_else(|| format!("micro-op {i} starts with {}, not a name", parts[0]))?;
            let name = match name {
                "append" => MopName::Append,
                "w" => MopName::Write,
                "r" => MopName::Read,
                other => {
                    self.others.push(Value::String(other.to_string()));
                    MopName::Other(self.others.len() as u32 - 1)
                }
            };
            let key = self.val(&parts[1]);
            let (val, list) = match &parts[2] {
                Value::Array(items) => {
                    let start = self.elems.len() as u32;
                    for e in items {
                        let v = self.val(e);
                        self.elems.push(v);
                    }
                    (RawVal::Null, (start, items.len() as u32))
                }
                other => (self.val(other), (0, NOT_A_LIST)),
            };
            self.mops.push(RawMop {
                name,
                key,
                val,
                list,
            });
        }
        Ok(())
    }

    /// A raw value back as JSON.
    pub fn val_json(&self, v: RawVal) -> Value {
        match v {
            RawVal::Null => Value::Null,
            RawVal::Int(i) => Value::from(i),
            RawVal::Other(i) => self.others[i as usize].clone(),
        }
    }

    /// A micro-op's value as JSON: its list, or its single value.
    pub fn mop_value(&self, m: &RawMop) -> Value {
        match self.list(m) {
            Some(items) => Value::Array(items.iter().map(|&e| self.val_json(e)).collect()),
            None => self.val_json(m.val),
        }
    }

    /// A value as the history spelled it, for error messages.
    pub fn val_text(&self, v: RawVal) -> String {
        match v {
            RawVal::Null => "null".to_string(),
            RawVal::Int(i) => i.to_string(),
            RawVal::Other(i) => self.others[i as usize].to_string(),
        }
    }

    /// A micro-op as JSON text, for error messages.
    pub fn mop_text(&self, m: &RawMop) -> String {
        let name = match m.name {
            MopName::Append => "\"append\"".to_string(),
            MopName::Write => "\"w\"".to_string(),
            MopName::Read => "\"r\"".to_string(),
            MopName::Other(i) => self.others[i as usize].to_string(),
        };
        let value = match self.list(m) {
            Some(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|&e| self.val_text(e))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => self.val_text(m.val),
        };
        format!("[{name},{},{value}]", self.val_text(m.key))
    }

    pub fn name_text(&self, name: MopName) -> String {
        match name {
            MopName::Append => "append".to_string(),
            MopName::Write => "w".to_string(),
            MopName::Read => "r".to_string(),
            MopName::Other(i) => self.others[i as usize]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(batch: &RawBatch) -> Vec<(u64, Vec<String>)> {
        batch
            .ops
            .iter()
            .map(|op| {
                let mops = batch
                    .mops_of(op)
                    .iter()
                    .map(|m| batch.mop_text(m))
                    .collect();
                (op.index, mops)
            })
            .collect()
    }

    #[test]
    fn ops_copied_to_another_batch_keep_their_micro_ops_and_values() {
        let op = |index: u64, value: Value| {
            let mut op = Op::invoke(Process::Client(index), "txn", value);
            op.index = index;
            op
        };
        let mut a = RawBatch::default();
        a.push_op(&op(0, json!([["append", 1, 2], ["r", 1, [1, 2]]])), 0);
        a.push_op(
            &op(
                2,
                json!([["w", "k", "v"], [":cas", {"m": 1}, ["x", 3, 1.5]]]),
            ),
            0,
        );
        let mut b = RawBatch::default();
        b.push_op(&op(1, json!([["r", "k", null], ["append", 7, "s"]])), 0);
        let mut merged = RawBatch::default();
        merged.append(&b);
        merged.append(&a);
        let mut expected = texts(&b);
        expected.extend(texts(&a));
        assert_eq!(texts(&merged), expected);
        assert_eq!(merged.others.len(), a.others.len() + b.others.len());
    }
}
