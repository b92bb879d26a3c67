//! Transactional isolation checking, Elle-style: `list-append` and `rw-register`.
//!
//! The pipeline (Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from
//! Experimental Observations"): read the `txn` ops into compact transactions
//! ([`txn`]); infer version orders and ww/wr/rw dependencies plus the anomalies single
//! reads prove ([`list_append`], [`rw_register`] with [`versions`], [`anomaly`]); add
//! process or realtime edges ([`graph`]); find strongly connected components, prove
//! which models' cycles exist ([`exists`]) and find the shortest cycle of each anomaly
//! class inside them ([`cycle`]); when nothing is proven yet, search the version orders
//! inference left open exactly ([`exact`], beyond Elle); map anomalies to the
//! consistency models they rule out ([`consistency`], Elle's lattice); explain every case
//! step by step ([`explain`]).
//!
//! Only `ok` transactions' reads are trusted. `info` transactions may or may not have
//! committed: their writes can explain reads, their reads are unknown. `fail`
//! transactions did not happen: reading their writes is G1a.
//!
//! # Entry points
//!
//! - [`ListAppend`] and [`RwRegister`]: [`Checker`]s over a [`History`], built from
//!   [`ElleOptions`] (or by the registry from `CheckerOptions`).
//! - [`check_txns`]: the same check over transactions already in compact form, e.g.
//!   streamed by [`txn::Txns::read_jsonl`] from a history too large to hold as `Op`s.
//!   Pure and deterministic: the same transactions and options give the same verdict.
//!
//! # Verdicts, as Elle decides them
//!
//! The options name consistency models (any name of Elle's lattice) and/or anomalies;
//! the anomalies that fail the check are those the models proscribe plus those asked
//! for, and everything implying them ([`consistency::prohibited`]). The verdict is invalid
//! when one of them is found; else unknown when there is a reason (Elle's
//! `empty-transaction-graph`: no dependency at all could be inferred, so nothing was
//! tested; `cycle-search-timeout`: a proscribed cycle class could be neither shown nor
//! ruled out within the search budget or time limit); else valid. Everything found is
//! reported, proscribed or not, with the models it rules out.
//!
//! Process and realtime edges follow Elle's definitions: the realtime order (ok
//! transactions before those invoked after they completed) when a realtime cycle fails
//! the check, else the process order (consecutive ok transactions of a process) when a
//! process cycle does, else neither.
//!
//! # What is inferred, and why it is sound
//!
//! - list-append: the longest committed read of a key is its version order; every other
//!   committed read must be a prefix of it. A committed append no read shows must come
//!   after that whole order (any earlier and the longest read would contain it), so the
//!   readers of the longest version anti-depend on it, as in Elle. An info transaction
//!   one of whose appends a committed read shows did commit, so its unread appends are
//!   placed the same way.
//! - rw-register: see [`versions`] for the sources and when each is sound (`nil`
//!   first always; writes-follow-reads, sequential keys, linearizable keys and an
//!   external transaction order on request).
//! - A search that cannot finish (step budget, memory limit, time limit) never turns
//!   into "valid": the classes it could not rule out are listed in `incomplete`, and
//!   the verdict is unknown when one of them fails the check and no cheaper proof
//!   ([`exists`]) decides it.
//!
//! # Evidence schema (`Verdict.evidence`)
//!
//! ```text
//! {
//!   "checker": "list-append",
//!   "consistency_model": "strict-serializable",     // what was asked, in words
//!   "consistency_models": ["strict-serializable"],  // the models, friendly names
//!   "anomalies_requested": [],                      // --anomalies, as given
//!   "anomaly_types": ["G-single-item", "G1a"],      // every anomaly found, sorted
//!   "violating": ["G-single-item"],                 // those that fail the check
//!   "not": ["consistent-view", ...],                // weakest models ruled out
//!   "also_not": ["serializable", ...],              // stronger models ruled out
//!   "incomplete": ["G-nonadjacent-item"],           // searches that ran out of budget
//!   "unknown": ["empty-transaction-graph"],         // why the verdict is unknown
//!   "counts": {"G1a": 12, "G-single-item": 1},      // cases found (cycles: capped)
//!   "anomalies": {                                  // first 8 cases per type
//!     "G-single-item": [{
//!       "cycle": [{"txn": 12, "op": "#12 p3 ok [[append 4 3] [r 5 []]]"}, ...],
//!       "steps": [{"from": 12, "to": 15, "type": "ww|wr|rw|process|realtime",
//!                  "key": 4, "value": 3, "why": "T1 appended 3 to key 4; ..."}, ...]
//!     }],
//!     "PL-SI-cycle-exists": [{"not", "subgraph", "scc_size", "scc": [txn, ...], "why"}],
//!     "PL-3-cycle-forced": [{"keys", "txns", "placements", "dead_ends", "why"}], // exact search
//!     "cyclic-versions": [{"key", "scc", "sources", "steps", "why"}],
//!     "G1a": [{"reader": {"txn", "op"}, "writer": {"txn", "op"}, "key", "value", "why"}],
//!     "G1b": same as G1a,
//!     "garbage-read": [{"reader", "key", "value", "why"}],
//!     "dirty-update": [{"key", "aborted", "writer", "value", "why"}],
//!     "duplicate-elements": [{"reader", "key", "value", "read", "why"}],
//!     "incompatible-order": [{"key", "reads": [text, text], "txns": [ref, ref], "why"}],
//!     "lost-update": [{"key", "value", "txns": [ref, ...], "why"}],
//!     "internal": [{"txn", "key", "expected", "read", "why"}]
//!   },
//!   "inference": ["initial-state", "wfr-keys"],     // rw-register: sources used
//!   "exact": {"searched", "acceptable", "forced", "skipped", "why_skipped"},
//!   "stats": {"txns", "ok", "fail", "info", "keys", "edges", "sccs"}
//! }
//! ```
//! `txn` fields are op indices (the completion's, or the invocation's when the history
//! ended first); `from`/`to` likewise.

