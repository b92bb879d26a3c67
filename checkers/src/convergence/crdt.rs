//! The `crdt-convergence` checker: strong eventual consistency of a replicated CRDT.
//!
//! After the final heal and a quiescence window the workload reads every replica once
//! more (the *final reads*, see [`super`]). The checker then asks three questions:
//!
//! 1. **Convergence**: do all replicas' last final reads agree? (anomaly `divergence`)
//! 2. **Correct merge**: is the agreed state what the CRDT's semantics allow from the
//!    updates in the history? (anomalies `lost`, `resurrected`, `unexpected`,
//!    `wrong-final-value`)
//! 3. **Sane reads**: does each replica's state only move forward in the CRDT's partial
//!    order (anomaly `non-monotonic-read`), and does no read show an update nobody made
//!    (anomalies `out-of-bounds-read` for counters, `unexpected` for sets and registers)?
//!
//! The replica of an op is its `node` field. A replica that took part in the history but
//! has no successful final read makes the verdict unknown (unless something is invalid).
//!
//! # Models and op shapes (`--model`, or inferred from the ops when absent)
//!
//! **`g-counter`, `pn-counter`**: `add` with an integer delta (`g-counter`: never
//! negative), `read` returning an integer. A final read must equal the sum of the adds
//! known to have happened before it plus *some subset* of those that may have (in flight,
//! `info`, or concurrent with it); the subset is found exactly by a bounded subset-sum
//! search. Any read, final or not, must lie within the sums of the negative and positive
//! deltas of all adds that may have happened by its completion. Monotonic: a `g-counter`
//! replica never reads less than a read of it that completed earlier. A PN-counter's value has no order to check (its lattice order is
//! on the hidden per-replica vectors), so `pn-counter` skips question 3.
//!
//! **`or-set`** (observed-remove set): `add` with the element (an `ok` completion may
//! return `{"element": e, "tag": t}`, the unique tag the add created), `remove` with the
//! element (an `ok` completion may return `{"element": e, "observed": [t, ...]}`, the tags
//! it removed), `read` returning a list of elements. A remove *may have observed* an add
//! when its tags say so, or (without tags) when the add was invoked before the remove
//! completed; it *surely observed* it when its tags say so, or (without tags) when both
//! ran on the same replica and the add completed before the remove began. Then in a final
//! read an element must be present when some acknowledged add of it can have been
//! observed by no remove (`lost` otherwise), and must be absent when every add of it that
//! may have happened was surely observed by an acknowledged remove (`resurrected`
//! otherwise). Monotonic: an element a replica showed may disappear from a later read of
//! that replica only if some remove of it was invoked before that read completed.
//!
//! **`lww-register`** (last-writer-wins register): `write` with a value, `read` returning
//! the value or `null`. Values should be unique per write (the workloads make them so).
//! Write `W2` *supersedes* `W1` when `W2` happened (ok, or seen by a read) and was invoked
//! on a replica that already knew `W1` (it completed `W1` itself, or returned `W1` from a
//! read) — any correct LWW clock (Lamport, HLC) orders such a `W2` after `W1`, whatever the
//! wall clocks say. The final value must be a write that may have happened and that no
//! write supersedes: one of the last concurrent writes (`lost` when the register reads
//! empty although writes happened). Monotonic: a replica never returns a write after it
//! knew a write that supersedes it.

use super::counter::PrefixSums;
use super::online::{AtRetirement, OnlineByKey};
use super::{
    capped, check_by_key, conclude, is_final_read, is_read, ok_value, replica, Elem, Malformed,
    EVIDENCE_LIST_CAP,
};
use crate::checker::{CheckContext, Checker};
use crate::history::{History, Pair};
use crate::online::OnlineChecker;
use crate::op::OpType;
use crate::registry::{pick_option, CheckerOptions, RegistryError};
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The CRDT type whose semantics judge the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    GCounter,
    PnCounter,
    OrSet,
    LwwRegister,
}

/// The model names `--model` accepts.
pub const MODEL_NAMES: &[&str] = &["g-counter", "pn-counter", "or-set", "lww-register"];

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::GCounter => "g-counter",
            Model::PnCounter => "pn-counter",
            Model::OrSet => "or-set",
            Model::LwwRegister => "lww-register",
        }
    }

    pub fn parse(name: &str) -> Option<Model> {
        [
            Model::GCounter,
            Model::PnCounter,
            Model::OrSet,
            Model::LwwRegister,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    /// Guesses the model from the ops: writes mean a register, removes (or list reads)
    /// a set, integer adds a counter (a G-counter when no delta is negative).
    fn infer(pairs: &[Pair<'_>]) -> Option<Model> {
        let has = |f: &str| pairs.iter().any(|p| p.invoke.f == f);
        if has("write") {
            return Some(Model::LwwRegister);
        }
        if has("remove")
            || pairs
                .iter()
                .any(|p| is_read(p) && ok_value(p).is_some_and(Value::is_array))
        {
            return Some(Model::OrSet);
        }
        let deltas: Vec<i64> = pairs
            .iter()
            .filter(|p| p.invoke.f == "add")
            .filter_map(|p| p.invoke.value.as_i64())
            .collect();
        match deltas.is_empty() {
            true => None,
            false if deltas.iter().all(|d| *d >= 0) => Some(Model::GCounter),
            false => Some(Model::PnCounter),
        }
    }
}

/// The `crdt-convergence` checker; `model: None` infers the model from the history.
pub struct CrdtConvergence {
    pub model: Option<Model>,
}

impl CrdtConvergence {
    /// Builds the checker from `--model`; no model means "infer it from the history".
    pub fn from_options(options: &CheckerOptions) -> Result<CrdtConvergence, RegistryError> {
        let model = match options.model.as_deref() {
            None => None,
            given => Model::parse(pick_option(
                "crdt-convergence",
                "model",
                given,
                None,
                MODEL_NAMES,
            )?),
        };
        Ok(CrdtConvergence { model })
    }
}

impl Checker for CrdtConvergence {
    fn name(&self) -> &str {
        "crdt-convergence"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        check_by_key(history, per_key(self.model))
    }

    /// Online, nothing is proven before a key is done: convergence is about the final
    /// reads, and a replica read going backwards may be an earlier write of another.
    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineByKey::new(
            "crdt-convergence",
            Box::new(per_key(self.model)),
            AtRetirement,
        ))
    }
}

