//! Reading checker evidence generically: which ops it points at, which Elle cycles it
//! holds, what a linearizability counterexample says.
//!
//! Checkers are written by different people and evolve; the report must not break when
//! a field moves. So nothing here deserializes into a fixed struct: the evidence is
//! walked as JSON, known key names are looked for at any depth, and anything not
//! understood is still shown raw on the page.

use distest_checkers::{Results, Validity};
use serde_json::Value;
use std::collections::BTreeSet;

/// Keys whose integer values (or arrays of integers, or objects with an `index`) are op
/// indices in the history.
const INDEX_KEYS: &[&str] = &[
    "index",
    "indices",
    "ops",
    "op",
    "op_index",
    "op_indices",
    "completion_index",
    "txn",
    "txns",
    "failing_op",
    "last_op",
    "previous_ok",
    "invoke",
    "completion",
    "from",
    "to",
    "cycle",
    "writer",
    "reader",
];

/// Whether values under `key` are op indices: a known key, or one ending in `_index` /
/// `_indices` (the convention of the convergence checkers).
fn is_index_key(key: &str) -> bool {
    INDEX_KEYS.contains(&key) || key.ends_with("_index") || key.ends_with("_indices")
}

/// Bounds on the walk: evidence is untrusted and may be huge or deeply nested.
const MAX_DEPTH: usize = 32;
pub const MAX_INDICES: usize = 10_000;

/// The ops the results name, below `history_len`: those in the evidence of every checker
/// that did not find the history valid, and the first anomaly found while the run went.
pub fn named_ops(results: &Results, history_len: usize) -> BTreeSet<u64> {
    results
        .checkers
        .values()
        .filter(|v| v.valid != Validity::Valid)
        .flat_map(|v| op_indices(&v.evidence, history_len))
        .chain(
            results
                .first_anomaly
                .as_ref()
                .map(|a| a.index)
                .filter(|&i| i < history_len as u64),
        )
        .collect()
}

/// Op indices referenced in `evidence`, below `history_len`.
pub fn op_indices(evidence: &Value, history_len: usize) -> BTreeSet<u64> {
    fn take(v: &Value, out: &mut BTreeSet<u64>, limit: u64) {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_u64().filter(|&i| i < limit) {
                    out.insert(i);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| match i {
                Value::Number(_) => take(i, out, limit),
                Value::Object(o) => {
                    if let Some(ix) = o.get("index") {
                        take(ix, out, limit)
                    }
                }
                _ => {}
            }),
            Value::Object(o) => {
                if let Some(ix) = o.get("index") {
                    take(ix, out, limit)
                }
            }
            _ => {}
        }
    }
    fn walk(v: &Value, depth: usize, out: &mut BTreeSet<u64>, limit: u64) {
        if depth > MAX_DEPTH || out.len() >= MAX_INDICES {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if is_index_key(k) {
                        take(child, out, limit);
                    }
                    walk(child, depth + 1, out, limit);
                }
            }
            Value::Array(items) => items.iter().for_each(|c| walk(c, depth + 1, out, limit)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(evidence, 0, &mut out, history_len as u64);
    while out.len() > MAX_INDICES {
        out.pop_last();
    }
    out
}

/// One edge of an Elle cycle: `from` depends on / precedes `to` because of `why`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub from: Value,
    pub to: Value,
    /// `ww`, `wr`, `rw`, `rt`, `process`, ...
    pub kind: String,
    pub why: String,
}

/// An Elle cycle found in evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Cycle {
    /// `G1c`, `G-single`, ... when the evidence says.
    pub name: String,
    pub steps: Vec<Step>,
    /// The transactions as the checker described them: (label, text), e.g.
    /// (`T12`, `#12 p3 ok [[append 4 3] [r 5 []]]`), from a `cycle` list of `{txn, op}`.
    pub members: Vec<(String, String)>,
}

/// Cycles shown per checker; the rest are counted.
pub const MAX_CYCLES: usize = 12;
/// Edges drawn per cycle; Elle reports minimal cycles, rarely longer than a handful.
pub const MAX_STEPS: usize = 24;

