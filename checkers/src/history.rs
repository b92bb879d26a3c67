//! A history: ops in real-time order, validated, with invocations paired to completions.
//!
//! Pairing follows Jepsen: a process runs one op at a time, so its next op after an
//! invocation is that invocation's completion. An invocation with no completion (the run
//! ended, the client crashed) is treated exactly like an `info` completion: it may have
//! happened at any time after it was invoked.

use crate::op::{Op, OpType, Process};

/// Validation does one map lookup per op; SipHash's DoS resistance buys nothing for a
/// file the user handed us.
type ProcessMap<V> = crate::fxhash::FxMap<Process, V>;
use thiserror::Error;

/// Why a sequence of ops is not a well-formed history.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum HistoryError {
    #[error("op {index}: process {process} invoked {f:?} while its op {pending} was still in flight; a process runs one op at a time")]
    ConcurrentInvoke {
        index: u64,
        process: Process,
        f: String,
        pending: u64,
    },
    #[error("op {index}: process {process} completed {completed:?} but its pending invocation (op {invoke}) was {invoked:?}; a completion must repeat its invocation's f")]
    MismatchedF {
        index: u64,
        process: Process,
        invoked: String,
        completed: String,
        invoke: u64,
    },
    #[error("op {index}: process {process} completed an op it never invoked")]
    CompletionWithoutInvoke { index: u64, process: Process },
    #[error("op {index}: process {process} was reused after {} ended as info; after an indeterminate op a client must continue under a fresh process id", crashed_op(.crashed))]
    ReusedAfterInfo {
        index: u64,
        process: Process,
        /// The op that ended as info, when known: [`Pairing`] remembers only which
        /// processes crashed (a bit each); [`History`] looks the op up.
        crashed: Option<u64>,
    },
    #[error("op at position {position} has index {index}; distest writes dense indices from 0, so this history.jsonl was edited or cut in the middle: restore the original file")]
    SparseIndex { position: usize, index: u64 },
}

fn crashed_op(crashed: &Option<u64>) -> String {
    match crashed {
        Some(index) => format!("its op {index}"),
        None => "one of its ops".to_string(),
    }
}

/// Sentinel for "no partner" in the pairing table.
const NONE: u32 = u32::MAX;

/// A validated history. Construct with [`History::new`] (indices must be dense, as
/// distest writes them) or [`History::reindexed`] (imported histories).
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Op>,
    /// For each position: the position of the partner op (invoke ↔ completion), or NONE.
    partner: Vec<u32>,
}

/// An invocation and its completion (absent when the history ended first).
#[derive(Clone, Copy, Debug)]
pub struct Pair<'a> {
    pub invoke: &'a Op,
    pub completion: Option<&'a Op>,
}

impl<'a> Pair<'a> {
    /// The outcome, with a missing completion counted as `info`.
    pub fn outcome(&self) -> OpType {
        self.completion.map(|c| c.kind).unwrap_or(OpType::Info)
    }

    /// The value that describes what happened: the completion's for `ok`, else the invocation's.
    pub fn value(&self) -> &'a serde_json::Value {
        match self.completion {
            Some(c) if c.kind == OpType::Ok => &c.value,
            _ => &self.invoke.value,
        }
    }

    /// Completion time, `None` when indeterminate (returns at +infinity).
    pub fn complete_time(&self) -> Option<u64> {
        match self.completion {
            Some(c) if c.kind != OpType::Info => Some(c.time),
            _ => None,
        }
    }
}

/// The rules of a history, checked one op at a time: a process runs one op at a time,
/// a completion repeats its invocation's `f`, and a process whose op ended `info` is
/// never used again. [`History::new`] applies them to a whole history; online checking
/// applies them to each op as it is recorded. Nemesis ops follow no rules (it logs
/// start/stop pairs as info/info, and they may overlap).
#[derive(Clone, Debug)]
pub struct Pairing<T = usize> {
    /// process -> its in-flight invocation (a position, or whatever the caller keeps)
    in_flight: ProcessMap<T>,
    /// processes retired by an info op
    retired: RetiredIds,
}

/// The client processes retired by an `info` op, as 64-id words keyed by `id / 64`.
/// Every one must be remembered (a later op by it is an error), and a long history has
/// millions: a crashed client continues under a fresh id, and distest, like Jepsen,
/// numbers them densely, so a word holds many and a retired process costs about a bit
/// instead of a map entry of 25 bytes or more. (Sparse ids cost a word each, as before.)
#[derive(Clone, Debug, Default)]
struct RetiredIds {
    words: crate::fxhash::FxMap<u64, u64>,
}

impl RetiredIds {
    fn insert(&mut self, process: Process) {
        if let Process::Client(id) = process {
            *self.words.entry(id / 64).or_default() |= 1 << (id % 64);
        }
    }

