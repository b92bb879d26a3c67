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

/// Where a first pass without hints starts handing out fresh process ids.
const FIRST_PASS_SYNTHETIC: u64 = 1 << 62;

/// Where an import sends the ops it normalised, one by one with their file lines.
pub(crate) type Sink<'k> = dyn FnMut(Op, usize) -> Result<(), ParseError> + Send + 'k;

/// Collects imported ops with their file lines. Whole histories are normalised at the
/// end ([`Importer::finish`]); a stream ([`Importer::streaming`]) is normalised and
/// handed on at each [`Importer::flush`], so nothing but one window is ever held.
pub(crate) struct Importer<'s> {
    source_name: &'s str,
    ops: Vec<Op>,
    /// Per op: the file line it starts on and what it gave.
    meta: Vec<(usize, Presence)>,
    stream: Option<(Rules, &'s mut Sink<'s>)>,
    /// What the ops handed on so far gave (see [`ImportHints`]).
    seen: ImportHints,
    /// The input's size, when known and not yet used to size `ops`.
    size_bytes: Option<u64>,
    /// What the ops collected gave, kept up as they come (a pass over a long history's
    /// ops at the end to find it out cost as much as the pass itself).
    given: Given,
}

/// What the ops of an [`Importer`] gave: whether any needs an import rule, and the hints.
#[derive(Clone, Copy, Debug)]
struct Given {
    /// Every op gave `:time`, `:process` and `:f`: the rules change nothing.
    all: bool,
    hints: ImportHints,
}

impl Default for Given {
    fn default() -> Self {
        Given {
            all: true,
            hints: ImportHints::default(),
        }
    }
}

impl Given {
    fn note(&mut self, process: Process, has: Presence) {
        self.all &= has.time && has.process && has.f;
        self.hints.missing_f |= !has.f;
        if let (true, Process::Client(p)) = (has.process, process) {
            self.hints.max_client = Some(self.hints.max_client.map_or(p, |m| m.max(p)));
        }
    }

