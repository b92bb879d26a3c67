//! distest's `history.jsonl` straight into compact transactions, on all cores.
//!
//! The general JSONL reader builds an `Op` with a `serde_json::Value` per line; for a
//! transactional history that means a heap allocation per micro-op, key and list, and it
//! dominated checking a million transactions. Here each batch of whole lines is split
//! between threads, and each thread parses its lines straight into a [`RawBatch`]
//! (integers inline, nothing allocated per micro-op). The batches are then handed, in
//! file order, to the one [`TxnsBuilder`] that interns and pairs them.
//!
//! Like the general reader's fast path, this parser only answers when it is certain:
//! anything outside the subset it reads exactly (string escapes, floats, integers out of
//! `i64`, `-0`, unknown or repeated fields, deep nesting, keys or values that are lists
//! or maps, ...) sends the line to serde_json, whose `Op` then goes through
//! [`RawBatch::push_op`]. So a line means the same here as to [`Txns::from_history`],
//! and errors are worded the same.

use super::raw::{MopName, RawBatch, RawMop, RawOp, RawVal, NOT_A_LIST};
use super::txn::{Shape, Txns, TxnsBuilder};
use crate::format::json_lex::Cursor;
use crate::format::{LineWindow, ParseError, MAX_LINE_BYTES};
use crate::history::HistoryError;
use crate::op::{Op, OpType};
use serde_json::Value;
use std::io::BufRead;

/// Bytes of whole lines read per batch.
const BATCH_BYTES: usize = 16 << 20;
/// Batches smaller than this are parsed on the calling thread alone.
const PARALLEL_MIN_BYTES: usize = 1 << 20;
/// Deepest nesting of a skipped value read here; deeper lines go to serde_json.
const MAX_DEPTH: usize = 64;

/// Reads a whole JSONL history into transactions of `shape`; `total_bytes`, when known,
/// sizes the tables after the first window.
pub(super) fn read(
    mut reader: impl BufRead,
    shape: Shape,
    source_name: &str,
    total_bytes: Option<u64>,
) -> Result<Txns, ParseError> {
    let mut sized = total_bytes.is_none();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let mut builder = TxnsBuilder::new(shape);
    let mut batches: Vec<RawBatch> = (0..threads).map(|_| RawBatch::default()).collect();
    let mut lines = LineWindow::new(BATCH_BYTES, MAX_LINE_BYTES);
    // The file line number of the window's first byte, and the index the next op must
    // have.
    let mut line_no = 1usize;
    let mut expected_index = 0u64;
    while let Some(window) = lines.next_lines(&mut reader, line_no, source_name)? {
        let cut = window.len();
        let parts = split(
            window,
            if cut >= PARALLEL_MIN_BYTES {
                threads
            } else {
                1
            },
        );
        // Lines per part, to number them in the file.
        let counts: Vec<usize> = std::thread::scope(|s| {
            let (first_batch, rest) = batches.split_first_mut().expect("one batch per thread");
            let handles: Vec<_> = parts
                .iter()
                .skip(1)
                .zip(rest.iter_mut())
                .map(|(&(a, b), batch)| s.spawn(move || parse_part(&window[a..b], batch)))
                .collect();
            let first = parse_part(&window[parts[0].0..parts[0].1], first_batch);
            std::iter::once(first)
                .chain(handles.into_iter().map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                }))
                .collect()
        });
        for (batch, count) in batches.iter().zip(&counts).take(parts.len()) {
            for op in &batch.ops {
                let line = line_no + op.line;
                if op.index != expected_index {
                    return Err(ParseError::InvalidOp {
                        source_name: source_name.to_string(),
                        line,
                        error: HistoryError::SparseIndex {
                            position: expected_index as usize,
                            index: op.index,
                        },
                    });
                }
                expected_index += 1;
                builder
                    .push_raw(batch, op)
                    .map_err(|e| ParseError::Syntax {
                        source_name: source_name.to_string(),
                        line,
                        message: e.to_string(),
                    })?;
            }
            if let Some((line, message)) = &batch.failed {
                return Err(ParseError::Syntax {
                    source_name: source_name.to_string(),
                    line: line_no + line,
                    message: message.clone(),
                });
            }
            line_no += count;
        }
        if !sized {
            sized = true;
            let total = total_bytes.unwrap_or(0) as f64;
            if total > 2.0 * cut as f64 {
                builder.reserve_scaled(total / cut as f64);
            }
        }
    }
    Ok(builder.finish())
}

/// Splits `window` (whole lines) into up to `n` parts at line ends.
fn split(window: &[u8], n: usize) -> Vec<(usize, usize)> {
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let target = (window.len() * i / n).max(start);
        let end = match memchr::memchr(b'\n', &window[target..]) {
            Some(j) => target + j + 1,
            None => window.len(),
        };
        parts.push((start, end));
        start = end;
    }
    parts.push((start, window.len()));
    parts
}