    fn contains(&self, process: Process) -> bool {
        match process {
            Process::Client(id) => self
                .words
                .get(&(id / 64))
                .is_some_and(|word| word & (1 << (id % 64)) != 0),
            Process::Nemesis => false,
        }
    }
}

impl<T> Default for Pairing<T> {
    fn default() -> Self {
        Pairing {
            in_flight: ProcessMap::default(),
            retired: RetiredIds::default(),
        }
    }
}

impl<T: Copy> Pairing<T> {
    /// Takes the next op of the history, kept by the caller as `at`; `op_at` looks up
    /// what the caller kept for an in-flight invocation. Returns, for a client
    /// completion, its invocation's `at`.
    pub fn push<'o>(
        &mut self,
        op: &Op,
        at: T,
        op_at: impl Fn(T) -> &'o Op,
    ) -> Result<Option<T>, HistoryError> {
        if !op.is_client() {
            return Ok(None);
        }
        if self.retired.contains(op.process) {
            return Err(HistoryError::ReusedAfterInfo {
                index: op.index,
                process: op.process,
                crashed: None,
            });
        }
        if op.kind == OpType::Invoke {
            if let Some(&p) = self.in_flight.get(&op.process) {
                return Err(HistoryError::ConcurrentInvoke {
                    index: op.index,
                    process: op.process,
                    f: op.f.clone(),
                    pending: op_at(p).index,
                });
            }
            self.in_flight.insert(op.process, at);
            return Ok(None);
        }
        let Some(&inv) = self.in_flight.get(&op.process) else {
            return Err(HistoryError::CompletionWithoutInvoke {
                index: op.index,
                process: op.process,
            });
        };
        let invoke = op_at(inv);
        if invoke.f != op.f {
            return Err(HistoryError::MismatchedF {
                index: op.index,
                process: op.process,
                invoked: invoke.f.clone(),
                completed: op.f.clone(),
                invoke: invoke.index,
            });
        }
        self.in_flight.remove(&op.process);
        if op.kind == OpType::Info {
            self.retired.insert(op.process);
        }
        Ok(Some(inv))
    }

    /// The invocations still in flight, in no particular order.
    pub fn in_flight(&self) -> impl Iterator<Item = T> + '_ {
        self.in_flight.values().copied()
    }
}

impl History {
    /// Validates `ops` as a distest history: dense indices from 0 plus [`Self::validate`] rules.
    pub fn new(ops: Vec<Op>) -> Result<History, HistoryError> {
        if let Some((position, op)) = ops.iter().enumerate().find(|(i, op)| op.index != *i as u64) {
            return Err(HistoryError::SparseIndex {
                position,
                index: op.index,
            });
        }
        Self::build(ops)
    }

    /// For ops their reader numbered densely from 0 as it collected them: validates
    /// without a first pass over the indices (a pass over a long history's memory).
    pub(crate) fn numbered(ops: Vec<Op>) -> Result<History, HistoryError> {
        debug_assert!(
            ops.iter().enumerate().all(|(i, op)| op.index == i as u64),
            "the reader numbers its ops densely from 0"
        );
        Self::build(ops)
    }

    /// For imported histories: keeps the order, renumbers `index` densely from 0, validates.
    pub fn reindexed(mut ops: Vec<Op>) -> Result<History, HistoryError> {
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        Self::build(ops)
    }

    /// For a subsequence of a valid history (one key's ops, say): keeps every op's
    /// `index` as it is, which must only grow, and validates the rest.
    pub fn subsequence(ops: Vec<Op>) -> Result<History, HistoryError> {
        if let Some(position) = (1..ops.len()).find(|&i| ops[i].index <= ops[i - 1].index) {
            return Err(HistoryError::SparseIndex {
                position,
                index: ops[position].index,
            });
        }
        Self::build(ops)
    }

    fn build(ops: Vec<Op>) -> Result<History, HistoryError> {
        assert!(
            ops.len() < NONE as usize,
            "histories are limited to 4 billion ops"
        );
        let mut partner = vec![NONE; ops.len()];
        let mut pairing = Pairing::default();
        for (pos, op) in ops.iter().enumerate() {
            let paired = pairing.push(op, pos, |p| &ops[p]).map_err(|e| match e {
                // The process's last op before this one is the info that retired it.
                HistoryError::ReusedAfterInfo { index, process, .. } => {
                    HistoryError::ReusedAfterInfo {
                        index,
                        process,
                        crashed: ops[..pos]
                            .iter()
                            .rev()
                            .find(|o| o.process == process)
                            .map(|o| o.index),
                    }
                }
                other => other,
            })?;
            if let Some(inv) = paired {
                partner[inv] = pos as u32;
                partner[pos] = inv as u32;
            }
        }
        Ok(History { ops, partner })
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn get(&self, position: usize) -> Option<&Op> {
        self.ops.get(position)
    }

    /// The position of the op paired with the op at `position` (invoke ↔ completion).
    pub fn partner(&self, position: usize) -> Option<usize> {
        match self.partner.get(position) {
            Some(&p) if p != NONE => Some(p as usize),
            _ => None,
        }
    }

    /// Client invocations with their completions, in invocation order. Nemesis ops are skipped.
    pub fn pairs(&self) -> impl Iterator<Item = Pair<'_>> + '_ {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.is_client() && op.is_invoke())
            .map(move |(pos, op)| Pair {
                invoke: op,
                completion: self.partner(pos).map(|c| &self.ops[c]),
            })
    }

