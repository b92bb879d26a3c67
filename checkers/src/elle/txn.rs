//! Transactions in compact form: a history of `f = "txn"` ops turned into integers.
//!
//! Elle's histories are big (a million transactions is an ordinary nightly run), so the
//! analysis never walks `serde_json::Value`s twice: each transaction becomes one [`Txn`]
//! with a range of [`Mop`]s, keys and values are interned into `u32`s, and read lists
//! live in one flat arena. Everything after this module works on integers only.
//!
//! Micro-op shapes follow Elle: list-append `["append", k, v]` / `["r", k, [v ...]]`,
//! rw-register `["w", k, v]` / `["r", k, v]`. Keywords imported from EDN arrive as
//! strings, with or without the leading colon; both are accepted.

use super::raw::{MopName, RawBatch, RawMop, RawOp, RawVal};
use crate::format::ParseError;
use crate::history::History;
use crate::op::{Op, OpType, Process};
use serde_json::Value;
use std::fmt;

use thiserror::Error;

/// Sentinel for "no such index" in `u32` tables.
pub(crate) const NONE: u32 = u32::MAX;
/// The value id of a register read that saw no value (the initial state, `nil`).
pub(crate) const NIL: u32 = u32::MAX;

pub(crate) use crate::fxhash::FxMap as FastMap;

/// A key or value as the history spelled it: an integer, a string, or any other JSON
/// value (vectors like Jepsen's `[:anti 1]`, maps, floats, booleans), compared by value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Str(String),
    Json(Value),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Json(v) => write_readable(v, f),
        }
    }
}

/// A JSON value the way Elle prints data: `[anti 1]` vectors, `{k v, k v}` maps,
/// strings quoted, `nil`.
fn write_readable(v: &Value, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match v {
        Value::Null => f.write_str("nil"),
        Value::String(s) => write!(f, "{s:?}"),
        Value::Array(items) => {
            f.write_str("[")?;
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write_readable(x, f)?;
            }
            f.write_str("]")
        }
        Value::Object(map) => {
            f.write_str("{")?;
            for (i, (k, x)) in map.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k:?} ")?;
                write_readable(x, f)?;
            }
            f.write_str("}")
        }
        other => write!(f, "{other}"),
    }
}

/// The canonical text of a JSON value (object keys sorted), so that equal values
/// intern to one id whatever order their maps were written in.
fn canonical_text(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_text(x, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_text(&map[k], out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl Scalar {
    /// The scalar back as JSON, for evidence.
    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Int(i) => Value::from(*i),
            Scalar::Str(s) => Value::from(s.as_str()),
            Scalar::Json(v) => v.clone(),
        }
    }
}

/// A key or value as shown to people: a view of an interned [`Scalar`].
#[derive(Clone, Copy, Debug)]
pub enum Name<'a> {
    Int(i64),
    Other(&'a Scalar),
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Int(i) => write!(f, "{i}"),
            Name::Other(s) => s.fmt(f),
        }
    }
}

impl Name<'_> {
    pub fn to_json(&self) -> Value {
        match self {
            Name::Int(i) => Value::from(*i),
            Name::Other(s) => s.to_json(),
        }
    }
}

/// Integers below this always use the dense table (4 bytes per possible value).
const DENSE_MIN: usize = 1 << 20;
/// Marks an id whose name is not an integer (it lives in `others`).
const OTHER: i64 = i64::MIN;

/// Interns keys and values into dense `u32` ids. Small non-negative integers, by far
/// the most common (Jepsen's generators count up from 0), go through a direct table
/// that grows with the values seen; everything else through hash maps.
#[derive(Default)]
pub(crate) struct Interner {
    /// value -> id + 1 (0: not seen), for 0 <= value < dense.len().
    dense: Vec<u32>,
    ints: FastMap<i64, u32>,
    strs: FastMap<String, u32>,
    jsons: FastMap<String, u32>,
    /// Per id: its integer, or OTHER when it is in `others`.
    names: Vec<i64>,
    others: FastMap<u32, Scalar>,
}