/// Parses the lines of `part` into `batch` (cleared first); op lines are numbered from 0
/// within the part. Stops at the first line it cannot read. Returns the part's lines.
fn parse_part(part: &[u8], batch: &mut RawBatch) -> usize {
    batch.clear();
    let mut lines = 0usize;
    let mut start = 0;
    while start < part.len() {
        let end = memchr::memchr(b'\n', &part[start..]).map_or(part.len(), |i| start + i + 1);
        let line = &part[start..end];
        if batch.failed.is_none() && !line.iter().all(u8::is_ascii_whitespace) {
            if let Err(message) = parse_line(line, lines, batch) {
                batch.failed = Some((lines, message));
            }
        }
        lines += 1;
        start = end;
    }
    lines
}

/// One line into `batch`: the fast way when certain, else through serde_json.
fn parse_line(line: &[u8], line_no: usize, batch: &mut RawBatch) -> Result<(), String> {
    let marks = (
        batch.ops.len(),
        batch.mops.len(),
        batch.elems.len(),
        batch.others.len(),
    );
    let mut c = Cursor::new(line);
    if c.raw_op(batch, line_no).is_some() {
        return Ok(());
    }
    batch.ops.truncate(marks.0);
    batch.mops.truncate(marks.1);
    batch.elems.truncate(marks.2);
    batch.others.truncate(marks.3);
    let op: Op = serde_json::from_slice(line)
        .map_err(|e| format!("expected one JSON op object per line: {e}"))?;
    batch.push_op(&op, line_no);
    Ok(())
}