    /// Ops of the nemesis, in order.
    pub fn nemesis_ops(&self) -> impl Iterator<Item = &Op> + '_ {
        self.ops.iter().filter(|op| !op.is_client())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, f: &str, value: serde_json::Value) -> Op {
        Op {
            index,
            time: index * 10,
            process: Process::Client(process),
            kind,
            f: f.into(),
            value,
            key: None,
            node: None,
            error: None,
        }
    }

    #[test]
    fn pairs_invocations_with_completions_and_missing_is_info() {
        let h = History::new(vec![
            op(0, 0, OpType::Invoke, "write", json!(1)),
            op(1, 1, OpType::Invoke, "read", json!(null)),
            op(2, 0, OpType::Ok, "write", json!(1)),
            op(3, 1, OpType::Ok, "read", json!(1)),
            op(4, 0, OpType::Invoke, "write", json!(2)),
        ])
        .unwrap();
        let pairs: Vec<_> = h.pairs().collect();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0].outcome(), OpType::Ok);
        assert_eq!(pairs[1].value(), &json!(1));
        assert_eq!(pairs[2].outcome(), OpType::Info);
        assert_eq!(pairs[2].complete_time(), None);
    }

    #[test]
    fn rejects_two_ops_in_flight_for_one_process() {
        let err = History::new(vec![
            op(0, 0, OpType::Invoke, "write", json!(1)),
            op(1, 0, OpType::Invoke, "read", json!(null)),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            HistoryError::ConcurrentInvoke { index: 1, .. }
        ));
    }

    #[test]
    fn rejects_mismatched_f_and_reuse_after_info() {
        let err = History::new(vec![
            op(0, 0, OpType::Invoke, "write", json!(1)),
            op(1, 0, OpType::Ok, "read", json!(1)),
        ])
        .unwrap_err();
        assert!(matches!(err, HistoryError::MismatchedF { .. }), "{err}");
        let err = History::new(vec![
            op(0, 0, OpType::Invoke, "write", json!(1)),
            op(1, 0, OpType::Info, "write", json!(1)),
            op(2, 0, OpType::Invoke, "write", json!(2)),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            HistoryError::ReusedAfterInfo {
                index: 2,
                process: Process::Client(0),
                crashed: Some(1)
            }
        );
        assert!(
            err.to_string().contains("after its op 1 ended as info"),
            "{err}"
        );
    }

    #[test]
    fn pairing_remembers_every_retired_process_in_about_a_bit_each() {
        // 100,000 crashed clients with dense ids, as a long run leaves them: each
        // reuse is still caught, in 1,563 words.
        let mut pairing = Pairing::<u64>::default();
        // Every pending invocation is a write: what `op_at` hands back for any of them.
        let write = op(0, 0, OpType::Invoke, "write", json!(1));
        let mut index = 0;
        for p in 0..100_000 {
            for kind in [OpType::Invoke, OpType::Info] {
                let o = op(index, p, kind, "write", json!(1));
                pairing.push(&o, index, |_| &write).unwrap();
                index += 1;
            }
        }
        assert_eq!(pairing.retired.words.len(), 100_000_usize.div_ceil(64));
        for p in [0, 63, 64, 99_999] {
            let again = op(index, p, OpType::Invoke, "read", json!(null));
            let err = pairing.push(&again, index, |_| &write).unwrap_err();
            assert!(
                matches!(err, HistoryError::ReusedAfterInfo { crashed: None, .. }),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains("after one of its ops ended as info"),
                "{err}"
            );
        }
        let fresh = op(index, 100_000, OpType::Invoke, "read", json!(null));
        assert_eq!(pairing.push(&fresh, index, |_| &write), Ok(None));
    }

    #[test]
    fn sparse_indices_are_rejected_but_reindexing_fixes_them() {
        let ops = vec![
            op(5, 0, OpType::Invoke, "write", json!(1)),
            op(9, 0, OpType::Ok, "write", json!(1)),
        ];
        assert!(matches!(
            History::new(ops.clone()),
            Err(HistoryError::SparseIndex { .. })
        ));
        let h = History::reindexed(ops).unwrap();
        assert_eq!(h.ops()[1].index, 1);
    }
}