/// Every object holding a `steps` list of `{from, to, ...}`, at any depth (bounded).
/// Returns up to [`MAX_CYCLES`] cycles and how many were found in all.
pub fn cycles(evidence: &Value) -> (Vec<Cycle>, usize) {
    fn text(v: Option<&Value>) -> String {
        match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }
    fn walk(v: &Value, depth: usize, name: &str, out: &mut Vec<Cycle>, total: &mut usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Value::Object(map) => {
                let own_name = ["anomaly", "type", "name"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_str))
                    .unwrap_or(name)
                    .to_string();
                if let Some(Value::Array(steps)) = map.get("steps") {
                    let steps: Vec<Step> = steps
                        .iter()
                        .filter_map(|s| {
                            let (from, to) = (s.get("from")?, s.get("to")?);
                            Some(Step {
                                from: from.clone(),
                                to: to.clone(),
                                kind: text(s.get("type").or_else(|| s.get("kind"))),
                                why: text(s.get("why").or_else(|| s.get("explanation"))),
                            })
                        })
                        .take(MAX_STEPS)
                        .collect();
                    if !steps.is_empty() {
                        *total += 1;
                        if out.len() < MAX_CYCLES {
                            let members = match map.get("cycle") {
                                Some(Value::Array(items)) => items
                                    .iter()
                                    .take(MAX_STEPS)
                                    .filter_map(|m| {
                                        let txn = m.get("txn").or_else(|| m.get("index"))?;
                                        Some((
                                            txn_label(txn),
                                            text(m.get("op").or_else(|| m.get("display"))),
                                        ))
                                    })
                                    .collect(),
                                _ => Vec::new(),
                            };
                            out.push(Cycle {
                                name: own_name.clone(),
                                steps,
                                members,
                            });
                        }
                        return;
                    }
                }
                for (k, child) in map {
                    // A map keyed by anomaly name: {"G1c": [cycle, ...]}.
                    let inherited = if k.starts_with('G') || k.contains("cycle") {
                        k.as_str()
                    } else {
                        own_name.as_str()
                    };
                    walk(child, depth + 1, inherited, out, total);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|c| walk(c, depth + 1, name, out, total)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut total = 0;
    walk(evidence, 0, "cycle", &mut out, &mut total);
    (out, total)
}

/// A key for a transaction reference in a cycle: `#12` for op index 12 (or an op object
/// with that `index`), else the value itself (cut short).
pub fn txn_label(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("#{n}"),
        Value::Object(o) => match o.get("index").or_else(|| o.get("txn")) {
            Some(ix) => format!("#{ix}"),
            None => crate::html::compact_json(v, 24),
        },
        other => crate::html::compact_json(other, 24),
    }
}

/// A linearizability counterexample's parts, each optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Linearizable {
    /// The op at which no linearization can continue.
    pub failing_op: Option<Value>,
    /// The model states the search could be in just before it broke.
    pub states: Vec<Value>,
    /// The key of a keyed (independent) history, when given.
    pub key: Option<Value>,
    /// What the failing op returned.
    pub observed: Option<Value>,
    /// The end of the longest partial linearization: (op, state after it).
    pub prefix: Vec<(Value, Option<Value>)>,
    /// How long that partial linearization was in all.
    pub prefix_len: Option<u64>,
    /// The ops involved (the failing op, those concurrent with it, the last one before
    /// it), each naming the node it went to in its `display`.
    pub involved: Vec<Value>,
}

/// Bound on states listed; searches can hold thousands of configurations.
pub const MAX_STATES: usize = 50;

