//! Shared helpers of the `linearizable_*` tests: a compact history builder.

#![allow(dead_code)] // each test file uses a different subset

pub mod gen;
#[path = "../online_support/mod.rs"]
pub mod online_support;
pub mod porcupine;

use distest_checkers::linear::{check_history, ModelKind};
use distest_checkers::{CheckContext, History, Op, OpType, Process, Validity, Verdict};
use serde_json::Value;
use std::collections::HashMap;

/// Builds a history op by op; completions repeat their invocation's `f` (and key).
#[derive(Default)]
pub struct Hist {
    ops: Vec<Op>,
    pending: HashMap<Process, usize>,
}

impl Hist {
    pub fn new() -> Hist {
        Hist::default()
    }

    fn push(mut self, op: Op) -> Hist {
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            time: index * 1_000,
            ..op
        });
        self
    }

    /// Process `p` invokes `f` with `value`.
    pub fn invoke(mut self, p: u64, f: &str, value: Value) -> Hist {
        self.pending.insert(Process::Client(p), self.ops.len());
        self.push(Op::invoke(Process::Client(p), f, value))
    }

    /// Like [`Self::invoke`], on key `key`.
    pub fn invoke_key(mut self, p: u64, key: Value, f: &str, value: Value) -> Hist {
        self.pending.insert(Process::Client(p), self.ops.len());
        self.push(Op::invoke(Process::Client(p), f, value).with_key(key))
    }

    fn complete(mut self, p: u64, kind: OpType, value: Value) -> Hist {
        let at = self
            .pending
            .remove(&Process::Client(p))
            .unwrap_or_else(|| panic!("test bug: p{p} has nothing in flight"));
        let done = self.ops[at].complete(kind, value);
        self.push(done)
    }

    pub fn ok(self, p: u64, value: Value) -> Hist {
        self.complete(p, OpType::Ok, value)
    }

    pub fn info(self, p: u64, value: Value) -> Hist {
        self.complete(p, OpType::Info, value)
    }

    pub fn fail(self, p: u64, value: Value) -> Hist {
        self.complete(p, OpType::Fail, value)
    }

    /// An invocation and its `ok` completion, back to back.
    pub fn call(self, p: u64, f: &str, input: Value, output: Value) -> Hist {
        self.invoke(p, f, input).ok(p, output)
    }

    /// A nemesis op (recorded as info), which the checker must ignore.
    pub fn nemesis(self, f: &str, value: Value) -> Hist {
        self.push(Op {
            kind: OpType::Info,
            ..Op::invoke(Process::Nemesis, f, value)
        })
    }

    pub fn build(self) -> History {
        History::new(self.ops).expect("test histories are well formed")
    }
}

/// Checks `history` under the model called `model` with default limits, offline and
/// online (which must agree; see `online_support`).
pub fn check(history: &History, model: &str) -> Verdict {
    let kind = ModelKind::from_name(model).expect("test uses a known model");
    let offline = check_history(history, kind, &CheckContext::default());
    let checker = Box::new(distest_checkers::linear::Linearizable::new(kind));
    let verdict = online_support::checked(checker, history);
    assert_eq!(verdict, offline);
    offline
}

/// Asserts the verdict's validity, printing the verdict when it differs.
pub fn assert_validity(verdict: &Verdict, expected: Validity) {
    assert_eq!(
        verdict.valid, expected,
        "summary: {}\nexplanation:\n{}\nevidence: {:#}",
        verdict.summary, verdict.explanation, verdict.evidence
    );
}
