//! Convergence checkers: sets, counters, unique ids, total queues and CRDT convergence.
//!
//! These judge systems that promise "what was acknowledged is never lost" and "replicas
//! agree once the faults stop", rather than linearizability. All of them are pure and
//! O(n log n) or close to it in the history length.
//!
//! # Op shapes
//!
//! | checker | f | invocation value | `ok` completion value |
//! |---|---|---|---|
//! | `set` | `add` | the element | ignored |
//! | `set` | `read` | `null`, or `{"final": true}` | list of elements |
//! | `counter` | `add` | integer delta (may be negative) | ignored |
//! | `counter` | `read` | `null` | integer |
//! | `unique-ids` | `generate` | `null` | the id |
//! | `total-queue` | `enqueue` | the value | ignored |
//! | `total-queue` | `dequeue` | `null` | the value, or `null` / `[]` when the queue was empty |
//! | `total-queue` | `drain` | `null` | list of every value dequeued |
//! | `crdt-convergence` | see [`crdt`] | | |
//!
//! **Final reads** are the reads a workload performs on every node after the final heal
//! and a quiescence window: `f = "read"` with the invocation value `{"final": true}`, or
//! `f = "final-read"`. The node read is the op's `node` field (the *replica*).
//!
//! **Keys**: ops carrying a `key` (Jepsen's independent keys) are judged per key; the
//! verdicts of all keys are composed with [`Validity::meet`] and the evidence is then
//! `{"by_key": {key: {valid, summary, anomalies?, evidence?}}, "keys_not_listed"?: n}`,
//! with anomalies and evidence only for keys that are not valid, and at most
//! [`KEYS_LISTED`] keys of each verdict listed (the first in key order; the summary
//! counts them all).
//!
//! **Evidence** names ops by their history `index` (fields named `index`, or ending in
//! `_index` / `_indices`) so the report can link to them; lists are capped at
//! [`EVIDENCE_LIST_CAP`] entries and every capped list has a `_count` field (or, for
//! `problems`, `problem_count`) with the full size.
//!
//! Ops whose values do not have the shape above are counted as malformed: they never
//! make a history invalid on their own, but a checker that could not judge some ops
//! says `unknown` instead of `valid`.

pub mod counter;
pub mod crdt;
pub(crate) mod online;
pub mod set;
pub mod total_queue;
pub mod unique_ids;

use crate::history::{History, Pair};
use crate::op::{Op, OpType};
use crate::verdict::{Validity, Verdict};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Longest list of examples any evidence field holds; the full count is reported beside it.
pub const EVIDENCE_LIST_CAP: usize = 32;

/// A JSON value usable as a map key. Integers sort numerically and before everything
/// else (element ids are usually integers); other values compare by their JSON text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Elem {
    Int(i64),
    Json(String),
}

impl Elem {
    pub fn of(value: &Value) -> Elem {
        match value.as_i64() {
            Some(i) => Elem::Int(i),
            None => Elem::Json(value.to_string()),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Elem::Int(i) => json!(i),
            // The text came from serializing a Value, so it parses back.
            Elem::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Int(i) => write!(f, "{i}"),
            Elem::Json(s) => f.write_str(s),
        }
    }
}

/// Whether `pair` is a final read (see the module docs).
pub fn is_final_read(pair: &Pair<'_>) -> bool {
    pair.invoke.f == "final-read"
        || (pair.invoke.f == "read" && pair.invoke.value.get("final") == Some(&Value::Bool(true)))
}

/// Whether `pair` reads state: `read` or `final-read`.
pub fn is_read(pair: &Pair<'_>) -> bool {
    pair.invoke.f == "read" || pair.invoke.f == "final-read"
}

/// The completion value of an `ok` op, `None` for any other outcome.
pub fn ok_value<'a>(pair: &Pair<'a>) -> Option<&'a Value> {
    match pair.completion {
        Some(c) if c.kind == OpType::Ok => Some(&c.value),
        _ => None,
    }
}

/// The completion's index when the op definitely ended (`ok` or `fail`), else `None`.
pub fn end_index(pair: &Pair<'_>) -> Option<u64> {
    match pair.completion {
        Some(c) if c.kind != OpType::Info => Some(c.index),
        _ => None,
    }
}

/// The index that names a pair in evidence: its completion if any, else its invocation.
pub fn op_index(pair: &Pair<'_>) -> u64 {
    pair.completion.unwrap_or(pair.invoke).index
}

/// The replica an op talked to, `"?"` when the history does not say.
pub fn replica<'a>(pair: &Pair<'a>) -> &'a str {
    pair.invoke
        .node
        .as_deref()
        .or(pair.completion.and_then(|c| c.node.as_deref()))
        .unwrap_or("?")
}

/// Ops a checker could not interpret, with a few examples for the report.
#[derive(Debug, Default)]
pub struct Malformed {
    pub count: usize,
    examples: Vec<Value>,
}