pub mod anomaly;
pub mod consistency;
pub mod cycle;
pub mod exact;
pub mod exists;
pub mod explain;
pub mod graph;
mod jsonl;
pub mod list_append;
mod online;
mod raw;
pub mod rw_register;
mod scc;
pub mod txn;
pub mod versions;
pub mod writes;

#[cfg(test)]
mod testkit;

use crate::checker::{CheckContext, Checker};
use crate::history::History;
use crate::registry::{CheckerOptions, RegistryError};
use crate::verdict::{Validity, Verdict};
use anomaly::Anomalies;
use explain::StepExplainer;
use graph::{EdgeList, Graph, Session};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use txn::{Outcome, Shape, Txns};
pub use versions::Inference;

/// Histories with fewer transactions are analysed on one thread.
const PARALLEL_FROM_TXNS: usize = 1 << 14;
/// Cases kept per anomaly type in the evidence.
pub const CASES_PER_TYPE: usize = 8;
/// Cases per anomaly type spelled out in the text explanation.
const CASES_IN_TEXT: usize = 2;

/// What an Elle check holds a history to, and which version-order assumptions it may
/// use. The default is Elle's: strict-serializable, no assumptions.
#[derive(Clone, Debug, PartialEq)]
pub struct ElleOptions {
    /// Canonical names of the models the history must satisfy (Elle's
    /// `:consistency-models`).
    pub models: Vec<&'static str>,
    /// Anomalies the history must not show, besides the models' (Elle's `:anomalies`).
    pub anomalies: Vec<&'static str>,
    /// rw-register version-order inference (ignored by list-append, whose reads show
    /// the whole order).
    pub inference: Inference,
}

impl Default for ElleOptions {
    fn default() -> Self {
        ElleOptions {
            models: vec!["PL-SS"],
            anomalies: Vec::new(),
            inference: Inference::default(),
        }
    }
}

