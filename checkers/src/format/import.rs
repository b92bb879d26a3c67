//! Import normalisation shared by the Jepsen readers (EDN and text logs).
//!
//! Jepsen and Elle histories are looser than distest's own: hand-written test histories
//! omit `:time`, `:process`, even `:f`; filtered ones have gaps in `:index`. This module
//! turns them into a valid [`History`] by rules a reviewer can predict, and refuses (with
//! the file line) when no rule applies rather than guessing:
//!
//! - order is kept; `index` is renumbered densely from 0 ([`History::reindexed`]);
//! - a missing `:time` (or `nil`, or jepsen.history's `-1` for unknown) is the previous
//!   op's time (0 at the start), so time stays monotone;
//! - a missing `:f` is the pending invocation's `f` for a completion of a known process,
//!   else `txn` when the value is a list of micro-ops (`[[:append 1 2] [:r 1 nil]]`, as in
//!   Elle's tests), else an error;
//! - a completion without `:process` (Elle's tests list lone completions) gets a fresh
//!   process and a synthetic invocation right before it, with the same `f`, value and time;
//! - an invocation without `:process` directly followed by a completion without
//!   `:process` (Elle's `histories/paper-example.edn`) is one operation: both get the same
//!   fresh process; any other invocation without `:process` is an error, since nothing
//!   says which completion is its own.

use super::ParseError;
use crate::history::History;
use crate::op::{Op, OpType, Process};
use serde_json::Value;
use std::collections::HashMap;

/// Which optional op fields the file gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Presence {
    pub time: bool,
    pub process: bool,
    pub f: bool,
}

/// Collects imported ops with their file lines, then normalises them.
pub(crate) struct Importer<'s> {
    source_name: &'s str,
    ops: Vec<Op>,
    /// Per op: the file line it starts on and what it gave.
    meta: Vec<(usize, Presence)>,
}