/// Reads the parts of a linearizability counterexample, searching known key names.
pub fn linearizable(evidence: &Value) -> Linearizable {
    fn find<'a>(v: &'a Value, keys: &[&str], depth: usize) -> Option<&'a Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        match v {
            Value::Object(map) => {
                for k in keys {
                    if let Some(x) = map.get(*k) {
                        return Some(x);
                    }
                }
                map.values().find_map(|c| find(c, keys, depth + 1))
            }
            Value::Array(items) => items.iter().find_map(|c| find(c, keys, depth + 1)),
            _ => None,
        }
    }
    let states = match find(
        evidence,
        &[
            "possible_states",
            "states",
            "configs",
            "final_states",
            "final-paths",
            "final_paths",
            "models",
            "model_states",
        ],
        0,
    ) {
        Some(Value::Array(items)) => items.iter().take(MAX_STATES).cloned().collect(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    };
    let prefix_obj = find(evidence, &["linearizable_prefix", "prefix"], 0);
    let prefix = match prefix_obj.and_then(|p| p.get("steps")) {
        Some(Value::Array(steps)) => steps
            .iter()
            .rev()
            .take(MAX_STATES)
            .rev()
            .map(|s| (s.clone(), s.get("state_after").cloned()))
            .collect(),
        _ => Vec::new(),
    };
    Linearizable {
        failing_op: find(evidence, &["failing_op", "op", "last_op", "failed_op"], 0).cloned(),
        states,
        key: find(evidence, &["key"], 0)
            .cloned()
            .filter(|k| !k.is_null()),
        observed: find(evidence, &["observed"], 0).cloned(),
        prefix,
        prefix_len: prefix_obj
            .and_then(|p| p.get("length"))
            .and_then(Value::as_u64),
        involved: match evidence.get("ops") {
            Some(Value::Array(ops)) => ops
                .iter()
                .filter(|o| o.is_object())
                .take(MAX_STATES)
                .cloned()
                .collect(),
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_checkers::Verdict;
    use serde_json::json;

    #[test]
    fn named_ops_are_the_evidence_of_non_valid_checkers_and_the_first_anomaly() {
        let mut bad = Verdict::invalid(vec!["stale-read".into()], "x");
        bad.evidence = json!({"ops": [3, {"index": 5}]});
        let mut good = Verdict::valid("fine");
        good.evidence = json!({"ops": [7]});
        let mut results = Results::from_verdicts(
            [("a".to_string(), bad), ("b".to_string(), good)]
                .into_iter()
                .collect(),
        );
        results.first_anomaly = Some(
            serde_json::from_value(json!({"checker": "a", "index": 9, "time": 1, "text": "t"}))
                .unwrap(),
        );
        assert_eq!(named_ops(&results, 100), BTreeSet::from([3, 5, 9]));
        assert_eq!(
            named_ops(&results, 8),
            BTreeSet::from([3, 5]),
            "only ops below the length"
        );
    }

    #[test]
    fn op_indices_come_from_known_keys_at_any_depth_and_not_from_values() {
        let ev = json!({
            "failing_op": 7,
            "ops": [1, {"index": 3, "value": 99}],
            "cycles": [{"steps": [{"from": 10, "to": 12, "type": "rw"}]}],
            "value": 55,
            "count": 4,
            "reads": [60, 61],
            "lost": {"first_read_index": 20, "add_indices": [21, 22]},
            "txn": 1_000_000
        });
        let got: Vec<u64> = op_indices(&ev, 100).into_iter().collect();
        assert_eq!(got, vec![1, 3, 7, 10, 12, 20, 21, 22]);
    }

    #[test]
    fn cycles_are_found_with_their_anomaly_names() {
        let ev = json!({"anomalies": {"G1c": [{"cycle": [1, 2], "steps": [
            {"from": 1, "to": 2, "type": "wr", "why": "T2 read 1 written by T1"},
            {"from": 2, "to": 1, "type": "ww", "why": "T1 overwrote T2"}]}]}});
        let (cs, total) = cycles(&ev);
        assert_eq!(total, 1);
        assert_eq!(cs[0].name, "G1c");
        assert_eq!(cs[0].steps.len(), 2);
        assert_eq!(cs[0].steps[1].kind, "ww");
        assert_eq!(txn_label(&cs[0].steps[0].from), "#1");
    }

    #[test]
    fn reads_the_linearizable_checkers_evidence_schema() {
        let ev = json!({
            "model": "cas-register", "key": null,
            "failing_op": {"index": 9, "completion_index": 12, "display": "p3 read → 4 (#9–#12)"},
            "observed": 4, "possible_states": [3], "possible_states_truncated": false,
            "ops": [{"index": 5, "completion_index": 7}, {"index": 9, "completion_index": 12}],
            "linearizable_prefix": {"length": 40, "shown_from": 24, "steps": [
                {"index": 5, "display": "p1 write 3", "state_after": 3}]},
            "minimized": true
        });
        let lin = linearizable(&ev);
        assert_eq!(lin.observed, Some(json!(4)));
        assert_eq!(lin.states, vec![json!(3)]);
        assert_eq!(lin.key, None);
        assert_eq!(lin.prefix.len(), 1);
        assert_eq!(lin.prefix[0].1, Some(json!(3)));
        assert_eq!(lin.prefix_len, Some(40));
        let idx: Vec<u64> = op_indices(&ev, 100).into_iter().collect();
        assert_eq!(idx, vec![5, 7, 9, 12]);
    }

    #[test]
    fn reads_the_elle_checkers_evidence_schema() {
        let ev = json!({"checker": "list-append", "anomaly_types": ["G-single"], "anomalies": {
            "G-single": [{"cycle": [{"txn": 12, "op": "#12 p3 ok [[append 4 3]]"}, {"txn": 15, "op": "#15 p1 ok [[r 4 []]]"}],
                          "steps": [{"from": 12, "to": 15, "type": "rw", "key": 4, "value": 3, "why": "T15 did not see 3"},
                                    {"from": 15, "to": 12, "type": "realtime", "why": "T15 ended before T12 began"}]}],
            "G1a": [{"reader": {"txn": 20, "op": "x"}, "writer": {"txn": 18, "op": "y"}, "why": "aborted read"}]}});
        let (cs, total) = cycles(&ev);
        assert_eq!(total, 1);
        assert_eq!(cs[0].name, "G-single");
        assert_eq!(
            cs[0].members[1],
            ("#15".to_string(), "#15 p1 ok [[r 4 []]]".to_string())
        );
        let idx: Vec<u64> = op_indices(&ev, 100).into_iter().collect();
        assert_eq!(idx, vec![12, 15, 18, 20]);
    }

    #[test]
    fn linearizable_parts_tolerate_any_shape() {
        let lin = linearizable(
            &json!({"failing_op": {"index": 4}, "configs": [{"model": 1}, {"model": 2}]}),
        );
        assert_eq!(lin.states.len(), 2);
        assert!(lin.failing_op.is_some());
        assert_eq!(linearizable(&json!("nothing")), Linearizable::default());
    }
}