impl Malformed {
    pub fn note(&mut self, op: &Op, why: &str) {
        self.count += 1;
        if self.examples.len() < EVIDENCE_LIST_CAP {
            self.examples
                .push(json!({"index": op.index, "f": op.f, "value": op.value, "why": why}));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn evidence(&self) -> Value {
        json!({"count": self.count, "examples": self.examples})
    }

    /// The reason a checker gives for `unknown` when some ops could not be read.
    pub fn reason(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} op(s) had values of the wrong shape and could not be judged (see evidence.malformed)",
                self.count
            )
        })
    }
}

/// Builds a verdict from what a checker found: invalid when `anomalies` is not empty,
/// else unknown when `unknown_reason` is set, else valid.
pub fn conclude(
    anomalies: Vec<String>,
    unknown_reason: Option<String>,
    summary: String,
    explanation: String,
    evidence: Value,
) -> Verdict {
    let verdict = if !anomalies.is_empty() {
        Verdict::invalid(anomalies, summary)
    } else if let Some(reason) = unknown_reason {
        Verdict::unknown(format!("{summary} {reason}"))
    } else {
        Verdict::valid(summary)
    };
    verdict
        .with_explanation(explanation)
        .with_evidence(evidence)
}

/// The first [`EVIDENCE_LIST_CAP`] items as a JSON array.
pub fn capped<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Value {
    Value::Array(
        items
            .into_iter()
            .take(EVIDENCE_LIST_CAP)
            .map(Into::into)
            .collect(),
    )
}

/// Jepsen's latency distribution: the values at quantiles 0, 0.5, 0.95, 0.99 and 1, in
/// milliseconds; `null` when there are none.
pub fn quantiles_ms(latencies_ns: &mut [u64]) -> Value {
    if latencies_ns.is_empty() {
        return Value::Null;
    }
    latencies_ns.sort_unstable();
    let n = latencies_ns.len();
    let mut out = Map::new();
    for (name, q) in [
        ("0", 0.0),
        ("0.5", 0.5),
        ("0.95", 0.95),
        ("0.99", 0.99),
        ("1", 1.0),
    ] {
        let i = ((n as f64 * q).floor() as usize).min(n - 1);
        out.insert(name.to_string(), json!(latencies_ns[i] / 1_000_000));
    }
    Value::Object(out)
}

/// How many keys of each verdict (valid, invalid, unknown) a keyed verdict lists by name
/// in `by_key`: the first ones in key order. The counts in the summary cover all keys,
/// so a long run with a million keys still gives a small results document.
pub const KEYS_LISTED: usize = 32;