impl ElleOptions {
    /// Options from names as a person gives them: `models` (comma-separated lists
    /// allowed; aliases or canonical names), `anomalies` (Elle's spelling). With
    /// neither, strict-serializable, as in Elle; with only anomalies, just those.
    pub fn from_names(
        checker: &str,
        models: &[String],
        anomalies: &[String],
        inference: Inference,
    ) -> Result<ElleOptions, RegistryError> {
        let split = |list: &[String]| -> Vec<String> {
            list.iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().trim_start_matches(':').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut out = ElleOptions {
            models: Vec::new(),
            anomalies: Vec::new(),
            inference,
        };
        for m in split(models) {
            let c = consistency::canonical(&m).ok_or_else(|| RegistryError::UnknownOption {
                checker: checker.to_string(),
                what: "consistency model",
                given: m.clone(),
                valid: consistency::model_names().join(", "),
            })?;
            if !out.models.contains(&c) {
                out.models.push(c);
            }
        }
        for a in split(anomalies) {
            let known = consistency::anomaly(&a).ok_or_else(|| RegistryError::UnknownOption {
                checker: checker.to_string(),
                what: "anomaly",
                given: a.clone(),
                valid: consistency::anomaly_names().join(", "),
            })?;
            if !out.anomalies.contains(&known) {
                out.anomalies.push(known);
            }
        }
        if out.models.is_empty() && out.anomalies.is_empty() {
            out.models.push("PL-SS");
        }
        Ok(out)
    }

    /// Options from the registry's `CheckerOptions`.
    pub fn from_checker_options(
        checker: &str,
        o: &CheckerOptions,
    ) -> Result<ElleOptions, RegistryError> {
        let models: Vec<String> = o.consistency_model.iter().cloned().collect();
        if o.transaction_order.is_some() && o.transaction_order_map.is_none() {
            return Err(RegistryError::Invalid {
                checker: checker.to_string(),
                message: "the transaction order file was named but not read; the caller must load it into transaction_order_map".to_string(),
            });
        }
        ElleOptions::from_names(
            checker,
            &models,
            &o.anomalies,
            Inference {
                sequential_keys: o.sequential_keys,
                linearizable_keys: o.linearizable_keys,
                wfr_keys: o.wfr_keys,
                transaction_order: o.transaction_order_map.clone(),
            },
        )
    }

    /// Every anomaly that fails this check.
    pub fn prohibited(&self) -> BTreeSet<&'static str> {
        consistency::prohibited(&self.models, &self.anomalies)
    }

    /// The session order the check needs, as Elle decides it (see [`Session`]).
    pub fn session(&self) -> Session {
        session_for(&self.prohibited())
    }

    /// What is asked, in words: `serializable`, `G0, G1c`, `serializable plus G0`.
    pub fn describe(&self) -> String {
        let models: Vec<&str> = self
            .models
            .iter()
            .map(|m| consistency::friendly(m))
            .collect();
        match (models.is_empty(), self.anomalies.is_empty()) {
            (false, true) => models.join(" and "),
            (true, false) => format!("no {}", self.anomalies.join(", ")),
            _ => format!(
                "{} and no {}",
                models.join(" and "),
                self.anomalies.join(", ")
            ),
        }
    }
}

/// Elle's `additional-graphs`: realtime edges when a realtime cycle type fails the
/// check, else process edges when a process one does.
fn session_for(prohibited: &BTreeSet<&'static str>) -> Session {
    const BASES: [&str; 8] = [
        "G0",
        "G1c",
        "G-single-item",
        "G-single",
        "G-nonadjacent-item",
        "G-nonadjacent",
        "G2-item",
        "G2",
    ];
    let has = |suffix: &str| {
        prohibited.iter().any(|a| {
            a.strip_suffix(suffix)
                .is_some_and(|base| BASES.contains(&base))
        })
    };
    if has("-realtime") {
        Session::Realtime
    } else if has("-process") {
        Session::Process
    } else {
        Session::None
    }
}

/// Elle's list-append checker: transactions append unique values to lists and read
/// whole lists.
pub struct ListAppend {
    pub options: ElleOptions,
}

/// Elle's rw-register checker: transactions write unique values to registers and read
/// them.
pub struct RwRegister {
    pub options: ElleOptions,
}

impl ListAppend {
    /// `model: None` means strict-serializable, Elle's default.
    pub fn new(model: Option<&str>) -> Result<ListAppend, RegistryError> {
        Ok(ListAppend {
            options: ElleOptions::from_names(
                "list-append",
                &model.map(str::to_string).into_iter().collect::<Vec<_>>(),
                &[],
                Inference::default(),
            )?,
        })
    }
}

impl RwRegister {
    /// `model: None` means strict-serializable, Elle's default.
    pub fn new(model: Option<&str>) -> Result<RwRegister, RegistryError> {
        Ok(RwRegister {
            options: ElleOptions::from_names(
                "rw-register",
                &model.map(str::to_string).into_iter().collect::<Vec<_>>(),
                &[],
                Inference::default(),
            )?,
        })
    }
}