    fn merge(&mut self, other: Given) {
        self.all &= other.all;
        self.hints.missing_f |= other.hints.missing_f;
        self.hints.max_client = match (self.hints.max_client, other.hints.max_client) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What a streaming import must know of the whole file beforehand (a first pass finds
/// it): the largest client process given, after which fresh ids are handed out, and
/// whether some op lacks `:f`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportHints {
    pub max_client: Option<u64>,
    pub missing_f: bool,
}

impl<'s> Importer<'s> {
    pub(crate) fn new(source_name: &'s str) -> Importer<'s> {
        Importer {
            source_name,
            ops: Vec::new(),
            meta: Vec::new(),
            stream: None,
            seen: ImportHints::default(),
            size_bytes: None,
            given: Given::default(),
        }
    }

    /// A whole-history importer for an input of `size_bytes` (when known): see
    /// [`Importer::reserve_for_input`].
    pub(crate) fn sized(source_name: &'s str, size_bytes: Option<u64>) -> Importer<'s> {
        Importer {
            size_bytes,
            ..Importer::new(source_name)
        }
    }

    /// Once the ops of the first `consumed_bytes` of the input are in: room for the ops
    /// of the whole input (see [`super::read_history_sized`]).
    pub(crate) fn reserve_for_input(&mut self, consumed_bytes: u64) {
        if self.ops.is_empty() {
            return;
        }
        if let Some(size_bytes) = self.size_bytes.take() {
            let consumed_bytes = usize::try_from(consumed_bytes).unwrap_or(usize::MAX);
            super::reserve_for_input(&mut self.ops, consumed_bytes, size_bytes);
            super::reserve_for_input(&mut self.meta, consumed_bytes, size_bytes);
        }
    }

    /// Room for `additional` more ops.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.ops.reserve(additional);
        self.meta.reserve(additional);
    }

    /// An importer that hands each op on to `sink` at every [`Importer::flush`].
    /// Without `hints` (a first pass), fresh process ids are drawn from far above any
    /// real one, which keeps ops in the same places but numbers them differently.
    pub(crate) fn streaming(
        source_name: &'s str,
        hints: Option<ImportHints>,
        sink: &'s mut Sink<'s>,
    ) -> Result<Importer<'s>, ParseError> {
        let hints = hints.unwrap_or(ImportHints {
            max_client: Some(FIRST_PASS_SYNTHETIC - 1),
            missing_f: true,
        });
        let rules = Rules::new(source_name, hints)?;
        Ok(Importer {
            stream: Some((rules, sink)),
            ..Importer::new(source_name)
        })
    }

    pub(crate) fn source_name(&self) -> &'s str {
        self.source_name
    }

    /// Adds an op; its index becomes its position here (what [`Self::finish`] numbers
    /// it when no rule adds ops).
    pub(crate) fn push(&mut self, mut op: Op, line: usize, has: Presence) {
        op.index = self.ops.len() as u64;
        self.given.note(op.process, has);
        self.ops.push(op);
        self.meta.push((line, has));
    }

    /// Adds the op `fill` writes into a fresh invocation placeholder, built where it is
    /// kept (an op is large: building it elsewhere and moving it in cost a copy per op).
    /// When `fill` fails, nothing is added.
    pub(crate) fn push_with<E>(
        &mut self,
        line: usize,
        fill: impl FnOnce(&mut Op) -> Result<Presence, E>,
    ) -> Result<(), E> {
        let mut placeholder = Op::invoke(Process::Client(0), String::new(), Value::Null);
        placeholder.index = self.ops.len() as u64;
        self.ops.push(placeholder);
        let op = self.ops.last_mut().expect("an op was just pushed");
        match fill(op) {
            Ok(has) => {
                self.given.note(op.process, has);
                self.meta.push((line, has));
                Ok(())
            }
            Err(e) => {
                self.ops.pop();
                Err(e)
            }
        }
    }

    /// Moves all ops of `other` after this importer's, leaving `other` empty (its memory
    /// stays, for reuse).
    pub(crate) fn append(&mut self, other: &mut Importer<'_>) {
        let offset = self.ops.len() as u64;
        for op in &mut other.ops {
            op.index += offset;
        }
        self.ops.append(&mut other.ops);
        self.meta.append(&mut other.meta);
        self.given.merge(std::mem::take(&mut other.given));
    }

    pub(crate) fn clear(&mut self) {
        self.ops.clear();
        self.meta.clear();
        self.given = Given::default();
    }

    /// A streaming importer normalises what it holds and hands it on; a whole-history
    /// one keeps collecting.
    pub(crate) fn flush(&mut self) -> Result<(), ParseError> {
        let Some((rules, sink)) = &mut self.stream else {
            return Ok(());
        };
        for (op, (line, has)) in self.ops.drain(..).zip(self.meta.drain(..)) {
            if let (true, Process::Client(p)) = (has.process, op.process) {
                self.seen.max_client = Some(self.seen.max_client.map_or(p, |m| m.max(p)));
            }
            self.seen.missing_f |= !has.f;
            rules.apply(op, line, has, &mut **sink)?;
        }
        Ok(())
    }

    /// Ends a streaming import (after its last [`Self::flush`]): what the ops handed on
    /// gave, the hints a second pass needs.
    pub(crate) fn end_stream(mut self) -> Result<ImportHints, ParseError> {
        if let Some((rules, _)) = &mut self.stream {
            rules.end()?;
        }
        Ok(self.seen)
    }

    /// What the ops collected gave, as [`Importer::streaming`] takes it from a first
    /// pass.
    pub(crate) fn hints(&self) -> ImportHints {
        self.given.hints
    }

    /// Applies the rules of the module doc to every op collected and validates the
    /// result.
    pub(crate) fn finish(mut self) -> Result<History, ParseError> {
        let hints = self.hints();
        let mut rules = Rules::new(self.source_name, hints)?;
        let source_name = self.source_name;
        let meta = std::mem::take(&mut self.meta);
        let invalid_at = |error| {
            let lines: Vec<usize> = meta.iter().map(|(line, _)| *line).collect();
            super::invalid_at(source_name, &lines, error)
        };
        if self.given.all {
            // Every op gave all the rules fill in, and is numbered by its place already
            // (see `push`): nothing to do but validate.
            return History::numbered(std::mem::take(&mut self.ops)).map_err(invalid_at);
        }
        if meta.iter().all(|(_, has)| has.process) {
            // No op needs a synthetic invocation: every op keeps its place, so the rules
            // apply where the ops are (no second copy of a long history).
            for (i, (op, &(line, has))) in self.ops.iter_mut().zip(&meta).enumerate() {
                rules.fill(op, line, has)?;
                op.index = i as u64;
            }
            return History::numbered(std::mem::take(&mut self.ops)).map_err(invalid_at);
        }
        let mut ops = Vec::with_capacity(self.ops.len());
        let mut lines = Vec::with_capacity(self.ops.len());
        let mut keep = |op: Op, line: usize| {
            ops.push(op);
            lines.push(line);
            Ok(())
        };
        for (op, (line, has)) in self.ops.drain(..).zip(meta) {
            rules.apply(op, line, has, &mut keep)?;
        }
        rules.end()?;
        History::new(ops).map_err(|error| super::invalid_at(self.source_name, &lines, error))
    }
}

/// The import rules, applied op by op in file order (see the module doc).
pub(crate) struct Rules {
    source_name: String,
    next_synthetic: u64,
    /// Inferring a completion's f from its invocation costs a clone per invocation:
    /// only done when some op lacks :f.
    infer_f: bool,
    pending_f: HashMap<Process, String>,
    prev_time_ns: u64,
    next_index: u64,
    /// An invocation without `:process` (already given a fresh one) and its line: the
    /// next op must be its completion.
    held: Option<(Op, usize)>,
}

impl Rules {
    fn new(source_name: &str, hints: ImportHints) -> Result<Rules, ParseError> {
        let next_synthetic = match hints.max_client {
            None => 0,
            Some(p) => p.checked_add(1).ok_or_else(|| {
                syntax(
                    source_name,
                    1,
                    "process ids reach u64::MAX, so no fresh id is left for ops without :process",
                )
            })?,
        };
        Ok(Rules {
            source_name: source_name.to_string(),
            next_synthetic,
            infer_f: hints.missing_f,
            pending_f: HashMap::new(),
            prev_time_ns: 0,
            next_index: 0,
            held: None,
        })
    }