impl Interner {
    /// The id of `v`; `None` for `null`, which stands for "no value" in histories.
    pub(crate) fn intern(&mut self, v: &Value) -> Option<u32> {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) if i != OTHER => Some(self.intern_int(i)),
                _ => Some(self.intern_json(v)),
            },
            Value::String(s) => Some(match self.strs.get(s.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.push_other(Scalar::Str(s.clone()));
                    self.strs.insert(s.clone(), id);
                    id
                }
            }),
            Value::Null => None,
            _ => Some(self.intern_json(v)),
        }
    }

    /// The id of a raw value of `batch`; `None` for `null`.
    pub(crate) fn intern_raw(&mut self, v: RawVal, batch: &RawBatch) -> Option<u32> {
        match v {
            RawVal::Null => None,
            RawVal::Int(i) if i != OTHER => Some(self.intern_int(i)),
            RawVal::Int(i) => self.intern(&Value::from(i)),
            RawVal::Other(j) => self.intern(&batch.others[j as usize]),
        }
    }

    /// The id of integer `i`.
    pub(crate) fn intern_int(&mut self, i: i64) -> u32 {
        if let Ok(u) = usize::try_from(i) {
            if u >= self.dense.len() && u < (self.names.len() * 4).max(DENSE_MIN) {
                let want = (u + 1).next_power_of_two().max(1024);
                self.dense.resize(want, 0);
            }
            if let Some(slot) = self.dense.get(u) {
                if *slot != 0 {
                    return *slot - 1;
                }
                // Seen before the table grew this far?
                if let Some(&id) = self.ints.get(&i) {
                    self.dense[u] = id + 1;
                    return id;
                }
                let id = self.names.len() as u32;
                self.names.push(i);
                self.dense[u] = id + 1;
                return id;
            }
        }
        let next = self.names.len() as u32;
        let id = *self.ints.entry(i).or_insert(next);
        if id == next {
            self.names.push(i);
        }
        id
    }

    fn intern_json(&mut self, v: &Value) -> u32 {
        let mut text = String::new();
        canonical_text(v, &mut text);
        if let Some(&id) = self.jsons.get(&text) {
            return id;
        }
        let id = self.push_other(Scalar::Json(v.clone()));
        self.jsons.insert(text, id);
        id
    }

    fn push_other(&mut self, s: Scalar) -> u32 {
        let id = self.names.len() as u32;
        self.names.push(OTHER);
        self.others.insert(id, s);
        id
    }

    pub(crate) fn name(&self, id: u32) -> Name<'_> {
        match self.names[id as usize] {
            OTHER => Name::Other(&self.others[&id]),
            i => Name::Int(i),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: its reads are trusted and its writes happened.
    Ok,
    /// Aborted: none of its writes may be visible to anyone.
    Fail,
    /// Indeterminate (or never completed): its writes may or may not have happened, its
    /// reads are unknown.
    Info,
}

/// The kind of a micro-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MopKind {
    Append,
    Write,
    /// A read whose result is known (ok transactions).
    Read,
    /// A read whose result is not known (invocations of fail and info transactions).
    ReadUnknown,
}

/// One micro-op, 16 bytes.
///
/// `Append`/`Write`: `a` = value id. `Read` of a list: `a` = start in the read arena,
/// `b` = length. `Read` of a register: `a` = value id or [`NIL`].
#[derive(Clone, Copy, Debug)]
pub struct Mop {
    pub kind: MopKind,
    pub key: u32,
    pub a: u32,
    pub b: u32,
}

/// One transaction: an invocation of `f = "txn"` and its completion.
#[derive(Clone, Copy, Debug)]
pub struct Txn {
    /// Op index of the invocation.
    pub invoke_index: u64,
    /// Op index of the completion, `u64::MAX` when the history ended first.
    pub complete_index: u64,
    pub invoke_time_ns: u64,
    /// Completion time; `u64::MAX` for info and missing completions (returns at +infinity).
    pub complete_time_ns: u64,
    pub process: u64,
    pub outcome: Outcome,
    pub mop_start: u32,
    pub mop_end: u32,
}

impl Txn {
    /// The op index people see for this transaction: the completion's when there is one.
    pub fn index(&self) -> u64 {
        if self.complete_index == u64::MAX {
            self.invoke_index
        } else {
            self.complete_index
        }
    }
}

/// Which micro-op vocabulary a checker accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    ListAppend,
    RwRegister,
}

impl Shape {
    fn expected(self) -> &'static str {
        match self {
            Shape::ListAppend => "[\"append\", k, v] or [\"r\", k, [v ...]]",
            Shape::RwRegister => "[\"w\", k, v] or [\"r\", k, v]",
        }
    }
}