/// The registry's constructor for both checkers.
pub(crate) fn build(name: &str, o: &CheckerOptions) -> Result<Box<dyn Checker>, RegistryError> {
    let options = ElleOptions::from_checker_options(name, o)?;
    Ok(match name {
        "rw-register" => Box::new(RwRegister { options }),
        _ => Box::new(ListAppend { options }),
    })
}

impl Checker for ListAppend {
    fn name(&self) -> &str {
        "list-append"
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Verdict {
        match Txns::from_history(history, Shape::ListAppend) {
            Ok(txns) => check_txns(&txns, &self.options, ctx),
            Err(e) => unreadable("list-append", &e.to_string()),
        }
    }

    fn online(&self) -> Box<dyn crate::online::OnlineChecker> {
        online::online_form(Shape::ListAppend, &self.options)
    }
}

impl Checker for RwRegister {
    fn name(&self) -> &str {
        "rw-register"
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Verdict {
        match Txns::from_history(history, Shape::RwRegister) {
            Ok(txns) => check_txns(&txns, &self.options, ctx),
            Err(e) => unreadable("rw-register", &e.to_string()),
        }
    }

    fn online(&self) -> Box<dyn crate::online::OnlineChecker> {
        online::online_form(Shape::RwRegister, &self.options)
    }
}

fn unreadable(checker: &str, why: &str) -> Verdict {
    Verdict::unknown(format!(
        "The {checker} checker could not analyse this history: {why}."
    ))
}

/// The workload analysis, kept to explain edges and to search open version orders.
enum Analysis {
    List(list_append::Index),
    Register(rw_register::Index),
}

impl Analysis {
    fn explainer(&self) -> &dyn StepExplainer {
        match self {
            Analysis::List(ix) => ix,
            Analysis::Register(ix) => ix,
        }
    }
}

/// Checks transactions already in compact form (e.g. streamed with
/// [`txn::TxnsBuilder`] from a history too large to hold as `Op`s) against `options`.
pub fn check_txns(txns: &Txns, options: &ElleOptions, ctx: &CheckContext) -> Verdict {
    check_txns_with(txns, options, ctx, None)
}

/// What the online form ([`online`]) needs to compose the verdicts of independent
/// parts of a history, besides each part's verdict.
#[derive(Default)]
pub(crate) struct PartFacts {
    /// The data edges (ww, wr, rw), as pairs of transaction positions.
    pub data_pairs: Vec<(u32, u32)>,
    /// Keys whose version order inference left open.
    pub open_keys: usize,
    /// The verdict's `evidence.stats`.
    pub stats: Stats,
    /// Whether the verdict shows nothing: no anomaly, no strongly connected component,
    /// every search complete, the exact search decided
    /// [without the graph](exact::Outcome::without_graph). Only then can
    /// it be composed with others ([`clean_verdict`]).
    pub clean: bool,
}

/// [`check_txns`], filling `facts` when given.
pub(crate) fn check_txns_with(
    txns: &Txns,
    options: &ElleOptions,
    ctx: &CheckContext,
    mut facts: Option<&mut PartFacts>,
) -> Verdict {
    let checker = match txns.shape {
        Shape::ListAppend => "list-append",
        Shape::RwRegister => "rw-register",
    };
    if txns.txns.is_empty() {
        return no_txns(checker);
    }
    let prohibited = options.prohibited();
    let session = session_for(&prohibited);
    let mut anomalies = Anomalies::new(CASES_PER_TYPE);
    // ~9 bytes per edge; a quarter of the memory limit for inferred product edges (rw
    // from reads of nil, unobserved appends).
    let edge_limit = (ctx.memory_limit_bytes / 4 / 9) as u64;
    let session_edges = || {
        let mut e = EdgeList::default();
        session.add_edges(txns, &mut e);
        e
    };
    let analyse = |anomalies: &mut Anomalies| {
        let mut edges = EdgeList::default();
        let analysis = match txns.shape {
            Shape::ListAppend => {
                list_append::analyse(txns, &mut edges, anomalies, edge_limit).map(Analysis::List)
            }
            Shape::RwRegister => {
                rw_register::analyse(txns, &options.inference, &mut edges, anomalies, edge_limit)
                    .map(Analysis::Register)
            }
        };
        (analysis, edges)
    };
    // The session order needs only the transactions: it is computed alongside the
    // workload analysis, unless there are too few for a thread to pay (the online form
    // checks many small parts).
    let (analysis, mut edges, session_edges) = if txns.txns.len() < PARALLEL_FROM_TXNS {
        let (analysis, edges) = analyse(&mut anomalies);
        (analysis, edges, session_edges())
    } else {
        std::thread::scope(|scope| {
            let session_edges = scope.spawn(session_edges);
            let (analysis, edges) = analyse(&mut anomalies);
            let session_edges = session_edges
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (analysis, edges, session_edges)
        })
    };
    let analysis = match analysis {
        Ok(a) => a,
        Err(e) => return unreadable(checker, &e.to_string()),
    };
    if let Some(f) = facts.as_deref_mut() {
        f.data_pairs = edges
            .src
            .iter()
            .copied()
            .zip(edges.dst.iter().copied())
            .collect();
    }
    edges.append(session_edges);
    if edges.size_bytes() > ctx.memory_limit_bytes / 2 {
        return Verdict::unknown(format!(
            "The dependency graph of this history needs {} MiB, over half the memory limit of {} MiB; raise the limit to check it.",
            edges.size_bytes() >> 20,
            ctx.memory_limit_bytes >> 20
        ));
    }
    let g = Graph::build(txns.txns.len(), edges);
    let prefer = match txns.shape {
        Shape::ListAppend => &cycle::LIST_APPEND_PREFERENCE,
        Shape::RwRegister => &cycle::RW_REGISTER_PREFERENCE,
    };
    let found = cycle::find_cycles(&g, prefer, CASES_PER_TYPE, ctx);
    let mut report = Report::new(txns, &found, &anomalies, analysis.explainer());
    // Beyond Elle: when nothing proscribed was found, version orders inference left open
    // may still admit no acceptable choice.
    let exact = if report.violating(&prohibited).is_empty() && !found.cancelled {
        let problems = match &analysis {
            Analysis::List(ix) => ix.open_orders(txns),
            Analysis::Register(ix) => ix.open_orders(txns),
        };
        let outcome = exact::search(txns, &g, &problems, &prohibited, session, ctx);
        report.add_forced(txns, &outcome);
        Some(outcome)
    } else {
        None
    };
    let count = |o: Outcome| txns.txns.iter().filter(|t| t.outcome == o).count();
    let stats = Stats {
        txns: txns.txns.len(),
        ok: count(Outcome::Ok),
        fail: count(Outcome::Fail),
        info: count(Outcome::Info),
        keys: txns.key_count(),
        edges: g.edge_count(),
        sccs: found.scc_count,
    };
    if let Some(f) = facts {
        f.stats = stats;
        f.open_keys = exact.as_ref().map_or(0, |o| o.open_keys);
        // What `judge` turns into no anomaly, no incomplete search and no reason for
        // unknown but an empty graph; the exact search ran only if nothing proscribed
        // was found.
        f.clean = report.cases.is_empty()
            && found.scc_count == 0
            && found.incomplete.is_empty()
            && !found.cancelled
            && exact.as_ref().is_some_and(|o| o.without_graph);
    }
    judge(Judged {
        checker,
        options,
        stats,
        cancelled: found.cancelled,
        incomplete: &found.incomplete,
        report: &report,
        inference: match &analysis {
            Analysis::Register(ix) => json!(ix.versions.sources),
            Analysis::List(_) => json!(null),
        },
        exact: exact.as_ref().map(exact::Outcome::summary),
    })
}

/// The verdict of a history that holds no transaction.
fn no_txns(checker: &str) -> Verdict {
    Verdict::unknown(format!(
        "The history has no txn ops, so the {checker} checker has nothing to judge."
    ))
}

/// The numbers a verdict states (`evidence.stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Stats {
    pub txns: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub keys: usize,
    pub edges: usize,
    pub sccs: usize,
}

/// Everything [`judge`] turns into a verdict.
struct Judged<'a> {
    checker: &'a str,
    options: &'a ElleOptions,
    stats: Stats,
    cancelled: bool,
    incomplete: &'a BTreeSet<&'static str>,
    report: &'a Report,
    inference: Value,
    exact: Option<Value>,
}