impl Cursor<'_> {
    /// `,` (false: more items, whitespace after it skipped) or `close` (true).
    fn next_item(&mut self, close: u8) -> Option<bool> {
        let closed = self.end_of_items(close)?;
        self.skip_whitespace();
        Some(closed)
    }

    /// A key or single value: integer, plain string, null.
    fn scalar(&mut self, batch: &mut RawBatch) -> Option<RawVal> {
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                Some(batch.other(Value::String(s.to_string())))
            }
            b'n' => self.eat_literal(b"null").map(|_| RawVal::Null),
            _ => self.int().map(RawVal::Int),
        }
    }

    /// A whole op line. `None`: not certain, ask serde.
    fn raw_op(&mut self, batch: &mut RawBatch, line: usize) -> Option<()> {
        self.skip_whitespace();
        self.eat(b'{')?;
        self.skip_whitespace();
        let mut seen = 0u16;
        let (mut index, mut time, mut process, mut kind, mut f_txn) =
            (0u64, 0u64, None, None, None);
        // Micro-ops parsed from `value` (before `f` may be known), and whether it had
        // Elle's shape at all.
        let mops_start = batch.mops.len() as u32;
        let mut shaped = true;
        let mut had_value = false;
        if self.eat(b'}').is_none() {
            loop {
                let name = self.raw_string()?;
                self.skip_whitespace();
                self.eat(b':')?;
                self.skip_whitespace();
                let bit = match name {
                    b"index" => 1,
                    b"time" => 2,
                    b"process" => 4,
                    b"type" => 8,
                    b"f" => 16,
                    b"value" => 32,
                    b"key" => 64,
                    b"node" => 128,
                    b"error" => 256,
                    _ => return None,
                };
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                match bit {
                    1 => index = self.unsigned()?,
                    2 => time = self.unsigned()?,
                    4 => {
                        process = Some(match self.peek()? {
                            b'"' => match self.raw_string()? {
                                b"nemesis" => None,
                                _ => return None,
                            },
                            _ => Some(self.unsigned()?),
                        })
                    }
                    8 => {
                        kind = Some(match self.raw_string()? {
                            b"invoke" => OpType::Invoke,
                            b"ok" => OpType::Ok,
                            b"fail" => OpType::Fail,
                            b"info" => OpType::Info,
                            _ => return None,
                        })
                    }
                    16 => f_txn = Some(self.string()? == "txn"),
                    32 => {
                        had_value = true;
                        let at = self.pos;
                        if self.mops(batch).is_none() {
                            // Not Elle's shape (or not certain): skip it exactly; a txn op
                            // with such a value then goes to serde for its error.
                            batch.mops.truncate(mops_start as usize);
                            shaped = false;
                            self.pos = at;
                            self.skip(0)?;
                        }
                    }
                    // serde wants a string (or null) for the node.
                    128 => match self.peek()? {
                        b'"' => {
                            self.string()?;
                        }
                        _ => self.eat_literal(b"null")?,
                    },
                    _ => self.skip(0)?,
                }
                if self.next_item(b'}')? {
                    break;
                }
            }
        }
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return None;
        }
        let (Some(process), Some(kind), Some(f_txn)) = (process, kind, f_txn) else {
            return None;
        };
        let txn = f_txn && process.is_some();
        if txn && !(shaped && had_value) {
            return None;
        }
        if !txn {
            batch.mops.truncate(mops_start as usize);
        }
        let count = batch.mops.len() as u32 - mops_start;
        batch.ops.push(RawOp {
            index,
            time,
            process,
            kind,
            txn,
            mops: (mops_start, count),
            malformed: None,
            line,
        });
        Some(())
    }

    /// `[[name key value] ...]` into `batch.mops`.
    fn mops(&mut self, batch: &mut RawBatch) -> Option<()> {
        self.eat(b'[')?;
        self.skip_whitespace();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.eat(b'[')?;
            self.skip_whitespace();
            let name = self.raw_string()?;
            let name = match name.strip_prefix(b":").unwrap_or(name) {
                b"append" => MopName::Append,
                b"w" => MopName::Write,
                b"r" => MopName::Read,
                other => {
                    let other = std::str::from_utf8(other).ok()?;
                    batch.others.push(Value::String(other.to_string()));
                    MopName::Other(batch.others.len() as u32 - 1)
                }
            };
            if self.next_item(b']')? {
                return None;
            }
            let key = self.scalar(batch)?;
            if self.next_item(b']')? {
                return None;
            }
            let (val, list) = if self.peek()? == b'[' {
                self.pos += 1;
                self.skip_whitespace();
                let start = batch.elems.len() as u32;
                if self.eat(b']').is_none() {
                    loop {
                        let v = self.scalar(batch)?;
                        batch.elems.push(v);
                        if self.next_item(b']')? {
                            break;
                        }
                    }
                }
                (RawVal::Null, (start, batch.elems.len() as u32 - start))
            } else {
                (self.scalar(batch)?, (0, NOT_A_LIST))
            };
            // Exactly three elements.
            self.skip_whitespace();
            self.eat(b']')?;
            batch.mops.push(RawMop {
                name,
                key,
                val,
                list,
            });
            if self.next_item(b']')? {
                return Some(());
            }
        }
    }

    /// Skips one JSON value, validating it as serde would for the subset read here.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'n' => self.eat_literal(b"null"),
            b't' => self.eat_literal(b"true"),
            b'f' => self.eat_literal(b"false"),
            b'[' => {
                self.pos += 1;
                self.skip_whitespace();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if self.next_item(b']')? {
                        return Some(());
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                self.skip_whitespace();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.skip_whitespace();
                    self.eat(b':')?;
                    self.skip_whitespace();
                    self.skip(depth + 1)?;
                    if self.next_item(b'}')? {
                        return Some(());
                    }
                }
            }
            _ => self.int().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elle::txn::Txns;
    use crate::format::write_jsonl_line;
    use crate::op::Process;
    use proptest::prelude::*;
    use serde_json::json;

    fn jsonl(ops: &[Op]) -> Vec<u8> {
        let mut out = Vec::new();
        for op in ops {
            write_jsonl_line(op, &mut out);
        }
        out
    }

    fn summary(t: &Txns) -> String {
        (0..t.txns.len() as u32)
            .map(|i| t.txn_text(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn same_as_history(text: &[u8], shape: Shape) -> Result<(), TestCaseError> {
        // Told the input is four times longer than it is: tables sized from an estimate
        // (here too large) must not change what is read.
        let fast = read(text, shape, "t.jsonl", Some(4 * text.len() as u64));
        // A History is validated more strictly (e.g. process reuse after info); only
        // histories it accepts are compared.
        let Ok(h) =
            crate::format::read_history(text, Some(crate::format::Format::Jsonl), "t.jsonl")
        else {
            return Ok(());
        };
        let slow = Txns::from_history(&h, shape).map_err(|e| e.to_string());
        match (fast, slow) {
            (Ok(a), Ok(b)) => prop_assert_eq!(summary(&a), summary(&b)),
            (Err(a), Err(b)) => prop_assert!(a.to_string().ends_with(&b), "{} vs {}", a, b),
            (a, b) => prop_assert!(
                false,
                "fast {:?} vs history {:?}",
                a.map(|t| summary(&t)),
                b.map(|t| summary(&t))
            ),
        }
        Ok(())
    }

    #[test]
    fn lines_outside_the_fast_subset_mean_the_same() {
        let op = |p: u64, kind: OpType, v: Value| {
            let mut o = Op::invoke(Process::Client(p), "txn", v);
            o.kind = kind;
            o
        };
        let ops = vec![
            op(
                0,
                OpType::Invoke,
                json!([["append", ["anti", 1], 1], ["r", "x\ny", null]]),
            ),
            op(
                0,
                OpType::Ok,
                json!([["append", ["anti", 1], 1], ["r", "x\ny", [1.5, "é"]]]),
            ),
            op(
                1,
                OpType::Invoke,
                json!([["append", 9223372036854775807u64, -3]]),
            ),
            op(
                1,
                OpType::Ok,
                json!([["append", 9223372036854775807u64, -3]]),
            ),
        ];
        let ops: Vec<Op> = ops
            .into_iter()
            .enumerate()
            .map(|(i, mut o)| {
                o.index = i as u64;
                o
            })
            .collect();
        same_as_history(&jsonl(&ops), Shape::ListAppend).unwrap();
        let t = read(&jsonl(&ops)[..], Shape::ListAppend, "t", None).unwrap();
        assert_eq!(
            t.txn_text(0),
            "#1 p0 ok [[append [\"anti\" 1] 1] [r \"x\\ny\" [1.5 \"é\"]]]"
        );
    }

    #[test]
    fn what_distest_writes_takes_the_fast_way() {
        let mut batch = RawBatch::default();
        for line in [
            &br#"{"index":3,"time":17,"process":2,"type":"ok","f":"txn","value":[["append",5,12],["r",5,[1,2,12]],["r","k",null]]}"#[..],
            br#"{"index":4,"time":18,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2"]},"node":"n1","error":[1,"x"]}"#,
            br#" {"type":"invoke","f":"txn","process":0,"value":[[":w",1,-4]],"index":5,"key":{"a":[true,null]}} "#,
        ] {
            let mut c = Cursor { bytes: line, pos: 0 };
            assert!(c.raw_op(&mut batch, 0).is_some(), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(batch.ops.len(), 3);
        assert_eq!(batch.mops_of(&batch.ops[0]).len(), 3);
        assert!(!batch.ops[1].txn && batch.ops[1].process.is_none());
        assert_eq!(batch.mops_of(&batch.ops[2])[0].val, RawVal::Int(-4));
        // Outside the subset: an escape, a float, a repeated field, a number for node.
        for line in [
            &br#"{"index":0,"process":0,"type":"ok","f":"txn","value":[["r","a"b",null]]}"#[..],
            br#"{"index":0,"process":0,"type":"ok","f":"txn","value":[["w",1,1.0]]}"#,
            br#"{"index":0,"index":1,"process":0,"type":"ok","f":"txn","value":[]}"#,
            br#"{"index":0,"process":0,"type":"ok","f":"txn","value":[],"node":3}"#,
        ] {
            let mut c = Cursor {
                bytes: line,
                pos: 0,
            };
            assert!(
                c.raw_op(&mut batch, 0).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn errors_name_the_line() {
        let text = b"{\"index\":0,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",1,1]]}\n\n{\"index\":1,\"time\":0,\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"cas\",1,1]]}\n";
        let err = read(&text[..], Shape::ListAppend, "h.jsonl", None)
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("h.jsonl:3: "), "{err}");
        let text = b"{\"index\":0,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",1,1]]}\n{\"index\":3}\n";
        let err = read(&text[..], Shape::ListAppend, "h.jsonl", None)
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("h.jsonl:2: "), "{err}");
    }

    /// JSON-ish values, often in the fast subset, sometimes not.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            (0u64..20).prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            prop::sample::select(vec!["x", "append", "r", "w", ":r", "é", "a\"b", ""])
                .prop_map(Value::from),
            (-1.0e3f64..1.0e3).prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn mop() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["append", "r", "w", ":append", "cas"]),
            prop_oneof![(0i64..3).prop_map(Value::from), value()],
            prop_oneof![
                (0i64..9).prop_map(Value::from),
                prop::collection::vec((0i64..9).prop_map(Value::from), 0..4).prop_map(Value::Array),
                value()
            ],
        )
            .prop_map(|(n, k, v)| json!([n, k, v]))
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Whatever the lines hold, the fast reader and `from_history` agree.
        #[test]
        fn the_fast_reader_agrees_with_the_history_path(
            txns in prop::collection::vec((0u64..3, 0u8..4, prop::collection::vec(mop(), 0..3), value()), 0..8),
            shape in prop::sample::select(vec![Shape::ListAppend, Shape::RwRegister]),
        ) {
            let mut ops = Vec::new();
            for (p, outcome, mops, other) in txns {
                let f = if outcome == 3 { "read" } else { "txn" };
                let value = if outcome == 3 { other } else { Value::Array(mops) };
                let mut o = Op::invoke(Process::Client(p), f, value.clone());
                ops.push(o.clone());
                o.kind = [OpType::Ok, OpType::Fail, OpType::Info, OpType::Ok][outcome as usize];
                ops.push(o);
            }
            for (i, o) in ops.iter_mut().enumerate() {
                o.index = i as u64;
            }
            same_as_history(&jsonl(&ops), shape)?;
        }
    }
}