/// Why a history cannot be analysed as transactions. The verdict is then `unknown`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TxnError {
    #[error("op {index}: {what}; expected a list of micro-ops shaped {expected} (Elle's format)")]
    Malformed {
        index: u64,
        what: String,
        expected: &'static str,
    },
    #[error("op {index}: the completion has {completed} micro-ops but its invocation (op {invoke}) had {invoked}; a completion must repeat its invocation's micro-ops with reads filled in")]
    ShapeChanged {
        index: u64,
        invoke: u64,
        invoked: usize,
        completed: usize,
    },
    #[error("op {index}: process {process} completed a transaction it never invoked; the history is not well formed")]
    Unpaired { index: u64, process: Process },
    #[error("op {index}: process {process} invoked a transaction while its op {pending} was still in flight; a process runs one op at a time")]
    Overlapping {
        index: u64,
        process: Process,
        pending: u64,
    },
    #[error("value {value} was written to key {key} by both op {first} and op {second}; this checker needs every written value to be unique per key, so it cannot tell the versions apart")]
    DuplicateWrite {
        key: String,
        value: String,
        first: u64,
        second: u64,
    },
    #[error("inferring anti-dependencies needs {edges} edges, over the limit of {limit} set by the memory limit; raise the checker's memory limit or use fewer writes per key")]
    TooManyEdges { edges: u64, limit: u64 },
    #[error("the history has more than {limit} micro-ops or read elements, beyond what the compact tables index; split the history")]
    TooLarge { limit: u64 },
}

/// All transactions of a history in compact form.
pub struct Txns {
    pub shape: Shape,
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    /// Elements of list reads, concatenated.
    pub elems: Vec<u32>,
    pub(crate) keys: Interner,
    pub(crate) values: Interner,
}

impl Txns {
    pub fn mops_of(&self, t: u32) -> &[Mop] {
        let txn = &self.txns[t as usize];
        &self.mops[txn.mop_start as usize..txn.mop_end as usize]
    }

    /// The elements of a list read.
    pub fn read_list(&self, m: &Mop) -> &[u32] {
        debug_assert_eq!(m.kind, MopKind::Read);
        &self.elems[m.a as usize..(m.a + m.b) as usize]
    }