/// The verdict of a history with `stats` in which nothing was found (no anomaly, every
/// search complete, the exact search `exact`): what [`check_txns`] gives then.
pub(crate) fn clean_verdict(
    checker: &str,
    options: &ElleOptions,
    stats: Stats,
    inference: Value,
    exact: Option<Value>,
) -> Verdict {
    if stats.txns == 0 {
        return no_txns(checker);
    }
    let report = Report {
        cases: BTreeMap::new(),
        counts: BTreeMap::new(),
        texts: BTreeMap::new(),
    };
    judge(Judged {
        checker,
        options,
        stats,
        cancelled: false,
        incomplete: &BTreeSet::new(),
        report: &report,
        inference,
        exact,
    })
}

/// Everything found, by anomaly name: cases for the evidence and lines for the text.
struct Report {
    cases: BTreeMap<&'static str, Vec<Value>>,
    counts: BTreeMap<&'static str, u64>,
    texts: BTreeMap<&'static str, Vec<String>>,
}

impl Report {
    fn new(
        txns: &Txns,
        found: &cycle::Found,
        anomalies: &Anomalies,
        explainer: &dyn StepExplainer,
    ) -> Report {
        let mut r = Report {
            cases: BTreeMap::new(),
            counts: BTreeMap::new(),
            texts: BTreeMap::new(),
        };
        for (name, list) in &anomalies.cases {
            r.cases.insert(name, list.clone());
            r.counts.insert(name, anomalies.counts[name]);
            let t = list
                .iter()
                .take(CASES_IN_TEXT)
                .map(|c| format!("{name}: {}\n", c["why"].as_str().unwrap_or_default()))
                .collect();
            r.texts.insert(name, t);
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
            r.counts.insert(name, list.len() as u64);
            r.cases.insert(name, list);
            r.texts.insert(name, t);
        }
        // Cycle-existence proofs, unless other anomalies already rule their model out
        // (Elle's `remove-redundant-cycle-exists`).
        let others: Vec<&'static str> = r.cases.keys().copied().collect();
        let impossible = consistency::impossible_models(&others);
        for case in &found.exists {
            let spec = case.spec();
            if impossible.contains(spec.model) {
                continue;
            }
            let list = r.cases.entry(spec.exists).or_default();
            *r.counts.entry(spec.exists).or_default() += 1;
            if list.len() >= CASES_PER_TYPE {
                continue;
            }
            let (value, text) = exists_case(txns, case);
            list.push(value);
            let t = r.texts.entry(spec.exists).or_default();
            if t.len() < CASES_IN_TEXT {
                t.push(text);
            }
        }
        r
    }