    /// Normalises `op` (from file line `line`) and hands it to `emit`, after the
    /// synthetic invocation it may need; indices are dense from 0 in emitted order.
    fn apply(
        &mut self,
        mut op: Op,
        line: usize,
        has: Presence,
        emit: &mut Sink<'_>,
    ) -> Result<(), ParseError> {
        if let Some((invoke, invoke_line)) = self.held.take() {
            // The op before was an invocation without :process: this must be its
            // completion, also without one.
            if has.process || !op.kind.is_completion() {
                return Err(self.unpaired(invoke_line));
            }
            op.process = invoke.process;
            if !has.f {
                op.f = invoke.f.clone();
            }
            self.emit(invoke, invoke_line, emit)?;
            let has = Presence {
                process: true,
                f: true,
                ..has
            };
            self.fill(&mut op, line, has)?;
            return self.emit(op, line, emit);
        }
        self.fill(&mut op, line, has)?;
        if has.process {
            return self.emit(op, line, emit);
        }
        op.process = Process::Client(self.next_synthetic);
        self.next_synthetic = self.next_synthetic.checked_add(1).ok_or_else(|| {
            syntax(
                &self.source_name,
                line,
                "too many ops without :process to give each a fresh id",
            )
        })?;
        if op.is_invoke() {
            self.held = Some((op, line));
            return Ok(());
        }
        // Lone completions (Elle's tests) get an invocation right before them.
        let invoke = Op {
            kind: OpType::Invoke,
            error: None,
            ..op.clone()
        };
        self.emit(invoke, line, emit)?;
        self.emit(op, line, emit)
    }

    /// Numbers `op` and hands it on.
    fn emit(&mut self, mut op: Op, line: usize, emit: &mut Sink<'_>) -> Result<(), ParseError> {
        op.index = self.next_index;
        self.next_index += 1;
        emit(op, line)
    }

    /// After the last op: an invocation without `:process` still waiting for its
    /// completion has none.
    fn end(&mut self) -> Result<(), ParseError> {
        match self.held.take() {
            Some((_, line)) => Err(self.unpaired(line)),
            None => Ok(()),
        }
    }

    fn unpaired(&self, line: usize) -> ParseError {
        syntax(
            &self.source_name,
            line,
            "an invocation has no :process and is not directly followed by its completion (also without :process), so nothing says which completion is its own; give every invocation a :process",
        )
    }

    /// Fills in `op`'s time and f where it is (not its process or index).
    fn fill(&mut self, op: &mut Op, line: usize, has: Presence) -> Result<(), ParseError> {
        if !has.time {
            op.time = self.prev_time_ns;
        }
        self.prev_time_ns = op.time;
        if !has.f {
            let from_invoke = match (has.process, op.kind) {
                (true, kind) if kind.is_completion() => self.pending_f.get(&op.process).cloned(),
                _ => None,
            };
            match from_invoke.or_else(|| looks_like_txn(&op.value).then(|| "txn".to_string())) {
                Some(f) => op.f = f,
                None => {
                    return Err(syntax(
                        &self.source_name,
                        line,
                        "the op has no :f and its value is not a list of micro-ops such as [[:append 1 2] [:r 1 nil]]; add :f to every op",
                    ))
                }
            }
        }
        if self.infer_f && has.process && op.is_client() {
            if op.is_invoke() {
                self.pending_f.insert(op.process, op.f.clone());
            } else {
                self.pending_f.remove(&op.process);
            }
        }
        Ok(())
    }
}

fn syntax(source_name: &str, line: usize, message: impl Into<String>) -> ParseError {
    ParseError::Syntax {
        source_name: source_name.to_string(),
        line,
        message: message.into(),
    }
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
