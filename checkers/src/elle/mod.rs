//! Transactional isolation checking, Elle-style: `list-append` and `rw-register`.
//!
//! The pipeline (Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from
//! Experimental Observations"): read the `txn` ops into compact transactions
//! ([`txn`]); infer version orders and ww/wr/rw dependencies plus the anomalies single
//! reads prove ([`list_append`], [`rw_register`], [`anomaly`]); add process and realtime
//! edges ([`graph`]); find strongly connected components and the shortest cycle of each
//! anomaly class inside them ([`cycle`]); map anomalies to the consistency models they
//! rule out ([`consistency`]); explain every case step by step ([`explain`]).
//!
//! Only `ok` transactions' reads are trusted. `info` transactions may or may not have
//! committed: their writes can explain reads, their reads are unknown. `fail`
//! transactions did not happen: reading their writes is G1a.
//!
//! # What is inferred, and why it is sound
//!
//! - list-append: the longest committed read of a key is its version order; every other
//!   committed read must be a prefix of it. A committed append no read shows must come
//!   after that whole order (any earlier and the longest read would contain it), so the
//!   readers of the longest version anti-depend on it. Elle leaves those unordered; we
//!   infer the edge because a stale read that nobody re-reads is otherwise invisible.
//! - rw-register: nil precedes every version; a committed transaction that read `a` and
//!   then wrote `b` on a key orders `a` before `b` (Elle's optional "writes follow reads",
//!   always on here: the transaction saw `a` committed, then installed `b`). Nothing
//!   else (no "sequential" or "linearizable keys" assumptions).
//! - Every rw edge is an item anti-dependency, so G-single and G-nonadjacent are also
//!   G2-item here and rule out repeatable read (Elle keeps them apart; see `consistency`).
//! - A search that cannot finish (step budget, memory limit, time limit) never turns
//!   into "valid": the classes it could not rule out are listed in `incomplete`, and
//!   the verdict is unknown when the requested model proscribes one of them.
//!
//! # Evidence schema (`Verdict.evidence`)
//!
//! ```text
//! {
//!   "consistency_model": "strict-serializable",   // the model judged against
//!   "anomaly_types": ["G-single", "G1a"],           // every anomaly found, sorted
//!   "violating": ["G-single"],                      // those the model proscribes
//!   "not": ["snapshot-isolation"],                  // weakest models ruled out
//!   "also_not": ["serializable", ...],              // stronger models ruled out
//!   "incomplete": ["G-nonadjacent"],                // searches that ran out of budget
//!   "counts": {"G1a": 12, "G-single": 1},           // cases found (cycles: capped)
//!   "anomalies": {                                  // first 8 cases per type
//!     "G-single": [{
//!       "cycle": [{"txn": 12, "op": "#12 p3 ok [[append 4 3] [r 5 []]]"}, ...],
//!       "steps": [{"from": 12, "to": 15, "type": "ww|wr|rw|process|realtime",
//!                  "key": 4, "value": 3, "why": "T1 appended 3 to key 4; ..."}, ...]
//!     }],
//!     "G1a": [{"reader": {"txn", "op"}, "writer": {"txn", "op"}, "key", "value", "why"}],
//!     "G1b": same as G1a,
//!     "garbage-read": [{"reader", "key", "value", "why"}],
//!     "dirty-update": [{"key", "aborted", "writer", "value", "why"}],
//!     "duplicate-elements": [{"reader", "key", "value", "read", "why"}],
//!     "incompatible-order": [{"key", "reads": [text, text], "txns": [ref, ref], "why"}],
//!     "lost-update": [{"key", "value", "txns": [ref, ...], "why"}],
//!     "internal": [{"txn", "key", "expected", "read", "why"}]
//!   },
//!   "stats": {"txns", "ok", "fail", "info", "keys", "edges", "sccs"}
//! }
//! ```
//! `txn` fields are op indices (the completion's, or the invocation's when the history
//! ended first); `from`/`to` likewise.

pub mod anomaly;
pub mod consistency;
pub mod cycle;
pub mod explain;
pub mod graph;
pub mod list_append;
pub mod rw_register;
pub mod txn;
pub mod writes;

#[cfg(test)]
mod testkit;

pub use consistency::CONSISTENCY_MODELS;

use crate::checker::{CheckContext, Checker};
use crate::history::History;
use crate::registry::{pick_option, RegistryError};
use crate::verdict::{Validity, Verdict};
use anomaly::Anomalies;
use explain::StepExplainer;
use graph::{EdgeList, Graph};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use txn::{Outcome, Shape, Txns};

/// Cases kept per anomaly type in the evidence.
pub const CASES_PER_TYPE: usize = 8;
/// Cases per anomaly type spelled out in the text explanation.
const CASES_IN_TEXT: usize = 2;