    fn names(&self) -> Vec<&'static str> {
        self.cases.keys().copied().collect()
    }

    fn violating(&self, prohibited: &BTreeSet<&'static str>) -> Vec<&'static str> {
        self.names()
            .into_iter()
            .filter(|a| prohibited.contains(a))
            .collect()
    }

    fn add_forced(&mut self, txns: &Txns, outcome: &exact::Outcome) {
        for f in &outcome.forced {
            let name = f.spec.forced;
            let (value, text) = f.case(txns);
            *self.counts.entry(name).or_default() += 1;
            let list = self.cases.entry(name).or_default();
            if list.len() < CASES_PER_TYPE {
                list.push(value);
            }
            let t = self.texts.entry(name).or_default();
            if t.len() < CASES_IN_TEXT {
                t.push(text);
            }
        }
    }
}

/// The evidence and text of one cycle-existence proof.
fn exists_case(txns: &Txns, case: &exists::ExistsCase) -> (Value, String) {
    const SHOWN: usize = 32;
    let spec = case.spec();
    let not = consistency::friendly(spec.model);
    let ids: Vec<u64> = case
        .txns
        .iter()
        .take(SHOWN)
        .map(|&t| txns.txns[t as usize].index())
        .collect();
    let why = format!(
        "{} transactions form a strongly connected component of the graph of {} edges, so a cycle {} forbids exists among them, though no cycle shown is of a kind it proscribes (an edge with several reasons is named by the first, or the named-cycle search ran out of budget).",
        case.txns.len(),
        spec.subgraph_text(),
        not
    );
    (
        json!({
            "not": not,
            "subgraph": spec.subgraph_text(),
            "scc_size": case.txns.len(),
            "scc": ids,
            "why": why,
        }),
        format!("{}: {why}\n", spec.exists),
    )
}

