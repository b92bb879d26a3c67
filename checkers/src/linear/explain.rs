//! Turns a failed search into a counterexample a person can follow.
//!
//! Steps, all on the first key found not linearizable:
//! 1. The *failing op*: the earliest op whose `ok` completion cannot be justified. The
//!    history cut right after a completion (ops still running then get an unknown
//!    outcome) is non-linearizable from some cut on and linearizable before it, so a
//!    binary search over cuts finds the first bad one in O(log n) searches.
//! 2. On that cut, one recording search collects the states the model was in whenever
//!    the failing op was tried (what it could have seen; it saw something else) and the
//!    longest partial linearization reached.
//! 3. The window of ops involved: the failing op, every op concurrent with it, and the
//!    last op the longest linearization placed before the failing op was invoked (the
//!    op that set the state it should have seen, Knossos's `previous-ok`).

use super::models::{Interner, Model};
use super::prepare::{truncate, PartOp, Partition};
use super::search::{search, GaveUp, Limits, Outcome, Recording};
use crate::history::History;
use crate::op::Op;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// At most this many steps of the longest linearizable prefix are shown (its end).
const PREFIX_SHOWN_STEPS: usize = 16;
/// At most this many ops are listed in the window.
const WINDOW_MAX_OPS: usize = 64;

/// A counterexample: the text for `Verdict.explanation`, the JSON for `Verdict.evidence`.
pub(crate) struct Counterexample {
    pub text: String,
    pub evidence: Value,
    /// The completion of the failing op: its index and time (online checking reports
    /// the anomaly there).
    pub at: Option<(u64, u64)>,
}

/// The node an op went to (the client's `node` field, on its completion or invocation),
/// when the history says: a stale read is understood only once one sees it was served by
/// a node cut off from the others.
fn node_of<'h, O>(history: &'h History, op: &PartOp<O>) -> Option<&'h str> {
    let done = op.ret.map(|r| &history.ops()[r as usize]);
    done.and_then(|d| d.node.as_deref())
        .or(history.ops()[op.invoke as usize].node.as_deref())
}

/// One op as a person reads it: `p3@n2 cas [1 2] → ok (#9–#12)`, where `@n2` is the
/// node the client sent it to (left out when the history does not say).
fn describe<O>(history: &History, op: &PartOp<O>) -> String {
    let invoke = &history.ops()[op.invoke as usize];
    let key = invoke
        .key
        .as_ref()
        .map(|k| format!(" key={k}"))
        .unwrap_or_default();
    let node = node_of(history, op)
        .map(|n| format!("@{n}"))
        .unwrap_or_default();
    match op.ret {
        Some(r) => {
            let done = &history.ops()[r as usize];
            format!(
                "p{}{node} {}{} {} → ok {} (#{}–#{})",
                invoke.process, invoke.f, key, invoke.value, done.value, invoke.index, done.index
            )
        }
        None => format!(
            "p{}{node} {}{} {} → ? outcome unknown (#{}–)",
            invoke.process, invoke.f, key, invoke.value, invoke.index
        ),
    }
}

fn op_json<O>(history: &History, op: &PartOp<O>) -> Value {
    let invoke: &Op = &history.ops()[op.invoke as usize];
    json!({
        "index": invoke.index,
        "completion_index": op.ret.map(|r| history.ops()[r as usize].index),
        "process": invoke.process,
        "node": node_of(history, op),
        "f": invoke.f,
        "value": invoke.value,
        "outcome": if op.ret.is_some() { "ok" } else { "unknown" },
        "display": describe(history, op),
    })
}

/// Finds and describes the counterexample in `part`, known not to be linearizable.
pub(crate) fn explain<M: Model>(
    model: &M,
    model_name: &str,
    history: &History,
    part: &Partition<M::Op>,
    limits: &Limits<'_>,
) -> Counterexample {
    let mut cuts: Vec<u32> = part.ops.iter().filter_map(|op| op.ret).collect();
    cuts.sort_unstable();
    // Invariant: the cut at cuts[hi] is non-linearizable (the whole partition is);
    // every cut before cuts[lo] is linearizable. Bounded by log2(cuts) searches.
    let (mut lo, mut hi) = (0usize, cuts.len().saturating_sub(1));
    let mut cut_short = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (ops, _) = truncate(model, history, part, cuts[mid]);
        match search(model, &ops, limits, None) {
            Outcome::NotLinearizable => hi = mid,
            Outcome::Linearizable => lo = mid + 1,
            Outcome::GaveUp(why) => {
                cut_short = Some(why);
                break;
            }
        }
    }
    let cut = cuts.get(hi).copied().unwrap_or(u32::MAX);
    let (ops, values) = truncate(model, history, part, cut);
    let Some(target) = ops.iter().position(|op| op.ret == Some(cut)) else {
        return Counterexample {
            text: String::new(),
            evidence: json!({"model": model_name, "key": part.key}),
            at: None,
        };
    };
    let mut rec = Recording::new(target);
    if let Outcome::GaveUp(why) = search(model, &ops, limits, Some(&mut rec)) {
        cut_short = cut_short.or(Some(why));
    }
    render(
        model, model_name, history, part, &ops, &values, &rec, cut_short,
    )
}