    pub fn key_name(&self, k: u32) -> Name<'_> {
        self.keys.name(k)
    }

    pub fn value_name(&self, v: u32) -> String {
        if v == NIL {
            "nil".to_string()
        } else {
            self.values.name(v).to_string()
        }
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// `[v1 v2 ...]`, Elle's way of printing a list. Long lists keep their head and
    /// tail (where versions differ and where reads end) so evidence stays readable.
    pub fn list_text(&self, elems: &[u32]) -> String {
        const HEAD: usize = 3;
        const TAIL: usize = 8;
        let show = |s: &[u32]| {
            s.iter()
                .map(|&v| self.value_name(v))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if elems.len() <= HEAD + TAIL + 1 {
            format!("[{}]", show(elems))
        } else {
            format!(
                "[{} ...{} more... {}]",
                show(&elems[..HEAD]),
                elems.len() - HEAD - TAIL,
                show(&elems[elems.len() - TAIL..])
            )
        }
    }

    /// A micro-op as Elle prints it: `[append 4 3]`, `[r 4 [1 2]]`, `[w 4 3]`, `[r 4 nil]`.
    pub fn mop_text(&self, m: &Mop) -> String {
        let k = self.key_name(m.key);
        match m.kind {
            MopKind::Append => format!("[append {k} {}]", self.value_name(m.a)),
            MopKind::Write => format!("[w {k} {}]", self.value_name(m.a)),
            MopKind::ReadUnknown => format!("[r {k} ?]"),
            MopKind::Read => match self.shape {
                Shape::ListAppend => format!("[r {k} {}]", self.list_text(self.read_list(m))),
                Shape::RwRegister => format!("[r {k} {}]", self.value_name(m.a)),
            },
        }
    }

    /// A transaction as people read it: `#12 p3 ok [[append 4 3] [r 5 [1 2]]]`.
    pub fn txn_text(&self, t: u32) -> String {
        let txn = &self.txns[t as usize];
        let outcome = match txn.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        let mops: Vec<String> = self.mops_of(t).iter().map(|m| self.mop_text(m)).collect();
        format!(
            "#{} p{} {outcome} [{}]",
            txn.index(),
            txn.process,
            mops.join(" ")
        )
    }

    /// Reads a whole validated history.
    pub fn from_history(history: &History, shape: Shape) -> Result<Txns, TxnError> {
        let mut b = TxnsBuilder::new(shape);
        let mut batch = RawBatch::default();
        for op in history.ops() {
            batch.clear();
            batch.push_op(op, 0);
            b.push_raw(&batch, &batch.ops[0])?;
        }
        Ok(b.finish())
    }

    /// Streams distest JSONL straight into compact transactions, never holding the
    /// history's `Op`s: the path for histories too large to check as a [`History`]
    /// (a million transactions fit in a few hundred megabytes this way). Lines are
    /// parsed on all cores by [`super::jsonl`]; the result is the same as
    /// [`Txns::from_history`] on the same file.
    pub fn read_jsonl(
        reader: impl std::io::BufRead,
        shape: Shape,
        source_name: &str,
    ) -> Result<Txns, ParseError> {
        super::jsonl::read(reader, shape, source_name, None)
    }

    /// [`Txns::read_jsonl`] of an input of about `total_bytes` (a file's length): the
    /// tables are sized once from the first window's density instead of doubling, which
    /// copies them and touches fresh memory at every step.
    pub fn read_jsonl_sized(
        reader: impl std::io::BufRead,
        shape: Shape,
        source_name: &str,
        total_bytes: u64,
    ) -> Result<Txns, ParseError> {
        super::jsonl::read(reader, shape, source_name, Some(total_bytes))
    }
}

/// Builds [`Txns`] one op at a time, so a caller can stream a huge history through it
/// without ever holding all of its `Op`s.
pub struct TxnsBuilder {
    out: Txns,
    /// process -> txn index of its in-flight invocation
    in_flight: FastMap<u64, u32>,
}

impl TxnsBuilder {
    pub fn new(shape: Shape) -> TxnsBuilder {
        TxnsBuilder {
            out: Txns {
                shape,
                txns: Vec::new(),
                mops: Vec::new(),
                elems: Vec::new(),
                keys: Interner::default(),
                values: Interner::default(),
            },
            in_flight: FastMap::default(),
        }
    }

    /// Reserves room for the tables to grow `factor` times past what they hold (an
    /// estimate; untouched room costs address space, not memory).
    pub(crate) fn reserve_scaled(&mut self, factor: f64) {
        let more = |len: usize| (len as f64 * (factor - 1.0) * 1.05) as usize;
        let out = &mut self.out;
        out.txns.reserve(more(out.txns.len()));
        out.mops.reserve(more(out.mops.len()));
        out.elems.reserve(more(out.elems.len()));
    }

    /// Takes the next op of the history (in history order). Non-`txn` and nemesis ops are
    /// ignored: a transactional checker only judges transactions.
    pub fn push(&mut self, op: &Op) -> Result<(), TxnError> {
        let mut batch = RawBatch::default();
        batch.push_op(op, 0);
        self.push_raw(&batch, &batch.ops[0])
    }

    /// Takes op `op` of `batch` (in history order).
    pub(crate) fn push_raw(&mut self, batch: &RawBatch, op: &RawOp) -> Result<(), TxnError> {
        let (Some(process), true) = (op.process, op.txn) else {
            return Ok(());
        };
        if let Some(what) = &op.malformed {
            return Err(self.malformed(op.index, what.clone()));
        }
        let mops = batch.mops_of(op);
        match op.kind {
            OpType::Invoke => {
                if let Some(&p) = self.in_flight.get(&process) {
                    return Err(TxnError::Overlapping {
                        index: op.index,
                        process: Process::Client(process),
                        pending: self.out.txns[p as usize].invoke_index,
                    });
                }
                let t = self.out.txns.len() as u32;
                let start = self.out.mops.len();
                self.parse_mops(batch, op.index, mops)?;
                self.out.txns.push(Txn {
                    invoke_index: op.index,
                    complete_index: u64::MAX,
                    invoke_time_ns: op.time,
                    complete_time_ns: u64::MAX,
                    process,
                    outcome: Outcome::Info,
                    mop_start: start as u32,
                    mop_end: self.out.mops.len() as u32,
                });
                self.in_flight.insert(process, t);
            }
            kind => {
                let Some(t) = self.in_flight.remove(&process) else {
                    return Err(TxnError::Unpaired {
                        index: op.index,
                        process: Process::Client(process),
                    });
                };
                let txn = self.out.txns[t as usize];
                let outcome = match kind {
                    OpType::Ok => Outcome::Ok,
                    OpType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                if outcome == Outcome::Ok {
                    self.fill_reads(batch, op.index, mops, &txn)?;
                }
                let txn = &mut self.out.txns[t as usize];
                txn.complete_index = op.index;
                txn.outcome = outcome;
                if outcome != Outcome::Info {
                    txn.complete_time_ns = op.time;
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Txns {
        self.out
    }

    fn malformed(&self, index: u64, what: String) -> TxnError {
        TxnError::Malformed {
            index,
            what,
            expected: self.out.shape.expected(),
        }
    }

    fn check_size(&self) -> Result<(), TxnError> {
        let limit = u64::from(NONE - 1);
        if self.out.mops.len() as u64 >= limit || self.out.elems.len() as u64 >= limit {
            return Err(TxnError::TooLarge { limit });
        }
        Ok(())
    }

    /// Appends the invocation's micro-ops; reads stay unknown until an ok completion.
    fn parse_mops(
        &mut self,
        batch: &RawBatch,
        index: u64,
        mops: &[RawMop],
    ) -> Result<(), TxnError> {
        for (i, m) in mops.iter().enumerate() {
            let key = self.out.keys.intern_raw(m.key, batch).ok_or_else(|| {
                self.malformed(
                    index,
                    format!("micro-op {i} has key nil, which names no key"),
                )
            })?;
            let kind = match (self.out.shape, m.name) {
                (Shape::ListAppend, MopName::Append) => MopKind::Append,
                (Shape::RwRegister, MopName::Write) => MopKind::Write,
                (_, MopName::Read) => MopKind::ReadUnknown,
                (_, name) => {
                    return Err(self.malformed(
                        index,
                        format!(
                            "micro-op {i} is {}, of unknown kind {:?}",
                            batch.mop_text(m),
                            batch.name_text(name)
                        ),
                    ))
                }
            };
            let a = if kind == MopKind::ReadUnknown {
                NONE
            } else if batch.list(m).is_some() {
                // A vector as a value: one value, compared as a whole.
                self.out
                    .values
                    .intern(&batch.mop_value(m))
                    .expect("a list is not null")
            } else {
                self.out.values.intern_raw(m.val, batch).ok_or_else(|| {
                    self.malformed(
                        index,
                        format!("micro-op {i} writes nil, which a read could not tell from the initial state"),
                    )
                })?
            };
            self.out.mops.push(Mop { kind, key, a, b: 0 });
        }
        self.check_size()
    }

    /// Fills in the reads of `txn` from its ok completion.
    fn fill_reads(
        &mut self,
        batch: &RawBatch,
        index: u64,
        mops: &[RawMop],
        txn: &Txn,
    ) -> Result<(), TxnError> {
        let n = (txn.mop_end - txn.mop_start) as usize;
        if mops.len() != n {
            return Err(TxnError::ShapeChanged {
                index,
                invoke: txn.invoke_index,
                invoked: n,
                completed: mops.len(),
            });
        }
        for (i, m) in mops.iter().enumerate() {
            let slot = txn.mop_start as usize + i;
            let before = self.out.mops[slot];
            let same = match before.kind {
                MopKind::ReadUnknown => m.name == MopName::Read,
                MopKind::Append => m.name == MopName::Append,
                MopKind::Write => m.name == MopName::Write,
                MopKind::Read => false,
            };
            if !same || self.out.keys.intern_raw(m.key, batch) != Some(before.key) {
                return Err(self.malformed(
                    index,
                    format!(
                        "micro-op {i} is {}, which differs from the invocation's micro-op {i}",
                        batch.mop_text(m)
                    ),
                ));
            }
            if before.kind != MopKind::ReadUnknown {
                continue;
            }
            let mop = match self.out.shape {
                Shape::ListAppend => {
                    let start = self.out.elems.len() as u32;
                    match (batch.list(m), m.val) {
                        (Some(items), _) => {
                            for &e in items {
                                let id = self.out.values.intern_raw(e, batch).ok_or_else(|| {
                                    self.malformed(index, format!("micro-op {i} read a nil element, which no append writes"))
                                })?;
                                self.out.elems.push(id);
                            }
                        }
                        // A read of a key nobody wrote yet: many clients return nil for [].
                        (None, RawVal::Null) => {}
                        (None, other) => {
                            return Err(self.malformed(
                                index,
                                format!("micro-op {i} read {}, not a list", batch.val_text(other)),
                            ))
                        }
                    }
                    let len = self.out.elems.len() as u32 - start;
                    Mop {
                        kind: MopKind::Read,
                        key: before.key,
                        a: start,
                        b: len,
                    }
                }
                Shape::RwRegister => {
                    let a = match batch.list(m) {
                        Some(_) => self
                            .out
                            .values
                            .intern(&batch.mop_value(m))
                            .expect("a list is not null"),
                        None => self.out.values.intern_raw(m.val, batch).unwrap_or(NIL),
                    };
                    Mop {
                        kind: MopKind::Read,
                        key: before.key,
                        a,
                        b: 0,
                    }
                }
            };
            self.out.mops[slot] = mop;
        }
        self.check_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, value: Value) -> Op {
        let mut o = Op::invoke(Process::Client(process), "txn", value);
        o.index = index;
        o.kind = kind;
        o
    }

    #[test]
    fn ok_completion_fills_reads_and_keywords_lose_their_colon() {
        let h = History::new(vec![
            op(
                0,
                0,
                OpType::Invoke,
                json!([[":append", "x", 1], ["r", "x", null]]),
            ),
            op(
                1,
                0,
                OpType::Ok,
                json!([[":append", "x", 1], ["r", "x", [1]]]),
            ),
        ])
        .unwrap();
        let t = Txns::from_history(&h, Shape::ListAppend).unwrap();
        assert_eq!(t.txns.len(), 1);
        assert_eq!(t.txns[0].outcome, Outcome::Ok);
        let m = t.mops_of(0);
        assert_eq!(m[1].kind, MopKind::Read);
        assert_eq!(t.read_list(&m[1]).len(), 1);
        assert_eq!(t.txn_text(0), "#1 p0 ok [[append \"x\" 1] [r \"x\" [1]]]");
    }

    #[test]
    fn keys_of_any_shape_intern_by_value_and_print_readably() {
        let mut i = Interner::default();
        let anti = i.intern(&json!(["anti", 1])).unwrap();
        assert_eq!(i.intern(&json!(["anti", 1])), Some(anti));
        assert_ne!(i.intern(&json!(["anti", 2])), Some(anti));
        let m = i.intern(&json!({"a": 1, "b": [2]})).unwrap();
        let mut other_order = serde_json::Map::new();
        other_order.insert("b".into(), json!([2]));
        other_order.insert("a".into(), json!(1));
        assert_eq!(i.intern(&Value::Object(other_order)), Some(m));
        assert_eq!(i.name(anti).to_string(), "[\"anti\" 1]");
        assert_eq!(i.name(anti).to_json(), json!(["anti", 1]));
        assert_eq!(i.name(m).to_string(), "{\"a\" 1, \"b\" [2]}");
        // A string and an integer, a float and an integer, stay apart.
        let one = i.intern(&json!(1)).unwrap();
        assert_ne!(i.intern(&json!("1")), Some(one));
        assert_ne!(i.intern(&json!(1.5)), Some(one));
        assert_eq!(i.intern(&Value::Null), None);
    }

    #[test]
    fn integers_keep_one_id_across_the_dense_and_hashed_tables() {
        let mut i = Interner::default();
        // Far beyond the dense table: hashed.
        let big = i.intern_int(3_000_000);
        let negative = i.intern_int(-3);
        // Fill enough values that the dense table grows past 3,000,000.
        for v in 0..(DENSE_MIN as i64) {
            i.intern_int(v);
        }
        assert_eq!(i.intern_int(3_000_000), big);
        assert_eq!(i.intern_int(-3), negative);
        assert_eq!(i.name(big).to_string(), "3000000");
        assert_eq!(i.intern_int(7), i.intern_int(7));
        assert_eq!(i.len(), DENSE_MIN + 2);
    }

    #[test]
    fn malformed_micro_op_is_a_clean_error() {
        let h = History::new(vec![op(0, 0, OpType::Invoke, json!([["cas", 1, 2]]))]).unwrap();
        let err = Txns::from_history(&h, Shape::ListAppend).err().unwrap();
        assert!(err.to_string().contains("unknown kind"), "{err}");
        let h = History::new(vec![op(0, 0, OpType::Invoke, json!(5))]).unwrap();
        assert!(Txns::from_history(&h, Shape::RwRegister).is_err());
    }

    #[test]
    fn failed_and_info_reads_stay_unknown() {
        let h = History::new(vec![
            op(0, 0, OpType::Invoke, json!([["r", 1, null], ["w", 1, 2]])),
            op(1, 0, OpType::Fail, json!([["r", 1, 7], ["w", 1, 2]])),
        ])
        .unwrap();
        let t = Txns::from_history(&h, Shape::RwRegister).unwrap();
        assert_eq!(t.mops_of(0)[0].kind, MopKind::ReadUnknown);
        assert_eq!(t.txns[0].outcome, Outcome::Fail);
    }
}