/// Turns what was found into the verdict, summary, explanation and evidence.
fn judge(j: Judged<'_>) -> Verdict {
    let Judged {
        checker,
        options,
        stats,
        cancelled,
        incomplete,
        report,
        inference,
        exact,
    } = j;
    let prohibited = options.prohibited();
    let found_names = report.names();
    let (not, also_not) = consistency::boundary(&found_names);
    let violating = report.violating(&prohibited);
    let unsearched: Vec<&'static str> = incomplete
        .iter()
        .copied()
        .filter(|c| prohibited.contains(c))
        .collect();
    let mut unknown: Vec<&'static str> = Vec::new();
    if stats.edges == 0 {
        unknown.push("empty-transaction-graph");
    }
    if cancelled || !unsearched.is_empty() {
        unknown.push("cycle-search-timeout");
    }
    let valid = if !violating.is_empty() {
        Validity::Invalid
    } else if !unknown.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let Stats { ok, fail, info, .. } = stats;
    let asked = options.describe();
    let mut summary = format!(
        "Checked {} transactions ({ok} ok, {fail} fail, {info} info) over {} keys against {asked}: ",
        stats.txns, stats.keys
    );
    let listed = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n} ({})", report.counts.get(*n).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let forced_note = if violating.iter().any(|v| v.ends_with("-cycle-forced")) {
        " (the -cycle-forced verdict comes from the exact search over the version orders inference left open, beyond what Elle checks)"
    } else {
        ""
    };
    match valid {
        Validity::Invalid => summary.push_str(&format!(
            "found {}, which {asked} proscribes, so it does not hold{forced_note}; the weakest models ruled out are {}.",
            listed(&violating),
            not.join(", ")
        )),
        Validity::Unknown if cancelled => summary.push_str(
            "the cycle search was stopped by the time limit before it could rule anomalies out, so the verdict is unknown (cycle-search-timeout).",
        ),
        Validity::Unknown if !unsearched.is_empty() => summary.push_str(&format!(
            "the search for {} ran out of its step budget and no cheaper proof decides it, so the verdict is unknown (cycle-search-timeout); no proscribed anomaly was found.",
            unsearched.join(", ")
        )),
        Validity::Unknown if ok == 0 => summary.push_str(&format!(
            "none of the {} transactions committed (all failed or are indeterminate), so there is nothing to judge (empty-transaction-graph).",
            stats.txns
        )),
        Validity::Unknown => summary.push_str(
            "no dependency between transactions could be inferred, so nothing was tested and the verdict is unknown (empty-transaction-graph), as in Elle.",
        ),
        Validity::Valid if found_names.is_empty() => {
            summary.push_str("no anomaly found, consistent with every model checked.")
        }
        Validity::Valid => summary.push_str(&format!(
            "found only {}, which {asked} allows; still, they rule out {}.",
            listed(&found_names),
            not.join(", ")
        )),
    }
    if prohibited.is_empty() {
        summary.push_str(&format!(
            " Note: in Elle's lattice {asked} proscribes no anomaly a transactional checker can see, so this check cannot rule it out."
        ));
    }
    // Proscribed anomalies first in the text: they are why the verdict is what it is.
    let mut explanation = String::new();
    let order = violating
        .iter()
        .chain(found_names.iter().filter(|n| !violating.contains(n)));
    for name in order {
        for line in report.texts.get(name).into_iter().flatten() {
            explanation.push_str(line);
        }
    }
    let cases: Map<String, Value> = report
        .cases
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Array(v.clone())))
        .collect();
    let counts: Map<String, Value> = report
        .counts
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let models: Vec<&str> = options
        .models
        .iter()
        .map(|m| consistency::friendly(m))
        .collect();
    let evidence = json!({
        "checker": checker,
        "consistency_model": asked,
        "consistency_models": models,
        "anomalies_requested": options.anomalies,
        "anomaly_types": found_names,
        "violating": violating,
        "not": not,
        "also_not": also_not,
        "incomplete": incomplete,
        "unknown": unknown,
        "counts": counts,
        "anomalies": cases,
        "inference": inference,
        "exact": exact,
        "stats": {
            "txns": stats.txns, "ok": ok, "fail": fail, "info": info,
            "keys": stats.keys, "edges": stats.edges, "sccs": stats.sccs,
        },
    });
    Verdict {
        valid,
        anomalies: found_names.iter().map(|s| s.to_string()).collect(),
        summary,
        explanation,
        evidence,
    }
}
