//! Turns found cycles into evidence a person can follow: each edge of a cycle becomes a
//! step with the key, the value and one sentence saying why the first transaction must
//! precede the second. Data edges are explained by the workload analysis (it knows the
//! version orders); process and realtime edges are explained here.

use super::cycle::Cycle;
use super::graph::{kind_name, PROCESS, REALTIME};
use super::txn::Txns;
use serde_json::{json, Value};

/// Why one transaction precedes another, on one key.
pub struct Step {
    pub key: Value,
    pub value: Value,
    pub why: String,
}

impl Step {
    pub fn new(txns: &Txns, key: u32, value: u32, why: String) -> Step {
        Step {
            key: super::anomaly::key_json(txns, key),
            value: super::anomaly::value_json(txns, value),
            why,
        }
    }
}

/// Explains data edges (ww, wr, rw); `a` and `b` are the names the sentence uses for
/// `from` and `to` (T1, T2, ...). `None` when no such dependency exists.
pub trait StepExplainer {
    fn explain(&self, txns: &Txns, from: u32, to: u32, kind: u8, a: &str, b: &str) -> Option<Step>;
}

/// A run-relative time for people: ns, ms or s, whichever reads best.
fn time_text(ns: u64) -> String {
    match ns {
        0..=999_999 => format!("{ns} ns"),
        1_000_000..=999_999_999 => format!("{:.3} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

fn session_step(txns: &Txns, from: u32, to: u32, kind: u8, a: &str, b: &str) -> Step {
    let (x, y) = (&txns.txns[from as usize], &txns.txns[to as usize]);
    let why = if kind == PROCESS {
        format!(
            "{a} and {b} ran on the same process {}, and {a} completed before {b} began (process).",
            x.process
        )
    } else if kind == REALTIME {
        format!(
            "{a} completed at {} before {b} was invoked at {} (realtime).",
            time_text(x.complete_time_ns),
            time_text(y.invoke_time_ns)
        )
    } else {
        format!("{a} precedes {b} by a {} dependency.", kind_name(kind))
    };
    Step {
        key: Value::Null,
        value: Value::Null,
        why,
    }
}

/// The evidence case for one cycle (see the schema in `elle/mod.rs`) and its text.
pub fn cycle_case(
    txns: &Txns,
    data: &dyn StepExplainer,
    class: &str,
    cycle: &Cycle,
) -> (Value, String) {
    // Start at the earliest transaction: people read histories top to bottom.
    let first = (0..cycle.len())
        .min_by_key(|&i| txns.txns[cycle[i].0 as usize].index())
        .unwrap_or(0);
    let rotated: Cycle = cycle[first..]
        .iter()
        .chain(&cycle[..first])
        .copied()
        .collect();
    let cycle = &rotated;
    let n = cycle.len();
    let name = |i: usize| format!("T{}", i % n + 1);
    let mut text = format!(
        "{class}: a cycle of {n} transactions, {}:\n",
        (0..=n).map(name).collect::<Vec<_>>().join(" -> ")
    );
    let mut members = Vec::with_capacity(n);
    for (i, &(t, _)) in cycle.iter().enumerate() {
        let op = txns.txn_text(t);
        text.push_str(&format!("  {} = {op}\n", name(i)));
        members.push(json!({"txn": txns.txns[t as usize].index(), "op": op}));
    }
    let mut steps = Vec::with_capacity(n);
    for (i, &(from, kind)) in cycle.iter().enumerate() {
        let to = cycle[(i + 1) % n].0;
        let (a, b) = (name(i), name(i + 1));
        let step = if kind & (PROCESS | REALTIME) != 0 {
            session_step(txns, from, to, kind, &a, &b)
        } else {
            data.explain(txns, from, to, kind, &a, &b)
                .unwrap_or_else(|| session_step(txns, from, to, kind, &a, &b))
        };
        text.push_str(&format!("  {}. {}\n", i + 1, step.why));
        steps.push(json!({
            "from": txns.txns[from as usize].index(),
            "to": txns.txns[to as usize].index(),
            "type": kind_name(kind),
            "key": step.key,
            "value": step.value,
            "why": step.why,
        }));
    }
    text.push_str("  So T1 would have to run before itself: no order of these transactions explains what they observed.\n");
    (json!({"cycle": members, "steps": steps}), text)
}