/// The ops involved: the failing op, the ops concurrent with it, and the last op the
/// deepest linearization placed before the failing op began.
fn window<O>(ops: &[PartOp<O>], target: usize, deepest: &[(usize, impl Sized)]) -> Vec<usize> {
    let t = &ops[target];
    let t_ret = t.ret.unwrap_or(u32::MAX);
    let previous = deepest
        .iter()
        .rev()
        .map(|(op, _)| *op)
        .find(|&op| ops[op].ret.is_some_and(|r| r < t.invoke));
    let mut involved: Vec<usize> = (0..ops.len())
        .filter(|&i| {
            let (a, b) = (ops[i].invoke, ops[i].ret.unwrap_or(u32::MAX));
            i == target || Some(i) == previous || (a < t_ret && b > t.invoke)
        })
        .collect();
    involved.sort_by_key(|&i| ops[i].invoke);
    involved.truncate(WINDOW_MAX_OPS);
    involved
}

#[allow(clippy::too_many_arguments)]
fn render<M: Model>(
    model: &M,
    model_name: &str,
    history: &History,
    part: &Partition<M::Op>,
    ops: &[PartOp<M::Op>],
    values: &Interner,
    rec: &Recording<M::State>,
    cut_short: Option<GaveUp>,
) -> Counterexample {
    let target = &ops[rec.target];
    let observed = target
        .ret
        .map(|r| history.ops()[r as usize].value.clone())
        .unwrap_or(Value::Null);
    let mut states: Vec<Value> = rec
        .target_states
        .iter()
        .map(|s| model.show_state(s, values))
        .collect();
    // Search order is deterministic but arbitrary; people read sorted lists faster.
    // A total order (numbers by value first, then the rest by JSON text): sort_by may
    // panic on a comparator that is not one.
    states.sort_by(|a, b| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    });
    let involved = window(ops, rec.target, &rec.deepest);
    let shown_from = rec.deepest.len().saturating_sub(PREFIX_SHOWN_STEPS);
    let steps: Vec<Value> = rec.deepest[shown_from..]
        .iter()
        .map(|(op, after)| {
            let mut v = op_json(history, &ops[*op]);
            v["state_after"] = model.show_state(after, values);
            v
        })
        .collect();

    let mut text = String::new();
    let _ = writeln!(
        text,
        "The first op that cannot be placed: {}",
        describe(history, target)
    );
    let _ = if states.is_empty() {
        writeln!(
            text,
            "  It returned {observed}, but no order of the earlier ops lets it take effect at all."
        )
    } else if states.contains(&observed) {
        // The op itself fits somewhere, but every order that lets it fit strands an op
        // that must come after it: the conflict is with the ops in the window below.
        let others: Vec<Value> = states.iter().filter(|s| **s != observed).cloned().collect();
        writeln!(
            text,
            "  It returned {observed}. Some orders do reach state {observed} for it, but each of them leaves a later op of the window below impossible to place{}{}.",
            if others.is_empty() {
                String::new()
            } else {
                format!("; in every other order the state was {}", join_values(&others))
            },
            if rec.target_states_truncated { ", ..." } else { "" }
        )
    } else {
        writeln!(
            text,
            "  It returned {observed}, but wherever it could take effect the state was {}{}.",
            join_values(&states),
            if rec.target_states_truncated {
                ", ..."
            } else {
                ""
            }
        )
    };
    let legend = if involved
        .iter()
        .any(|&i| node_of(history, &ops[i]).is_some())
    {
        "; p3@n2 is process 3 talking to node n2"
    } else {
        ""
    };
    let _ = writeln!(
        text,
        "Ops involved (the failing op, the ops concurrent with it, the last op before it{legend}):"
    );
    for &i in &involved {
        let mark = if i == rec.target { "→" } else { " " };
        let _ = writeln!(text, "  {mark} {}", describe(history, &ops[i]));
    }
    let _ = writeln!(
        text,
        "Longest linearizable prefix ({} op(s){}), each with the state after it:",
        rec.deepest.len(),
        if shown_from > 0 {
            format!(", last {} shown", rec.deepest.len() - shown_from)
        } else {
            String::new()
        }
    );
    for (op, after) in &rec.deepest[shown_from..] {
        let _ = writeln!(
            text,
            "    {}  ⇒ {}",
            describe(history, &ops[*op]),
            model.show_state(after, values)
        );
    }
    if let Some(why) = cut_short {
        let _ = writeln!(
            text,
            "(The search for the smallest counterexample stopped early: {}; this one may not be the earliest.)",
            gave_up_reason(why)
        );
    }
    let evidence = json!({
        "model": model_name,
        "key": part.key,
        "failing_op": op_json(history, target),
        "observed": observed,
        "possible_states": states,
        "possible_states_truncated": rec.target_states_truncated,
        "ops": involved.iter().map(|&i| op_json(history, &ops[i])).collect::<Vec<_>>(),
        "linearizable_prefix": {
            "length": rec.deepest.len(),
            "shown_from": shown_from,
            "steps": steps,
        },
        "minimized": cut_short.is_none(),
    });
    let at = target.ret.map(|r| {
        let done = &history.ops()[r as usize];
        (done.index, done.time)
    });
    Counterexample { text, evidence, at }
}

/// What is not linearizable, as the start of a sentence: `Key 3` or `The history`.
pub(crate) fn subject(key: &Option<Value>) -> String {
    match key {
        Some(k) => format!("Key {k}"),
        None => "The history".to_string(),
    }
}

fn join_values(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().map(Value::to_string).collect();
    match shown.len() {
        1 => shown[0].clone(),
        _ => format!("one of {}", shown.join(", ")),
    }
}

/// A limit, as the end of a sentence.
pub(crate) fn gave_up_reason(why: GaveUp) -> &'static str {
    match why {
        GaveUp::Cancelled => "the time limit expired",
        GaveUp::MemoryLimit => "the memory limit was reached",
        GaveUp::Abandoned => "another key was found not linearizable first",
        GaveUp::StepBudget => "its step budget was spent",
    }
}