/// Elle's list-append checker: transactions append unique values to lists and read
/// whole lists.
pub struct ListAppend {
    /// The consistency model the history must satisfy, one of [`CONSISTENCY_MODELS`].
    pub model: &'static str,
}

/// Elle's rw-register checker: transactions write unique values to registers and read
/// them.
pub struct RwRegister {
    /// The consistency model the history must satisfy, one of [`CONSISTENCY_MODELS`].
    pub model: &'static str,
}

fn pick_model(checker: &str, given: Option<&str>) -> Result<&'static str, RegistryError> {
    pick_option(
        checker,
        "consistency model",
        given,
        Some(consistency::DEFAULT_MODEL),
        CONSISTENCY_MODELS,
    )
}

impl ListAppend {
    /// `model: None` means strict-serializable, Elle's default.
    pub fn new(model: Option<&str>) -> Result<ListAppend, RegistryError> {
        Ok(ListAppend {
            model: pick_model("list-append", model)?,
        })
    }
}

impl RwRegister {
    /// `model: None` means strict-serializable, Elle's default.
    pub fn new(model: Option<&str>) -> Result<RwRegister, RegistryError> {
        Ok(RwRegister {
            model: pick_model("rw-register", model)?,
        })
    }
}

impl Checker for ListAppend {
    fn name(&self) -> &str {
        "list-append"
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Verdict {
        match Txns::from_history(history, Shape::ListAppend) {
            Ok(txns) => check_txns(&txns, self.model, ctx),
            Err(e) => unreadable("list-append", &e.to_string()),
        }
    }

    fn online(&self) -> Box<dyn crate::online::OnlineChecker> {
        Box::new(crate::online::Buffered::new(Box::new(ListAppend {
            model: self.model,
        })))
    }
}

impl Checker for RwRegister {
    fn name(&self) -> &str {
        "rw-register"
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Verdict {
        match Txns::from_history(history, Shape::RwRegister) {
            Ok(txns) => check_txns(&txns, self.model, ctx),
            Err(e) => unreadable("rw-register", &e.to_string()),
        }
    }

    fn online(&self) -> Box<dyn crate::online::OnlineChecker> {
        Box::new(crate::online::Buffered::new(Box::new(RwRegister {
            model: self.model,
        })))
    }
}

fn unreadable(checker: &str, why: &str) -> Verdict {
    Verdict::unknown(format!(
        "The {checker} checker could not analyse this history: {why}."
    ))
}

/// Checks transactions already in compact form (e.g. streamed with
/// [`txn::TxnsBuilder`] from a history too large to hold as `Op`s) against `model`.
pub fn check_txns(txns: &Txns, model: &str, ctx: &CheckContext) -> Verdict {
    let checker = match txns.shape {
        Shape::ListAppend => "list-append",
        Shape::RwRegister => "rw-register",
    };
    if !CONSISTENCY_MODELS.contains(&model) {
        return Verdict::unknown(format!(
            "The {checker} checker does not know consistency model {model:?}, so it cannot judge the history; valid models are: {}.",
            CONSISTENCY_MODELS.join(", ")
        ));
    }
    if txns.txns.is_empty() {
        return Verdict::unknown(format!(
            "The history has no txn ops, so the {checker} checker has nothing to judge."
        ));
    }
    // Without a committed transaction no read is trusted and no dependency can be shown:
    // "valid" would only mean "nothing worked".
    if !txns.txns.iter().any(|t| t.outcome == txn::Outcome::Ok) {
        return Verdict::unknown(format!(
            "None of the {} transactions committed (all failed or are indeterminate), so the {checker} checker has nothing to judge.",
            txns.txns.len()
        ));
    }
    let mut edges = EdgeList::default();
    let mut anomalies = Anomalies::new(CASES_PER_TYPE);
    // ~9 bytes per edge; a quarter of the memory limit for inferred product edges (rw
    // from reads of nil, unobserved appends).
    let edge_limit = (ctx.memory_limit_bytes / 4 / 9) as u64;
    let explainer: Box<dyn StepExplainer> = match txns.shape {
        Shape::ListAppend => {
            match list_append::analyse(txns, &mut edges, &mut anomalies, edge_limit) {
                Ok(ix) => Box::new(ix),
                Err(e) => return unreadable(checker, &e.to_string()),
            }
        }
        Shape::RwRegister => {
            match rw_register::analyse(txns, &mut edges, &mut anomalies, edge_limit) {
                Ok(ix) => Box::new(ix),
                Err(e) => return unreadable(checker, &e.to_string()),
            }
        }
    };
    graph::add_session_edges(txns, &mut edges);
    if edges.size_bytes() > ctx.memory_limit_bytes / 2 {
        return Verdict::unknown(format!(
            "The dependency graph of this history needs {} MiB, over half the memory limit of {} MiB; raise the limit to check it.",
            edges.size_bytes() >> 20,
            ctx.memory_limit_bytes >> 20
        ));
    }
    let g = Graph::build(txns.txns.len(), edges);
    let found = cycle::find_cycles(&g, CASES_PER_TYPE, ctx);
    judge(
        txns,
        checker,
        model,
        &g,
        &found,
        &anomalies,
        explainer.as_ref(),
    )
}

/// Turns what was found into the verdict, summary, explanation and evidence.
fn judge(
    txns: &Txns,
    checker: &str,
    model: &str,
    g: &Graph,
    found: &cycle::Found,
    anomalies: &Anomalies,
    explainer: &dyn StepExplainer,
) -> Verdict {
    let mut cases: Map<String, Value> = Map::new();
    let mut counts: Map<String, Value> = Map::new();
    let mut texts: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, list) in &anomalies.cases {
        cases.insert(name.to_string(), Value::Array(list.clone()));
        counts.insert(name.to_string(), json!(anomalies.counts[name]));
        let t = list
            .iter()
            .take(CASES_IN_TEXT)
            .map(|c| format!("{name}: {}\n", c["why"].as_str().unwrap_or_default()))
            .collect();
        texts.push((name, t));
    }
    for (name, cycles) in &found.cycles {
        let mut list = Vec::new();
        let mut t = Vec::new();
        for (i, c) in cycles.iter().enumerate() {
            let (case, text) = explain::cycle_case(txns, explainer, name, c);
            list.push(case);
            if i < CASES_IN_TEXT {
                t.push(text);
            }
        }
        counts.insert(name.to_string(), json!(list.len()));
        cases.insert(name.to_string(), Value::Array(list));
        texts.push((name, t));
    }
    let found_names: Vec<&str> = texts.iter().map(|(n, _)| *n).collect();
    let (not, also_not) = consistency::boundary(&found_names);
    let proscribed = consistency::proscribed_by(model);
    let violating: Vec<&str> = found_names
        .iter()
        .copied()
        .filter(|a| proscribed.contains(a))
        .collect();
    let unsearched: Vec<&str> = found
        .incomplete
        .iter()
        .copied()
        .filter(|c| proscribed.contains(c))
        .collect();
    let valid = if !violating.is_empty() {
        Validity::Invalid
    } else if found.cancelled || !unsearched.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let count = |o: Outcome| txns.txns.iter().filter(|t| t.outcome == o).count();
    let (ok, fail, info) = (
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Info),
    );
    let mut summary = format!(
        "Checked {} transactions ({ok} ok, {fail} fail, {info} info) over {} keys against {model}: ",
        txns.txns.len(),
        txns.key_count()
    );
    let sorted: BTreeSet<&str> = found_names.iter().copied().collect();
    let listed = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n} ({})", counts.get(*n).cloned().unwrap_or(json!(0))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match valid {
        Validity::Invalid => summary.push_str(&format!(
            "found {}, which {model} proscribes, so it does not hold; the weakest models ruled out are {}.",
            listed(&violating),
            not.join(", ")
        )),
        Validity::Unknown if found.cancelled => summary.push_str(
            "the cycle search was stopped by the time limit before it could rule anomalies out, so the verdict is unknown.",
        ),
        Validity::Unknown => summary.push_str(&format!(
            "the search for {} ran out of its step budget, so the verdict is unknown; no proscribed anomaly was found.",
            unsearched.join(", ")
        )),
        Validity::Valid if sorted.is_empty() => {
            summary.push_str("no anomaly found, consistent with every model checked.")
        }
        Validity::Valid => summary.push_str(&format!(
            "found only {}, which {model} allows; still, they rule out {}.",
            listed(&sorted.iter().copied().collect::<Vec<_>>()),
            not.join(", ")
        )),
    }
    // Proscribed anomalies first in the text: they are why the verdict is what it is.
    let mut explanation = String::new();
    let order = violating
        .iter()
        .chain(found_names.iter().filter(|n| !violating.contains(n)));
    for name in order {
        if let Some((_, t)) = texts.iter().find(|(n, _)| n == name) {
            for line in t {
                explanation.push_str(line);
            }
        }
    }
    let evidence = json!({
        "checker": checker,
        "consistency_model": model,
        "anomaly_types": sorted,
        "violating": violating,
        "not": not,
        "also_not": also_not,
        "incomplete": found.incomplete,
        "counts": counts,
        "anomalies": cases,
        "stats": {
            "txns": txns.txns.len(), "ok": ok, "fail": fail, "info": info,
            "keys": txns.key_count(), "edges": g.edge_count(), "sccs": found.scc_count,
        },
    });
    Verdict {
        valid,
        anomalies: sorted.iter().map(|s| s.to_string()).collect(),
        summary,
        explanation,
        evidence,
    }
}