impl<'s> Importer<'s> {
    pub(crate) fn new(source_name: &'s str) -> Importer<'s> {
        Importer {
            source_name,
            ops: Vec::new(),
            meta: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, op: Op, line: usize, has: Presence) {
        self.ops.push(op);
        self.meta.push((line, has));
    }

    /// Moves all ops of `other` after this importer's, leaving `other` empty (its memory
    /// stays, for reuse).
    pub(crate) fn append(&mut self, other: &mut Importer<'_>) {
        self.ops.append(&mut other.ops);
        self.meta.append(&mut other.meta);
    }

    pub(crate) fn clear(&mut self) {
        self.ops.clear();
        self.meta.clear();
    }

    fn syntax(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            source_name: self.source_name.to_string(),
            line,
            message: message.into(),
        }
    }

    /// Applies the rules of the module doc and validates the result.
    pub(crate) fn finish(mut self) -> Result<History, ParseError> {
        let max_client = self
            .ops
            .iter()
            .zip(&self.meta)
            .filter_map(|(op, (_, has))| match op.process {
                Process::Client(p) if has.process => Some(p),
                _ => None,
            })
            .max();
        let mut next_synthetic = match max_client {
            None => 0,
            Some(p) => p.checked_add(1).ok_or_else(|| {
                self.syntax(
                    1,
                    "process ids reach u64::MAX, so no fresh id is left for ops without :process",
                )
            })?,
        };
        // Inferring a completion's f from its invocation costs a clone per invocation:
        // only done when some op lacks :f.
        let infer_f = self.meta.iter().any(|(_, has)| !has.f);
        let mut pending_f: HashMap<Process, String> = HashMap::new();
        let mut prev_time_ns = 0u64;
        let mut synthetic_count = 0usize;
        // Completions paired with the process-less invocation right before them.
        let mut paired = vec![false; self.ops.len()];
        for i in 0..self.ops.len() {
            let (line, has) = self.meta[i];
            if !has.process && paired[i] {
                // Takes its invocation's process and, when missing, its f.
                let (process, f) = (self.ops[i - 1].process, self.ops[i - 1].f.clone());
                let op = &mut self.ops[i];
                op.process = process;
                if !has.time {
                    op.time = prev_time_ns;
                }
                prev_time_ns = op.time;
                if !has.f {
                    op.f = f;
                }
                continue;
            }
            let pairs_with_next = !has.process
                && self.ops[i].is_invoke()
                && self
                    .ops
                    .get(i + 1)
                    .is_some_and(|next| next.kind.is_completion())
                && self.meta.get(i + 1).is_some_and(|(_, next)| !next.process);
            let op = &mut self.ops[i];
            if !has.time {
                op.time = prev_time_ns;
            }
            prev_time_ns = op.time;
            if !has.f {
                let from_invoke = match (has.process, op.kind) {
                    (true, kind) if kind.is_completion() => pending_f.get(&op.process).cloned(),
                    _ => None,
                };
                match from_invoke.or_else(|| looks_like_txn(&op.value).then(|| "txn".to_string())) {
                    Some(f) => op.f = f,
                    None => {
                        return Err(self.syntax(
                            line,
                            "the op has no :f and its value is not a list of micro-ops such as [[:append 1 2] [:r 1 nil]]; add :f to every op",
                        ))
                    }
                }
            }
            if infer_f && has.process && op.is_client() {
                if op.is_invoke() {
                    pending_f.insert(op.process, op.f.clone());
                } else {
                    pending_f.remove(&op.process);
                }
            }
            if !has.process {
                if op.is_invoke() && !pairs_with_next {
                    return Err(self.syntax(
                        line,
                        "an invocation has no :process and is not directly followed by its completion (also without :process), so nothing says which completion is its own; give every invocation a :process",
                    ));
                }
                op.process = Process::Client(next_synthetic);
                next_synthetic = next_synthetic.checked_add(1).ok_or_else(|| {
                    self.syntax(
                        line,
                        "too many ops without :process to give each a fresh id",
                    )
                })?;
                if pairs_with_next {
                    paired[i + 1] = true;
                } else {
                    synthetic_count += 1;
                }
            }
        }
        let (ops, lines) = if synthetic_count == 0 {
            let lines = self.meta.iter().map(|(line, _)| *line).collect();
            (self.ops, lines)
        } else {
            with_synthetic_invocations(self.ops, &self.meta, &paired, synthetic_count)
        };
        History::reindexed(ops).map_err(|error| super::invalid_at(self.source_name, &lines, error))
    }
}

/// Inserts an invocation right before each lone completion that had no `:process`
/// (not those paired with the invocation before them).
fn with_synthetic_invocations(
    ops: Vec<Op>,
    meta: &[(usize, Presence)],
    paired: &[bool],
    synthetic_count: usize,
) -> (Vec<Op>, Vec<usize>) {
    let mut out = Vec::with_capacity(ops.len() + synthetic_count);
    let mut lines = Vec::with_capacity(ops.len() + synthetic_count);
    for ((op, &(line, has)), &paired) in ops.into_iter().zip(meta).zip(paired) {
        if !has.process && !op.is_invoke() && !paired {
            out.push(Op {
                kind: OpType::Invoke,
                error: None,
                ..op.clone()
            });
            lines.push(line);
        }
        out.push(op);
        lines.push(line);
    }
    (out, lines)
}

/// True for Jepsen transaction values: a non-empty list of `[f key value?]` micro-ops.
fn looks_like_txn(value: &Value) -> bool {
    let Some(items) = value.as_array() else {
        return false;
    };
    !items.is_empty()
        && items.iter().all(|mop| {
            mop.as_array()
                .is_some_and(|m| (2..=3).contains(&m.len()) && m[0].is_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(process: Option<u64>, kind: OpType, f: Option<&str>, value: Value) -> (Op, Presence) {
        let mut o = Op::invoke(
            Process::Client(process.unwrap_or(0)),
            f.unwrap_or(""),
            value,
        );
        o.kind = kind;
        let has = Presence {
            time: false,
            process: process.is_some(),
            f: f.is_some(),
        };
        (o, has)
    }

    fn import(ops: Vec<(Op, Presence)>) -> Result<History, ParseError> {
        let mut imp = Importer::new("t.edn");
        for (line, (o, has)) in ops.into_iter().enumerate() {
            imp.push(o, line + 1, has);
        }
        imp.finish()
    }

    #[test]
    fn lone_completions_without_process_get_a_synthetic_invocation_and_fresh_process() {
        let h = import(vec![
            op(Some(4), OpType::Invoke, Some("read"), json!(null)),
            op(None, OpType::Ok, None, json!([["append", "x", 1]])),
            op(Some(4), OpType::Ok, Some("read"), json!(3)),
            op(None, OpType::Info, Some("write"), json!(2)),
        ])
        .unwrap();
        let ops = h.ops();
        assert_eq!(ops.len(), 6);
        assert_eq!(
            (ops[1].kind, ops[1].process),
            (OpType::Invoke, Process::Client(5))
        );
        assert_eq!((ops[2].kind, ops[2].f.as_str()), (OpType::Ok, "txn"));
        assert_eq!(ops[1].value, ops[2].value);
        assert_eq!(ops[4].process, Process::Client(6));
        assert_eq!(ops[5].f, "write");
        assert!(ops.iter().enumerate().all(|(i, o)| o.index == i as u64));
    }

    #[test]
    fn missing_f_of_a_completion_comes_from_its_invocation() {
        let h = import(vec![
            op(Some(0), OpType::Invoke, Some("cas"), json!([1, 2])),
            op(Some(0), OpType::Fail, None, json!([1, 2])),
        ])
        .unwrap();
        assert_eq!(h.ops()[1].f, "cas");
    }

    #[test]
    fn missing_f_without_a_txn_value_is_an_error_naming_the_line() {
        let err = import(vec![
            op(Some(0), OpType::Invoke, Some("read"), json!(null)),
            op(Some(1), OpType::Invoke, None, json!(5)),
        ])
        .unwrap_err();
        assert!(matches!(err, ParseError::Syntax { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("no :f"), "{err}");
    }

    #[test]
    fn invocation_without_process_is_an_error() {
        let err = import(vec![op(None, OpType::Invoke, Some("read"), json!(null))]).unwrap_err();
        assert!(err.to_string().contains("no :process"), "{err}");
        // Its completion does not follow directly: ambiguous.
        let err = import(vec![
            op(None, OpType::Invoke, Some("read"), json!(null)),
            op(Some(3), OpType::Invoke, Some("read"), json!(null)),
            op(None, OpType::Ok, Some("read"), json!(1)),
        ])
        .unwrap_err();
        assert!(matches!(err, ParseError::Syntax { line: 1, .. }), "{err}");
        // Followed by a completion that names a process: not its own.
        let err = import(vec![
            op(None, OpType::Invoke, Some("read"), json!(null)),
            op(Some(3), OpType::Ok, Some("read"), json!(1)),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("no :process"), "{err}");
    }

    #[test]
    fn invocations_directly_followed_by_their_completions_pair_up() {
        let txn = json!([["append", 253, 1], ["r", 253, null]]);
        let done = json!([["append", 253, 1], ["r", 253, [1]]]);
        let h = import(vec![
            op(None, OpType::Invoke, None, txn.clone()),
            op(None, OpType::Ok, None, done.clone()),
            op(None, OpType::Invoke, None, txn),
            op(None, OpType::Fail, None, done),
        ])
        .unwrap();
        let ops = h.ops();
        assert_eq!(ops.len(), 4, "no synthetic invocations");
        assert_eq!(ops[0].process, ops[1].process);
        assert_eq!(ops[2].process, ops[3].process);
        assert_ne!(ops[0].process, ops[2].process);
        assert!(ops.iter().all(|o| o.f == "txn"));
        assert_eq!(ops[1].kind, OpType::Ok);
    }

    #[test]
    fn missing_time_repeats_the_previous_time() {
        let mut a = op(Some(0), OpType::Invoke, Some("read"), json!(null));
        a.0.time = 70;
        a.1.time = true;
        let b = op(Some(0), OpType::Ok, Some("read"), json!(1));
        let h = import(vec![a, b]).unwrap();
        assert_eq!(h.ops()[1].time, 70);
    }

    #[test]
    fn invalid_history_names_the_file_line_of_the_bad_op() {
        let err = import(vec![
            op(Some(0), OpType::Invoke, Some("read"), json!(null)),
            op(Some(0), OpType::Invoke, Some("read"), json!(null)),
        ])
        .unwrap_err();
        assert!(
            matches!(err, ParseError::InvalidOp { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn txn_shape_needs_micro_ops() {
        assert!(looks_like_txn(&json!([["r", 1, null], ["append", 1, 2]])));
        assert!(!looks_like_txn(&json!([])));
        assert!(!looks_like_txn(&json!([1, 2])));
        assert!(!looks_like_txn(&json!([[1, 2]])));
    }
}