/// The verdict on one key's pairs, with `model` given or inferred from them.
fn per_key(model: Option<Model>) -> impl Fn(&[Pair<'_>]) -> Verdict + Send {
    move |pairs| {
        match model.or_else(|| Model::infer(pairs)) {
        Some(m) => check_pairs(m, model.is_none(), pairs),
        None => Verdict::unknown(
            "The history has no add, remove or write ops to infer a CRDT model from; pass --model (g-counter, pn-counter, or-set or lww-register).",
        ),
    }
    }
}

/// What one model's analysis found; turned into a verdict by [`check_pairs`].
#[derive(Default)]
struct Findings {
    anomalies: BTreeSet<String>,
    /// Capped examples, each naming replica, value and the ops involved.
    problems: Vec<Value>,
    problem_count: usize,
    explanation: Vec<String>,
    unknown: Vec<String>,
    malformed: Malformed,
    /// Extra model-specific evidence.
    extra: serde_json::Map<String, Value>,
}

impl Findings {
    fn problem(&mut self, anomaly: &str, detail: Value, sentence: String) {
        self.anomalies.insert(anomaly.to_string());
        self.problem_count += 1;
        if self.problems.len() < EVIDENCE_LIST_CAP {
            let mut detail = detail;
            detail["anomaly"] = json!(anomaly);
            self.problems.push(detail);
            self.explanation.push(sentence);
        }
    }
}

/// The last successful final read of one replica.
struct FinalRead<'a> {
    pair: Pair<'a>,
    value: &'a Value,
}

impl FinalRead<'_> {
    fn index(&self) -> u64 {
        self.pair
            .completion
            .map_or(self.pair.invoke.index, |c| c.index)
    }
}

fn check_pairs(model: Model, inferred: bool, pairs: &[Pair<'_>]) -> Verdict {
    let mut findings = Findings::default();
    let mut replicas: BTreeSet<&str> = BTreeSet::new();
    let mut finals: BTreeMap<&str, FinalRead<'_>> = BTreeMap::new();
    for pair in pairs {
        let node = replica(pair);
        if node != "?" {
            replicas.insert(node);
        }
        if let (true, Some(value)) = (is_final_read(pair), ok_value(pair)) {
            if node == "?" {
                let op = pair.completion.unwrap_or(pair.invoke);
                findings
                    .malformed
                    .note(op, "a final read must name its replica in the node field");
                continue;
            }
            // Pairs are in invocation order; the later final read of a replica wins.
            finals.insert(node, FinalRead { pair: *pair, value });
        }
    }
    let missing: Vec<&str> = replicas
        .iter()
        .copied()
        .filter(|r| !finals.contains_key(r))
        .collect();
    if finals.is_empty() {
        findings.unknown.push(
            "No replica had a successful final read, so convergence cannot be judged.".into(),
        );
    } else if !missing.is_empty() {
        findings.unknown.push(format!(
            "Replica(s) {} had no successful final read, so their convergence is not known.",
            missing.join(", ")
        ));
    }

    // 1. Convergence: group replicas by their normalized final state.
    let mut states: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (node, fr) in &finals {
        match normalize(model, fr.value) {
            Ok(state) => states.entry(state.to_string()).or_default().push(node),
            Err(why) => findings
                .malformed
                .note(fr.pair.completion.unwrap_or(fr.pair.invoke), why),
        }
    }
    if states.len() > 1 {
        let groups: Vec<Value> = states
            .iter()
            .map(|(s, nodes)| json!({"state": s, "replicas": nodes}))
            .collect();
        let reads: BTreeMap<&str, Value> = finals
            .iter()
            .map(|(n, fr)| (*n, json!({"index": fr.index(), "value": fr.value})))
            .collect();
        let sentence = format!(
            "After the heal the replicas disagree: {}.",
            states
                .iter()
                .map(|(s, nodes)| format!("{} read {}", nodes.join(", "), brief_state(s)))
                .collect::<Vec<_>>()
                .join("; ")
        );
        findings.problem(
            "divergence",
            json!({"groups": groups, "final_reads": reads}),
            sentence,
        );
    }

    // 2 and 3: the model's merge semantics and monotonic reads.
    match model {
        Model::GCounter | Model::PnCounter => counter(model, pairs, &finals, &mut findings),
        Model::OrSet => or_set(pairs, &finals, &mut findings),
        Model::LwwRegister => lww(pairs, &finals, &mut findings),
    }

    let mut evidence = json!({
        "model": model.name(),
        "model_inferred": inferred,
        "replicas": replicas,
        "final_reads": finals.iter().map(|(n, fr)| (n.to_string(), json!({"index": fr.index(), "value": fr.value}))).collect::<serde_json::Map<_, _>>(),
        "converged": states.len() <= 1 && !finals.is_empty(),
        "problem_count": findings.problem_count,
        "problems": findings.problems,
        "malformed": findings.malformed.evidence(),
    });
    for (k, v) in std::mem::take(&mut findings.extra) {
        evidence[k] = v;
    }
    let anomalies: Vec<String> = findings.anomalies.into_iter().collect();
    let summary = if anomalies.is_empty() {
        format!(
            "{} replica(s) converged to {} after the heal, a state the {} semantics allow.",
            finals.len(),
            states
                .keys()
                .next()
                .map_or("nothing".to_string(), |s| brief_state(s)),
            model.name()
        )
    } else {
        format!(
            "{} problem(s) with the {} replicas ({}); first: {}",
            findings.problem_count,
            model.name(),
            anomalies.join(", "),
            findings.explanation.first().map_or("", String::as_str)
        )
    };
    let unknown = findings
        .malformed
        .reason()
        .into_iter()
        .chain(findings.unknown)
        .next();
    conclude(
        anomalies,
        unknown,
        summary,
        findings.explanation.join("\n"),
        evidence,
    )
}

/// A replica state in a comparable canonical form, or why the value has the wrong shape.
fn normalize(model: Model, value: &Value) -> Result<Value, &'static str> {
    match model {
        Model::GCounter | Model::PnCounter => value
            .as_i64()
            .map(|v| json!(v))
            .ok_or("a counter read must return an integer"),
        Model::OrSet => {
            let list = value.as_array().ok_or("a set read must return a list")?;
            let set: BTreeSet<Elem> = list.iter().map(Elem::of).collect();
            Ok(Value::Array(set.iter().map(Elem::to_value).collect()))
        }
        Model::LwwRegister => Ok(value.clone()),
    }
}