/// Runs `per_key` on the client pairs of each key and composes the verdicts. A history
/// without keys is one group and keeps `per_key`'s evidence as it is.
pub fn check_by_key(history: &History, per_key: impl Fn(&[Pair<'_>]) -> Verdict) -> Verdict {
    let mut groups: BTreeMap<Option<String>, Vec<Pair<'_>>> = BTreeMap::new();
    for pair in history.pairs() {
        let key = pair.invoke.key.as_ref().map(|k| Elem::of(k).to_string());
        groups.entry(key).or_default().push(pair);
    }
    let mut verdicts = KeyedVerdicts::default();
    for (key, pairs) in &groups {
        verdicts.add(key.clone(), per_key(pairs));
    }
    verdicts.finish(|| per_key(&[]))
}

/// The verdicts of the keys of one history, composed into one as they come, in any
/// order (keys are judged as they are retired while a run goes): the result depends only
/// on the set of (key, verdict), and its memory on [`KEYS_LISTED`], not on the keys.
#[derive(Default)]
pub(crate) struct KeyedVerdicts {
    groups: usize,
    valid: Option<Validity>,
    anomalies: std::collections::BTreeSet<String>,
    tally: BTreeMap<&'static str, usize>,
    /// The key first in key order among the invalid ones, and among the unknown ones,
    /// with its summary.
    first_invalid: Option<(Option<String>, String)>,
    first_unknown: Option<(Option<String>, String)>,
    /// The first [`KEYS_LISTED`] keys of each verdict, in key order, with their entry.
    listed: BTreeMap<&'static str, BTreeMap<Option<String>, Value>>,
    /// The whole verdict of the only key so far.
    only: Option<Verdict>,
}

impl KeyedVerdicts {
    pub(crate) fn add(&mut self, key: Option<String>, v: Verdict) {
        self.groups += 1;
        self.valid = Some(self.valid.unwrap_or(Validity::Valid).meet(v.valid));
        *self.tally.entry(v.valid.as_str()).or_default() += 1;
        self.anomalies.extend(v.anomalies.iter().cloned());
        let slot = match v.valid {
            Validity::Invalid => Some(&mut self.first_invalid),
            Validity::Unknown => Some(&mut self.first_unknown),
            Validity::Valid => None,
        };
        if let Some(slot) = slot {
            if slot.as_ref().is_none_or(|(k, _)| key < *k) {
                *slot = Some((key.clone(), v.summary.clone()));
            }
        }
        // Valid keys keep only their summary, so thousands of keys stay a readable size.
        let entry = if v.valid == Validity::Valid {
            json!({"valid": v.valid, "summary": v.summary})
        } else {
            json!({"valid": v.valid, "anomalies": v.anomalies, "summary": v.summary, "evidence": v.evidence})
        };
        let listed = self.listed.entry(v.valid.as_str()).or_default();
        listed.insert(key, entry);
        if listed.len() > KEYS_LISTED {
            listed.pop_last();
        }
        self.only = (self.groups == 1).then_some(v);
    }

    /// The composed verdict; `no_ops` judges a history without client ops.
    pub(crate) fn finish(self, no_ops: impl FnOnce() -> Verdict) -> Verdict {
        if self.groups <= 1 {
            return self.only.unwrap_or_else(no_ops);
        }
        let name = |key: Option<String>| key.unwrap_or_else(|| "(no key)".to_string());
        let counts = self
            .tally
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut summary = format!("{} keys: {counts}.", self.groups);
        if let Some((key, s)) = self.first_invalid.or(self.first_unknown) {
            summary.push_str(&format!(" Key {}: {s}", name(key)));
        }
        let mut by_key = Map::new();
        for (key, entry) in self.listed.into_values().flatten() {
            by_key.insert(name(key), entry);
        }
        let mut evidence = json!({"by_key": by_key});
        let unlisted = self.groups - by_key.len();
        if unlisted > 0 {
            evidence["keys_not_listed"] = json!(unlisted);
        }
        Verdict {
            valid: self.valid.unwrap_or(Validity::Valid),
            anomalies: self.anomalies.into_iter().collect(),
            summary,
            explanation: String::new(),
            evidence,
        }
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Builds histories tersely for the checkers' known-verdict tests.

    use crate::history::History;
    use crate::op::{Op, OpType, Process};
    use serde_json::Value;

    /// One history line: `(process, type, f, value, node)`; time is the index × 1 ms.
    pub type Line<'a> = (u64, OpType, &'a str, Value, &'a str);

    pub fn history(lines: &[Line<'_>]) -> History {
        let ops = lines
            .iter()
            .enumerate()
            .map(|(i, (p, kind, f, value, node))| {
                let mut op = Op::invoke(Process::Client(*p), *f, value.clone())
                    .with_time(i as u64 * 1_000_000);
                op.index = i as u64;
                op.kind = *kind;
                if !node.is_empty() {
                    op.node = Some(node.to_string());
                }
                op
            })
            .collect();
        History::new(ops).expect("test history is well formed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OpType::*;
    use crate::verdict::Validity;
    use testkit::history;

    #[test]
    fn elem_sorts_integers_numerically_and_round_trips() {
        let mut v = [
            Elem::of(&json!(10)),
            Elem::of(&json!("a")),
            Elem::of(&json!(9)),
        ];
        v.sort();
        assert_eq!(v[0], Elem::Int(9));
        assert_eq!(v[2].to_value(), json!("a"));
    }

    #[test]
    fn final_reads_are_recognised_by_f_or_invocation_value() {
        let h = history(&[
            (0, Invoke, "read", json!({"final": true}), "n1"),
            (0, Ok, "read", json!([]), "n1"),
            (1, Invoke, "final-read", json!(null), "n2"),
            (1, Ok, "final-read", json!([]), "n2"),
            (2, Invoke, "read", json!(null), "n1"),
            (2, Ok, "read", json!([]), "n1"),
        ]);
        let finals: Vec<bool> = h.pairs().map(|p| is_final_read(&p)).collect();
        assert_eq!(finals, vec![true, true, false]);
    }

    #[test]
    fn quantiles_pick_the_right_ranks() {
        let mut l: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        let q = quantiles_ms(&mut l);
        assert_eq!(q["0"], 1);
        assert_eq!(q["0.5"], 51);
        assert_eq!(q["1"], 100);
        assert_eq!(quantiles_ms(&mut []), Value::Null);
    }

    #[test]
    fn keyed_histories_are_judged_per_key_and_composed() {
        // The same id on two different keys is fine; twice on one key is not.
        let mut ops = history(&[
            (0, Invoke, "generate", json!(null), ""),
            (0, Ok, "generate", json!(1), ""),
            (1, Invoke, "generate", json!(null), ""),
            (1, Ok, "generate", json!(1), ""),
            (2, Invoke, "generate", json!(null), ""),
            (2, Ok, "generate", json!(1), ""),
        ])
        .into_ops();
        for (op, key) in ops.iter_mut().zip(["a", "a", "b", "b", "b", "b"]) {
            op.key = Some(json!(key));
        }
        let one_key_each = History::new(ops[..4].to_vec()).unwrap();
        let v = crate::online::testkit::checked(Box::new(unique_ids::UniqueIds), &one_key_each);
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        let v = crate::online::testkit::checked(
            Box::new(unique_ids::UniqueIds),
            &History::new(ops).unwrap(),
        );
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["duplicated"]);
        let by_key = &v.evidence["by_key"];
        assert_eq!(by_key["\"a\""]["valid"], true);
        assert!(by_key["\"a\""].get("evidence").is_none(), "{by_key}");
        assert_eq!(by_key["\"b\""]["evidence"]["duplicated_count"], 1);
        assert!(v.summary.contains("Key \"b\""), "{}", v.summary);
    }
}