// ---------------------------------------------------------------------------------------
// Counters

/// Most distinct partial sums the subset-sum search keeps before it gives up (unknown).
const SUBSET_SUM_STATES_MAX: usize = 1 << 16;

/// All sums of subsets of `deltas`, or `None` past [`SUBSET_SUM_STATES_MAX`] states.
fn subset_sums(deltas: &[i64]) -> Option<BTreeSet<i128>> {
    let mut sums = BTreeSet::from([0i128]);
    for &d in deltas {
        let shifted: Vec<i128> = sums.iter().map(|s| s + i128::from(d)).collect();
        sums.extend(shifted);
        if sums.len() > SUBSET_SUM_STATES_MAX {
            return None;
        }
    }
    Some(sums)
}

fn counter(
    model: Model,
    pairs: &[Pair<'_>],
    finals: &BTreeMap<&str, FinalRead<'_>>,
    out: &mut Findings,
) {
    // (delta, invoke index, end index when ok/fail, outcome)
    let mut adds: Vec<(i64, u64, Option<u64>, OpType)> = Vec::new();
    for pair in pairs.iter().filter(|p| p.invoke.f == "add") {
        match pair.invoke.value.as_i64() {
            Some(d) if model == Model::GCounter && d < 0 => out
                .malformed
                .note(pair.invoke, "a g-counter cannot add a negative delta"),
            Some(d) => {
                let end = pair
                    .completion
                    .filter(|c| c.kind != OpType::Info)
                    .map(|c| c.index);
                adds.push((d, pair.invoke.index, end, pair.outcome()));
            }
            None => out
                .malformed
                .note(pair.invoke, "an add's value must be an integer delta"),
        }
    }
    if !out.malformed.is_empty() {
        return; // a delta we cannot read makes every expected value doubtful
    }
    for (node, fr) in finals {
        let Some(read) = fr.value.as_i64() else {
            continue;
        };
        let read_invoke = fr.pair.invoke.index;
        let read_end = fr.index();
        let mut definite: i128 = 0;
        let mut maybe: Vec<i64> = Vec::new();
        let mut maybe_indices: Vec<u64> = Vec::new();
        for &(d, inv, end, outcome) in &adds {
            match (outcome, end) {
                (OpType::Fail, _) => {}
                (OpType::Ok, Some(e)) if e < read_invoke => definite += i128::from(d),
                _ if inv < read_end => {
                    maybe.push(d);
                    maybe_indices.push(inv);
                }
                _ => {}
            }
        }
        let want = i128::from(read) - definite;
        let lo: i128 = maybe.iter().map(|d| i128::from(*d).min(0)).sum();
        let hi: i128 = maybe.iter().map(|d| i128::from(*d).max(0)).sum();
        let ok = if want < lo || want > hi {
            Some(false)
        } else {
            subset_sums(&maybe).map(|s| s.contains(&want))
        };
        let detail = json!({
            "replica": node, "index": fr.index(), "value": read,
            "acknowledged_sum": definite as i64, "indeterminate_adds": maybe.len(),
            "indeterminate_add_indices": capped(maybe_indices.iter().copied()),
            "possible_range": [(definite + lo) as i64, (definite + hi) as i64],
        });
        match ok {
            Some(true) => {}
            Some(false) => out.problem(
                "wrong-final-value",
                detail,
                format!(
                    "Replica {node}'s final read (op {}) returned {read}, but the acknowledged adds sum to {definite} and no subset of the {} indeterminate add(s) makes up the difference.",
                    fr.index(),
                    maybe.len()
                ),
            ),
            None => out.unknown.push(format!(
                "Replica {node}'s final value {read} could not be matched against the {} indeterminate adds within the search bound.",
                maybe.len()
            )),
        }
    }
    phantom_counter_reads(pairs, &adds, out);
    if model == Model::GCounter {
        monotonic_counter(pairs, out);
    }
}

/// No read of any replica, final or not, may show more increments (or decrements) than
/// all the adds that may have happened by its completion: that would be a phantom update.
fn phantom_counter_reads(
    pairs: &[Pair<'_>],
    adds: &[(i64, u64, Option<u64>, OpType)],
    out: &mut Findings,
) {
    let possible = PrefixSums::new(
        adds.iter()
            .filter(|a| a.3 != OpType::Fail)
            .map(|a| (a.1, a.0))
            .collect(),
    );
    for pair in pairs.iter().filter(|p| is_read(p)) {
        let (Some(v), Some(c)) = (ok_value(pair).and_then(Value::as_i64), pair.completion) else {
            continue;
        };
        let (_, upper, lower) = possible.before(c.index);
        if i128::from(v) > upper || i128::from(v) < lower {
            let node = replica(pair);
            out.problem(
                "out-of-bounds-read",
                json!({"replica": node, "index": c.index, "value": v, "lower": lower as i64, "upper": upper as i64}),
                format!(
                    "Replica {node} read {v} at op {}, outside [{lower}, {upper}], the most any adds invoked by then could make.",
                    c.index
                ),
            );
        }
    }
}

/// A G-counter replica never reads less than a read of it that completed earlier.
fn monotonic_counter(pairs: &[Pair<'_>], out: &mut Findings) {
    let mut by_replica: BTreeMap<&str, Vec<(u64, u64, i64)>> = BTreeMap::new();
    for pair in pairs.iter().filter(|p| is_read(p)) {
        if let (Some(v), Some(c)) = (ok_value(pair).and_then(Value::as_i64), pair.completion) {
            by_replica
                .entry(replica(pair))
                .or_default()
                .push((pair.invoke.index, c.index, v));
        }
    }
    for (node, reads) in by_replica {
        let mut by_end = reads.clone();
        by_end.sort_by_key(|r| r.1);
        // The highest value among reads that completed before the current read began.
        let mut done = 0;
        let mut best: Option<(u64, i64)> = None;
        for &(inv, end, v) in &reads {
            while done < by_end.len() && by_end[done].1 < inv {
                if best.is_none_or(|b| by_end[done].2 > b.1) {
                    best = Some((by_end[done].1, by_end[done].2));
                }
                done += 1;
            }
            if let Some((earlier, high)) = best.filter(|b| v < b.1) {
                out.problem(
                    "non-monotonic-read",
                    json!({"replica": node, "earlier_index": earlier, "earlier_value": high, "index": end, "value": v}),
                    format!("Replica {node} read {high} at op {earlier}, then {v} at op {end}: a G-counter never decreases."),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// OR-set

struct SetAdd {
    invoke_index: u64,
    end_index: Option<u64>,
    outcome: OpType,
    node: String,
    tag: Option<Elem>,
}

struct SetRemove {
    invoke_index: u64,
    end_index: Option<u64>,
    outcome: OpType,
    node: String,
    /// The tags it removed, when the store reports them.
    observed: Option<BTreeSet<Elem>>,
}

/// The removes of one element that can precede one final read, summarized so that
/// "may some remove have observed this add" and "did an acknowledged remove surely observe
/// it" cost O(log n) per add instead of a scan of every remove.
///
/// A remove *may have observed* an add when both report tags and the remove's observed
/// tags hold the add's tag, or otherwise when the add was invoked before the remove ended.
/// It *surely observed* it when it is `ok`, ended before the read began, and either its
/// tags hold the add's tag or (without tags) it ran on the add's replica after the `ok`
/// add completed.
#[derive(Default)]
struct RemoveSummary<'a> {
    /// Union of the tags reported by tagged removes.
    may_tags: BTreeSet<&'a Elem>,
    /// Latest end (u64::MAX if indeterminate) of removes without tags, and of all removes.
    untagged_max_end: Option<u64>,
    any_max_end: Option<u64>,
    /// Tags reported by `ok` removes that ended before the read began.
    sure_tags: BTreeSet<&'a Elem>,
    /// Per replica: latest invocation of such `ok` removes without tags, and of all of them.
    sure_untagged_max_invoke: HashMap<&'a str, u64>,
    sure_any_max_invoke: HashMap<&'a str, u64>,
    /// Invocation indices of the removes, for evidence.
    indices: Vec<u64>,
}

impl<'a> RemoveSummary<'a> {
    fn new(removes: &'a [SetRemove], read_invoke: u64, read_end: u64) -> RemoveSummary<'a> {
        let mut s = RemoveSummary::default();
        let raise = |slot: &mut Option<u64>, v: u64| *slot = Some(slot.map_or(v, |s| s.max(v)));
        for r in removes
            .iter()
            .filter(|r| r.outcome != OpType::Fail && r.invoke_index < read_end)
        {
            s.indices.push(r.invoke_index);
            let end = r.end_index.unwrap_or(u64::MAX);
            raise(&mut s.any_max_end, end);
            match &r.observed {
                Some(tags) => s.may_tags.extend(tags.iter()),
                None => raise(&mut s.untagged_max_end, end),
            }
            if r.outcome != OpType::Ok || end >= read_invoke {
                continue;
            }
            let node = r.node.as_str();
            let any = s.sure_any_max_invoke.entry(node).or_insert(r.invoke_index);
            *any = (*any).max(r.invoke_index);
            match &r.observed {
                Some(tags) => s.sure_tags.extend(tags.iter()),
                None => {
                    let untagged = s
                        .sure_untagged_max_invoke
                        .entry(node)
                        .or_insert(r.invoke_index);
                    *untagged = (*untagged).max(r.invoke_index);
                }
            }
        }
        s
    }

    fn may_have_observed(&self, add: &SetAdd) -> bool {
        let by_time = |max_end: Option<u64>| max_end.is_some_and(|e| add.invoke_index < e);
        match &add.tag {
            Some(tag) => self.may_tags.contains(tag) || by_time(self.untagged_max_end),
            None => by_time(self.any_max_end),
        }
    }

    fn surely_observed(&self, add: &SetAdd) -> bool {
        // Without tags to match: read-your-writes on one replica.
        let same_replica_after = |max_invoke: &HashMap<&str, u64>| {
            add.outcome == OpType::Ok
                && add
                    .end_index
                    .is_some_and(|e| max_invoke.get(add.node.as_str()).is_some_and(|&i| e < i))
        };
        match &add.tag {
            Some(tag) => {
                self.sure_tags.contains(tag) || same_replica_after(&self.sure_untagged_max_invoke)
            }
            None => same_replica_after(&self.sure_any_max_invoke),
        }
    }
}

/// The element an add/remove is about and, for `ok` ops, what its completion reports.
fn set_element<'a>(pair: &Pair<'a>) -> (Elem, Option<&'a Value>) {
    let done = ok_value(pair).filter(|v| v.get("element").is_some());
    (Elem::of(&pair.invoke.value), done)
}

fn or_set(pairs: &[Pair<'_>], finals: &BTreeMap<&str, FinalRead<'_>>, out: &mut Findings) {
    let mut adds: BTreeMap<Elem, Vec<SetAdd>> = BTreeMap::new();
    let mut removes: BTreeMap<Elem, Vec<SetRemove>> = BTreeMap::new();
    for pair in pairs {
        let f = pair.invoke.f.as_str();
        if f != "add" && f != "remove" {
            continue;
        }
        let (elem, done) = set_element(pair);
        let end_index = pair
            .completion
            .filter(|c| c.kind != OpType::Info)
            .map(|c| c.index);
        let node = replica(pair).to_string();
        if f == "add" {
            let tag = done.and_then(|d| d.get("tag")).map(Elem::of);
            adds.entry(elem).or_default().push(SetAdd {
                invoke_index: pair.invoke.index,
                end_index,
                outcome: pair.outcome(),
                node,
                tag,
            });
        } else {
            let observed = match done.and_then(|d| d.get("observed")) {
                None => None,
                Some(Value::Array(tags)) => Some(tags.iter().map(Elem::of).collect()),
                Some(_) => {
                    out.malformed.note(
                        pair.completion.unwrap_or(pair.invoke),
                        "a remove's observed tags must be a list",
                    );
                    None
                }
            };
            removes.entry(elem).or_default().push(SetRemove {
                invoke_index: pair.invoke.index,
                end_index,
                outcome: pair.outcome(),
                node,
                observed,
            });
        }
    }
    let no_removes = Vec::new();
    for (node, fr) in finals {
        let Some(list) = fr.value.as_array() else {
            continue;
        };
        let present: BTreeSet<Elem> = list.iter().map(Elem::of).collect();
        if present.len() < list.len() {
            out.problem(
                "duplicated",
                json!({"replica": node, "index": fr.index(), "value": fr.value}),
                format!(
                    "Replica {node}'s final read (op {}) lists an element more than once.",
                    fr.index()
                ),
            );
        }
        let read_invoke = fr.pair.invoke.index;
        let read_end = fr.index();
        for elem in &present {
            let possible = adds.get(elem).is_some_and(|a| {
                a.iter()
                    .any(|a| a.outcome != OpType::Fail && a.invoke_index < read_end)
            });
            if !possible {
                out.problem(
                    "unexpected",
                    json!({"replica": node, "index": read_end, "element": elem.to_value()}),
                    format!("Replica {node}'s final read (op {read_end}) contains {elem}, which no add that may have happened put there."),
                );
            }
        }
        for (elem, elem_adds) in &adds {
            // Only updates that can precede the final read matter to it.
            let rms = RemoveSummary::new(
                removes.get(elem).unwrap_or(&no_removes),
                read_invoke,
                read_end,
            );
            let unobserved_ack = elem_adds.iter().find(|a| {
                a.outcome == OpType::Ok
                    && a.end_index.is_some_and(|e| e < read_invoke)
                    && !rms.may_have_observed(a)
            });
            let live: Vec<&SetAdd> = elem_adds
                .iter()
                .filter(|a| a.outcome != OpType::Fail && a.invoke_index < read_end)
                .collect();
            let all_removed = !live.is_empty() && live.iter().all(|a| rms.surely_observed(a));
            let here = present.contains(elem);
            if let (Some(a), false) = (unobserved_ack, here) {
                out.problem(
                    "lost",
                    json!({"replica": node, "index": read_end, "element": elem.to_value(), "add_index": a.end_index, "remove_indices": capped(rms.indices.iter().copied())}),
                    format!(
                        "Replica {node}'s final read (op {read_end}) misses {elem}, though its add (op {}) was acknowledged and no remove can have observed it.",
                        a.end_index.unwrap_or(a.invoke_index)
                    ),
                );
            }
            if all_removed && here {
                out.problem(
                    "resurrected",
                    json!({"replica": node, "index": read_end, "element": elem.to_value(), "add_indices": capped(live.iter().map(|a| a.invoke_index)), "remove_indices": capped(rms.indices.iter().copied())}),
                    format!(
                        "Replica {node}'s final read (op {read_end}) contains {elem}, though every add of it was observed by an acknowledged remove (removes invoked at ops {:?}).",
                        &rms.indices[..rms.indices.len().min(8)]
                    ),
                );
            }
        }
    }
    monotonic_set(pairs, &removes, out);
}

/// A successful set read: (invoke index, completion index, elements).
type SetRead = (u64, u64, BTreeSet<Elem>);

/// An element a replica showed may vanish from a later read of that replica only if a
/// remove of it was invoked before that later read completed.
fn monotonic_set(pairs: &[Pair<'_>], removes: &BTreeMap<Elem, Vec<SetRemove>>, out: &mut Findings) {
    let first_remove: HashMap<&Elem, u64> = removes
        .iter()
        .filter_map(|(e, rs)| {
            rs.iter()
                .filter(|r| r.outcome != OpType::Fail)
                .map(|r| r.invoke_index)
                .min()
                .map(|i| (e, i))
        })
        .collect();
    let mut by_replica: BTreeMap<&str, Vec<SetRead>> = BTreeMap::new();
    for pair in pairs.iter().filter(|p| is_read(p)) {
        if let (Some(list), Some(c)) = (ok_value(pair).and_then(Value::as_array), pair.completion) {
            let set = list.iter().map(Elem::of).collect();
            by_replica
                .entry(replica(pair))
                .or_default()
                .push((pair.invoke.index, c.index, set));
        }
    }
    for (node, reads) in by_replica {
        let mut by_end: Vec<usize> = (0..reads.len()).collect();
        by_end.sort_by_key(|&i| reads[i].1);
        // element -> the read (completion index) that last showed it, among finished reads
        let mut shown: BTreeMap<&Elem, u64> = BTreeMap::new();
        let mut done = 0;
        for (inv, end, set) in &reads {
            while done < by_end.len() && reads[by_end[done]].1 < *inv {
                let (_, at, earlier) = &reads[by_end[done]];
                for e in earlier {
                    shown.insert(e, *at);
                }
                done += 1;
            }
            let vanished: Vec<(&Elem, u64)> = shown
                .iter()
                .filter(|(e, _)| !set.contains(*e))
                .map(|(e, at)| (*e, *at))
                .collect();
            for (e, at) in vanished {
                // A remove invoked before this read ended explains it; stop tracking it.
                shown.remove(e);
                if first_remove.get(e).is_some_and(|&r| r < *end) {
                    continue;
                }
                out.problem(
                    "non-monotonic-read",
                    json!({"replica": node, "element": e.to_value(), "earlier_index": at, "index": end}),
                    format!("Replica {node} showed {e} at op {at} but not at op {end}, and no remove of {e} had been invoked."),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// LWW register

/// (index, replica, write): from this index on the replica is known to hold the write.
type KnownEvent = (u64, String, usize);

/// A register read naming one write: (invoke index, completion index, replica, write).
type RegisterRead = (u64, u64, String, usize);

struct Write {
    value: Elem,
    node: String,
    invoke_index: u64,
    outcome: OpType,
    /// Ok, or seen by some read.
    happened: bool,
}

fn lww(pairs: &[Pair<'_>], finals: &BTreeMap<&str, FinalRead<'_>>, out: &mut Findings) {
    let mut writes: Vec<Write> = Vec::new();
    let mut by_value: HashMap<Elem, Vec<usize>> = HashMap::new();
    for pair in pairs.iter().filter(|p| p.invoke.f == "write") {
        let value = Elem::of(&pair.invoke.value);
        by_value
            .entry(value.clone())
            .or_default()
            .push(writes.len());
        writes.push(Write {
            value,
            node: replica(pair).to_string(),
            invoke_index: pair.invoke.index,
            outcome: pair.outcome(),
            happened: pair.outcome() == OpType::Ok,
        });
    }
    let ambiguous = by_value.values().filter(|ws| ws.len() > 1).count();
    if ambiguous > 0 {
        out.extra
            .insert("ambiguous_values".into(), json!(ambiguous));
    }
    // The write a read value names, when exactly one write wrote it.
    let unique = |v: &Value| -> Option<usize> {
        by_value
            .get(&Elem::of(v))
            .filter(|ws| ws.len() == 1)
            .map(|ws| ws[0])
    };

    // Knowledge events: (index, replica, write) when a replica is known to hold a write.
    let mut known: Vec<KnownEvent> = Vec::new();
    for pair in pairs {
        let Some(c) = pair.completion.filter(|c| c.kind == OpType::Ok) else {
            continue;
        };
        if pair.invoke.f == "write" {
            if let Some(w) = unique(&pair.invoke.value) {
                known.push((c.index, replica(pair).to_string(), w));
            }
        } else if is_read(pair) && !c.value.is_null() {
            match unique(&c.value) {
                Some(w) if writes[w].outcome == OpType::Fail => out.problem(
                    "unexpected",
                    json!({"replica": replica(pair), "index": c.index, "value": c.value, "write_index": writes[w].invoke_index}),
                    format!(
                        "Replica {} returned {} at op {}, the value of write op {}, which failed.",
                        replica(pair),
                        c.value,
                        c.index,
                        writes[w].invoke_index
                    ),
                ),
                Some(w) => {
                    writes[w].happened = true;
                    known.push((c.index, replica(pair).to_string(), w));
                }
                None if !by_value.contains_key(&Elem::of(&c.value)) => out.problem(
                    "unexpected",
                    json!({"replica": replica(pair), "index": c.index, "value": c.value}),
                    format!(
                        "Replica {} returned {} at op {}, a value nobody wrote.",
                        replica(pair),
                        c.value,
                        c.index
                    ),
                ),
                None => {}
            }
        }
    }
    known.sort();
    // first_known[(replica, write)] = the first index at which the replica held the write.
    let mut first_known: HashMap<(&str, usize), u64> = HashMap::new();
    for (index, node, w) in &known {
        first_known.entry((node.as_str(), *w)).or_insert(*index);
    }
    // latest[replica] = the happened write invoked last on it: (invoke index, write).
    let mut latest: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate().filter(|(_, w)| w.happened) {
        let slot = latest.entry(w.node.as_str()).or_insert((w.invoke_index, i));
        if w.invoke_index > slot.0 {
            *slot = (w.invoke_index, i);
        }
    }
    // The write that supersedes `w`, if any: one invoked on a replica after it knew `w`.
    let superseded_by = |w: usize| -> Option<usize> {
        latest.iter().find_map(|(node, &(inv, by))| {
            first_known
                .get(&(*node, w))
                .filter(|&&k| k < inv)
                .map(|_| by)
        })
    };

    let any_happened = writes.iter().any(|w| w.happened);
    for (node, fr) in finals {
        let index = fr.index();
        if fr.value.is_null() {
            if any_happened {
                out.problem(
                    "lost",
                    json!({"replica": node, "index": index, "value": null}),
                    format!("Replica {node}'s final read (op {index}) found the register empty, though writes happened."),
                );
            }
            continue;
        }
        let Some(ids) = by_value.get(&Elem::of(fr.value)) else {
            continue;
        }; // reported as unexpected
        let live: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&w| writes[w].outcome != OpType::Fail)
            .collect();
        if live.is_empty() {
            out.problem(
                "unexpected",
                json!({"replica": node, "index": index, "value": fr.value}),
                format!(
                    "Replica {node}'s final read (op {index}) returned {}, whose write failed.",
                    fr.value
                ),
            );
            continue;
        }
        // Valid when any write of this value is still a candidate (values are unique in
        // practice; with duplicates the checker gives the benefit of the doubt).
        let winners: Vec<(usize, Option<usize>)> =
            live.iter().map(|&w| (w, superseded_by(w))).collect();
        let all_superseded = winners.iter().all(|(_, by)| by.is_some());
        if let (true, Some(&(w, Some(by)))) = (all_superseded, winners.first()) {
            out.problem(
                "lost",
                json!({"replica": node, "index": index, "value": fr.value, "write_index": writes[w].invoke_index, "superseded_by_index": writes[by].invoke_index, "superseded_by_replica": writes[by].node, "lost_value": writes[by].value.to_value()}),
                format!(
                    "Replica {node} ended with {} (write op {}), but write op {} of {} on {} was invoked after {} knew it, so last-writer-wins must keep the later one.",
                    fr.value, writes[w].invoke_index, writes[by].invoke_index, writes[by].value, writes[by].node, writes[by].node
                ),
            );
        }
    }

    // Monotonic reads: sweep each replica's knowledge in index order, tracking per origin
    // replica the newest write it knows from there; a read returning a write known to be
    // superseded by one of those goes backwards.
    let mut reads: Vec<RegisterRead> = Vec::new();
    for pair in pairs.iter().filter(|p| is_read(p)) {
        if let (Some(v), Some(c)) = (ok_value(pair), pair.completion) {
            if let Some(w) = unique(v) {
                reads.push((pair.invoke.index, c.index, replica(pair).to_string(), w));
            }
        }
    }
    let mut by_node: BTreeMap<&str, (Vec<&KnownEvent>, Vec<&RegisterRead>)> = BTreeMap::new();
    for k in &known {
        by_node.entry(k.1.as_str()).or_default().0.push(k);
    }
    for r in &reads {
        by_node.entry(r.2.as_str()).or_default().1.push(r);
    }
    for (node, (events, node_reads)) in by_node {
        // origin replica -> (newest invoke index known here, that write)
        let mut newest: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        let mut e = 0;
        for &&(inv, end, _, w) in &node_reads {
            while e < events.len() && events[e].0 < inv {
                let k = events[e].2;
                if writes[k].happened {
                    let slot = newest
                        .entry(writes[k].node.as_str())
                        .or_insert((writes[k].invoke_index, k));
                    if writes[k].invoke_index > slot.0 {
                        *slot = (writes[k].invoke_index, k);
                    }
                }
                e += 1;
            }
            let newer = newest.iter().find_map(|(origin, &(winv, by))| {
                first_known
                    .get(&(*origin, w))
                    .filter(|&&t| t < winv)
                    .map(|_| by)
            });
            if let Some(by) = newer {
                out.problem(
                    "non-monotonic-read",
                    json!({"replica": node, "index": end, "value": writes[w].value.to_value(), "write_index": writes[w].invoke_index, "superseded_by_index": writes[by].invoke_index}),
                    format!(
                        "Replica {node} returned {} at op {end} after it already held write op {} ({}), which supersedes it.",
                        writes[w].value, writes[by].invoke_index, writes[by].value
                    ),
                );
            }
        }
    }
}

/// Characters of a replica's state a sentence shows; the evidence keeps it whole.
const STATE_SHOWN: usize = 160;

/// A replica's final state as a sentence shows it: whole when short, else its start and
/// its size (a long broadcast run's set has thousands of elements).
fn brief_state(state: &str) -> String {
    if state.len() <= STATE_SHOWN {
        return state.to_string();
    }
    let mut cut = STATE_SHOWN;
    while !state.is_char_boundary(cut) {
        cut -= 1;
    }
    let size = match serde_json::from_str::<Value>(state) {
        Ok(Value::Array(items)) => format!("{} elements", items.len()),
        _ => format!("{} characters", state.len()),
    };
    format!("{}… ({size}; whole in the evidence)", &state[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::{history, Line};
    use crate::op::OpType::*;
    use crate::verdict::Validity;

    fn check(model: &str, lines: &[Line<'_>]) -> Verdict {
        let c = CrdtConvergence::from_options(&CheckerOptions {
            model: Some(model.into()),
            ..Default::default()
        })
        .unwrap();
        crate::online::testkit::checked(Box::new(c), &history(lines))
    }

    fn op(
        p: u64,
        f: &'static str,
        v: Value,
        node: &'static str,
        kind: OpType,
        done: Value,
    ) -> [Line<'static>; 2] {
        [(p, Invoke, f, v, node), (p, kind, f, done, node)]
    }

    fn final_read(p: u64, node: &'static str, v: Value) -> [Line<'static>; 2] {
        op(p, "read", json!({"final": true}), node, Ok, v)
    }

    #[test]
    fn unknown_model_names_are_rejected_with_the_valid_list() {
        let err = CrdtConvergence::from_options(&CheckerOptions {
            model: Some("2p-set".into()),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("or-set"), "{err}");
    }

    #[test]
    fn converged_counter_with_some_indeterminate_adds_is_valid() {
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            op(1, "add", json!(3), "n2", Info, json!(3)),
            op(2, "add", json!(4), "n3", Info, json!(4)),
            final_read(5, "n1", json!(6)),
            final_read(6, "n2", json!(6)),
            final_read(7, "n3", json!(6)),
        ]
        .concat();
        let v = check("g-counter", &lines);
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["converged"], true);
    }

    #[test]
    fn counter_replicas_that_disagree_diverge() {
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            op(1, "add", json!(3), "n2", Ok, json!(3)),
            final_read(5, "n1", json!(5)),
            final_read(6, "n2", json!(3)),
        ]
        .concat();
        let v = check("pn-counter", &lines);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["divergence", "wrong-final-value"]);
        assert_eq!(
            v.evidence["problems"][0]["groups"][0]["replicas"],
            json!(["n2"])
        );
        assert_eq!(v.evidence["problems"][1]["replica"], "n2");
    }

    #[test]
    fn converged_counter_missing_an_acknowledged_add_is_wrong() {
        // What the counter-max-merge bug produces: max of totals instead of per-replica max.
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            op(1, "add", json!(3), "n2", Ok, json!(3)),
            op(2, "add", json!(1), "n3", Info, json!(1)),
            final_read(5, "n1", json!(4)),
            final_read(6, "n2", json!(4)),
        ]
        .concat();
        let v = check("g-counter", &lines);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["wrong-final-value"]);
        assert_eq!(v.evidence["problems"][0]["acknowledged_sum"], 5);
        assert_eq!(v.evidence["problems"][0]["possible_range"], json!([5, 6]));
    }

    #[test]
    fn a_counter_read_beyond_every_possible_add_is_a_phantom() {
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            op(1, "add", json!(5), "n2", Fail, json!(5)),
            op(2, "read", json!(null), "n2", Ok, json!(7)),
            final_read(5, "n1", json!(2)),
            final_read(6, "n2", json!(2)),
        ]
        .concat();
        let v = check("pn-counter", &lines);
        assert_eq!(v.anomalies, vec!["out-of-bounds-read"]);
        assert_eq!(v.evidence["problems"][0]["upper"], 2);
    }

    #[test]
    fn a_g_counter_read_that_decreases_is_non_monotonic() {
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            op(1, "read", json!(null), "n1", Ok, json!(2)),
            op(1, "read", json!(null), "n1", Ok, json!(0)),
            final_read(5, "n1", json!(2)),
        ]
        .concat();
        let v = check("g-counter", &lines);
        assert_eq!(v.anomalies, vec!["non-monotonic-read"]);
        assert_eq!(v.evidence["problems"][0]["earlier_index"], 3);
    }

    #[test]
    fn final_reads_without_a_node_are_malformed_not_merged() {
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            final_read(5, "", json!(2)),
            final_read(6, "", json!(7)),
        ]
        .concat();
        let v = check("g-counter", &lines);
        assert_eq!(v.valid, Validity::Unknown, "{v:?}");
        assert_eq!(v.evidence["malformed"]["count"], 2);
    }

    #[test]
    fn a_replica_without_final_read_makes_the_verdict_unknown() {
        let lines = [
            op(0, "add", json!(2), "n1", Ok, json!(2)),
            op(1, "add", json!(1), "n2", Ok, json!(1)),
            final_read(5, "n1", json!(3)),
        ]
        .concat();
        let v = check("g-counter", &lines);
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.summary.contains("n2"), "{}", v.summary);
    }

    #[test]
    fn or_set_remove_observed_by_tags_keeps_concurrent_add() {
        // x added on n1 (tag a) and n2 (tag b); n1 removes observing only a: b survives.
        let lines = [
            op(
                0,
                "add",
                json!("x"),
                "n1",
                Ok,
                json!({"element": "x", "tag": "a"}),
            ),
            op(
                1,
                "add",
                json!("x"),
                "n2",
                Ok,
                json!({"element": "x", "tag": "b"}),
            ),
            op(
                0,
                "remove",
                json!("x"),
                "n1",
                Ok,
                json!({"element": "x", "observed": ["a"]}),
            ),
            op(
                2,
                "add",
                json!("y"),
                "n1",
                Ok,
                json!({"element": "y", "tag": "c"}),
            ),
            op(
                2,
                "remove",
                json!("y"),
                "n2",
                Ok,
                json!({"element": "y", "observed": ["c"]}),
            ),
            final_read(5, "n1", json!(["x"])),
            final_read(6, "n2", json!(["x"])),
        ]
        .concat();
        let v = check("or-set", &lines);
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
    }

    #[test]
    fn or_set_element_back_after_an_observed_remove_is_resurrected() {
        let lines = [
            op(0, "add", json!(1), "n1", Ok, json!(1)),
            op(0, "remove", json!(1), "n1", Ok, json!(1)),
            final_read(5, "n1", json!([])),
            final_read(6, "n2", json!([1])),
        ]
        .concat();
        let v = check("or-set", &lines);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["divergence", "resurrected"]);
        let p = &v.evidence["problems"][1];
        assert_eq!(p["replica"], "n2");
        assert_eq!(p["remove_indices"], json!([2]));
    }

    #[test]
    fn or_set_acknowledged_add_no_remove_saw_missing_is_lost() {
        let lines = [
            op(0, "add", json!(1), "n1", Ok, json!(1)),
            op(1, "add", json!(2), "n2", Ok, json!(2)),
            final_read(5, "n1", json!([1])),
            final_read(6, "n2", json!([1])),
        ]
        .concat();
        let v = check("or-set", &lines);
        assert_eq!(v.anomalies, vec!["lost"]);
        assert_eq!(v.evidence["problems"][0]["element"], 2);
    }

    #[test]
    fn or_set_element_vanishing_without_remove_is_non_monotonic() {
        let lines = [
            op(0, "add", json!(1), "n1", Ok, json!(1)),
            op(1, "read", json!(null), "n2", Ok, json!([1])),
            op(1, "read", json!(null), "n2", Ok, json!([])),
            final_read(5, "n1", json!([1])),
            final_read(6, "n2", json!([1])),
        ]
        .concat();
        let v = check("or-set", &lines);
        assert_eq!(v.anomalies, vec!["non-monotonic-read"]);
        assert_eq!(v.evidence["problems"][0]["earlier_index"], 3);
    }

    #[test]
    fn lww_concurrent_writes_may_either_win() {
        let lines = [
            (0, Invoke, "write", json!("a"), "n1"),
            (1, Invoke, "write", json!("b"), "n2"),
            (0, Ok, "write", json!("a"), "n1"),
            (1, Ok, "write", json!("b"), "n2"),
        ];
        let mut all = lines.to_vec();
        all.extend(final_read(5, "n1", json!("a")));
        all.extend(final_read(6, "n2", json!("a")));
        assert_eq!(check("lww-register", &all).valid, Validity::Valid);
    }

    #[test]
    fn lww_write_after_seeing_another_must_win() {
        // n2 read "a" then wrote "b": any correct LWW keeps "b"; a wall-clock LWW with n1's
        // clock ahead keeps "a".
        let lines = [
            op(0, "write", json!("a"), "n1", Ok, json!("a")),
            op(1, "read", json!(null), "n2", Ok, json!("a")),
            op(1, "write", json!("b"), "n2", Ok, json!("b")),
            final_read(5, "n1", json!("a")),
            final_read(6, "n2", json!("a")),
        ]
        .concat();
        let v = check("lww-register", &lines);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["lost", "non-monotonic-read"]);
        assert_eq!(v.evidence["problems"][0]["superseded_by_index"], 4);
        let mut fixed = lines.clone();
        fixed[7].3 = json!("b");
        fixed[9].3 = json!("b");
        assert_eq!(check("lww-register", &fixed).valid, Validity::Valid);
    }

    #[test]
    fn lww_reading_the_value_of_a_failed_write_is_unexpected() {
        let lines = [
            op(0, "write", json!("a"), "n1", Fail, json!("a")),
            op(1, "read", json!(null), "n1", Ok, json!("a")),
            final_read(5, "n1", json!("a")),
        ]
        .concat();
        let v = check("lww-register", &lines);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["unexpected"]);
        assert_eq!(v.evidence["problems"][0]["write_index"], 0);
    }

    #[test]
    fn model_is_inferred_when_not_given() {
        let lines = [
            op(0, "write", json!(1), "n1", Ok, json!(1)),
            final_read(1, "n1", json!(1)),
        ]
        .concat();
        let v = crate::online::testkit::checked(
            Box::new(CrdtConvergence { model: None }),
            &history(&lines),
        );
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["model"], "lww-register");
        assert_eq!(v.evidence["model_inferred"], true);
    }

    #[test]
    fn a_long_state_is_shown_by_its_start_and_size_and_kept_whole_in_the_evidence() {
        let big: Vec<i64> = (0..2000).collect();
        let state = serde_json::to_string(&big).unwrap();
        let shown = brief_state(&state);
        assert!(shown.len() < 250, "{shown}");
        assert!(shown.starts_with("[0,1,2,"), "{shown}");
        assert!(shown.contains("2000 elements"), "{shown}");
        assert_eq!(brief_state("[1,2,3]"), "[1,2,3]");
        // A cut never splits a character.
        let wide = "\u{e9}".repeat(200);
        assert!(brief_state(&wide).contains("characters"));
    }
}
