//! Beyond Elle: an exact search over the version orders inference left open.
//!
//! Inference orders most versions, but not all: blind register writes nobody reads back
//! (or whose readers do not tell them apart), list appends no read shows. Elle builds
//! its graph from what is known and reports nothing about the rest. Yet some such
//! histories admit *no* version order at all under the model: every way of ordering
//! the open versions closes a cycle the model forbids (the classic: two transactions
//! each write x and y, a third reads x from one and y from the other).
//!
//! For a model with a cycle-existence subgraph (see [`super::exists`]) the question is
//! exact: a history with complete version orders satisfies the model iff that subgraph
//! is acyclic (Adya; Cerone and Gotsman for snapshot isolation). So we search the open
//! orders: place each key's open versions one after another (respecting what is known),
//! add the ww and rw edges each placement implies, and backtrack as soon as a forbidden
//! cycle closes. If some complete placement stays acyclic, the history is acceptable;
//! if every branch closes a cycle, the model is violated and we report
//! `{model}-cycle-forced`. Verdicts that come from here say so.
//!
//! Cost control, so that this never slows a large history down:
//! - First, one topological order of the known graph: a key whose open versions can be
//!   ordered along it (with all implied edges pointing forward) is free, and when every
//!   key is free the history is acceptable without any search.
//! - Otherwise keys are split into independent components: the strongly connected
//!   components of the graph plus *every* edge any order could add contain every
//!   possible cycle; keys whose possible edges share such a component are searched
//!   together, others apart.
//! - A component is searched only when it is small (a few hundred transactions at the
//!   ends of possible edges, a bounded number of open versions) and within a step
//!   budget; otherwise it is skipped and reported as such. Skipping is always safe: the
//!   verdict is then exactly what Elle's inference gives.
//!
//! Open versions with unknown outcome: an info transaction whose writes nobody read may
//! not have committed; leaving it out only removes constraints, so it never takes part.

use super::cycle::{tarjan, Sets};
use super::exists::{Spec, SPECS};
use super::graph::{EdgeList, Graph, Session, DATA, RW, WW};
use super::txn::Txns;
use crate::checker::CheckContext;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// A version of a key: who installed it and who read it.
#[derive(Clone, Debug, Default)]
pub struct Version {
    /// The value (for evidence); `NIL` for the initial state.
    pub value: u32,
    pub writer: Option<u32>,
    pub readers: Vec<u32>,
}

/// One key whose version order inference left open.
#[derive(Clone, Debug)]
pub struct OpenOrder {
    pub key: u32,
    /// The version everything open comes after (nil, or the last observed element).
    pub start: Version,
    /// The versions still to be placed, each with a writer.
    pub open: Vec<Version>,
    /// `preds[i]`: indices into `open` of versions known to precede `open[i]`.
    pub preds: Vec<Vec<u32>>,
    /// The known graph already has the edges from the start version's writer and
    /// readers to every open version's writer (list-append: everything unread follows
    /// the longest read).
    pub start_edges_known: bool,
}

/// What the search concluded.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Keys with open orders.
    pub open_keys: usize,
    /// Components searched to the end.
    pub searched: usize,
    /// Of those, components for which an acceptable order exists.
    pub acceptable: usize,
    /// Components for which no order is acceptable.
    pub forced: Vec<Forced>,
    /// Components not searched (too large or out of budget), and why.
    pub skipped: usize,
    pub why_skipped: Vec<String>,
    /// Decided without looking at the graph: no open order, or every spec searched
    /// [`trivially_acceptable`] (one searched and acceptable component each). Then the
    /// outcome over a union of independent parts is the sum [`trivial_outcome`] gives,
    /// which the online form relies on.
    pub(crate) without_graph: bool,
}

impl Outcome {
    /// The `exact` part of the evidence.
    pub fn summary(&self) -> Value {
        json!({
            "open_keys": self.open_keys,
            "searched": self.searched,
            "acceptable": self.acceptable,
            "forced": self.forced.len(),
            "skipped": self.skipped,
            "why_skipped": self.why_skipped,
        })
    }
}

/// One component whose every version order closes a forbidden cycle.
#[derive(Debug)]
pub struct Forced {
    pub spec: &'static Spec,
    /// The keys and their open versions (value, writer).
    pub keys: Vec<(u32, Vec<(u32, u32)>)>,
    /// Complete or partial orders tried before every branch closed a cycle.
    pub tried: u64,
    /// A few dead ends: the placement made and the edge that closed a cycle.
    pub dead_ends: Vec<String>,
}

impl Forced {
    /// Evidence and text for this case.
    pub fn case(&self, txns: &Txns) -> (Value, String) {
        let mut all_txns: BTreeSet<u64> = BTreeSet::new();
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(k, versions)| {
                for &(_, w) in versions {
                    all_txns.insert(txns.txns[w as usize].index());
                }
                json!({
                    "key": super::anomaly::key_json(txns, *k),
                    "versions": versions.iter().map(|&(v, w)| json!({
                        "value": super::anomaly::value_json(txns, v),
                        "writer": super::anomaly::txn_ref(txns, w),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let described: Vec<String> = self
            .keys
            .iter()
            .map(|(k, versions)| {
                let vs: Vec<String> = versions
                    .iter()
                    .map(|&(v, w)| {
                        format!(
                            "{} ({})",
                            txns.value_name(v),
                            super::anomaly::txn_name(txns, w)
                        )
                    })
                    .collect();
                format!("key {}: {}", txns.key_name(*k), vs.join(", "))
            })
            .collect();
        let why = format!(
            "inference leaves the order of these versions open ({}), and every order closes a cycle in the graph of {} edges, which {} forbids ({} placements tried); e.g. {}. This verdict comes from distest's exact search over version orders, beyond what Elle checks.",
            described.join("; "),
            self.spec.subgraph_text(),
            super::consistency::friendly(self.spec.model),
            self.tried,
            self.dead_ends.join("; ")
        );
        (
            json!({
                "keys": keys,
                "txns": all_txns,
                "placements": self.tried,
                "not": super::consistency::friendly(self.spec.model),
                "subgraph": self.spec.subgraph_text(),
                "dead_ends": self.dead_ends,
                "why": why,
            }),
            format!("{}: {why}\n", self.spec.forced),
        )
    }
}

/// At most this many possible edges are added to find independent components.
const MAX_POSSIBLE_EDGES: usize = 2_000_000;
/// A component is searched only with at most this many transactions at edge ends.
const MAX_ENDPOINTS: usize = 512;
/// ... and at most this many open versions.
const MAX_OPEN: usize = 64;
/// At most this many open versions among the keys the topological order cannot settle:
/// beyond it the components are rarely small, and finding them costs a graph as large as
/// the history's.
const MAX_UNSETTLED_OPEN: usize = 4096;
/// Placements tried per component, and in all.
const STEPS_PER_COMPONENT: u64 = 200_000;
const STEPS_TOTAL: u64 = 2_000_000;
/// Breadth-first steps to compute the reachability inside a component.
const REACH_STEPS: u64 = 50_000_000;

/// The specs whose cycles fail the check, minus those another one covers given the
/// edge kinds the graph has (`present`): without process edges, a strong-session spec
/// is its plain one.
fn specs_for(prohibited: &BTreeSet<&'static str>, present: u8) -> Vec<&'static Spec> {
    let relevant: Vec<(&'static Spec, Spec)> = SPECS
        .iter()
        .filter(|s| prohibited.contains(s.exists))
        .map(|s| {
            let mut p = *s;
            p.a &= present;
            p.b &= present;
            (s, p)
        })
        .collect();
    relevant
        .iter()
        .enumerate()
        .filter(|(i, (_, s))| {
            !relevant
                .iter()
                .enumerate()
                .any(|(j, (_, o))| j != *i && o.covers(s) && (!s.covers(o) || j < *i))
        })
        .map(|(_, (s, _))| *s)
        .collect()
}

/// Open versions nobody read, all after a known start: for an acyclic union of edge
/// kinds, ordering them along any topological order only adds forward ww edges. No
/// search needed (list-append's unread appends are always this case).
fn trivially_acceptable(problems: &[OpenOrder], spec: &Spec) -> bool {
    spec.b == 0
        && problems.iter().all(|p| {
            p.start_edges_known
                && p.open.iter().all(|v| v.readers.is_empty())
                && p.preds.iter().all(Vec::is_empty)
        })
}

/// What [`search`] gives on `open_keys` keys whose outcome was decided
/// [without the graph](Outcome::without_graph).
pub(crate) fn trivial_outcome(
    open_keys: usize,
    prohibited: &BTreeSet<&'static str>,
    session: Session,
) -> Outcome {
    let specs = if open_keys == 0 {
        0
    } else {
        specs_for(prohibited, DATA | session.kind()).len()
    };
    Outcome {
        open_keys,
        searched: specs,
        acceptable: specs,
        without_graph: true,
        ..Outcome::default()
    }
}

/// Searches the open orders. `g` must have no forbidden cycle yet (the caller only asks
/// when nothing proscribed was found).
pub fn search(
    txns: &Txns,
    g: &Graph,
    problems: &[OpenOrder],
    prohibited: &BTreeSet<&'static str>,
    session: Session,
    ctx: &CheckContext,
) -> Outcome {
    let mut out = Outcome {
        open_keys: problems.len(),
        without_graph: true,
        ..Outcome::default()
    };
    if problems.is_empty() {
        return out;
    }
    let mut steps_left = STEPS_TOTAL;
    // Each spec alone: a forced cycle of one spec proves its model violated.
    for spec in specs_for(prohibited, DATA | session.kind()) {
        search_spec(
            txns,
            g,
            problems,
            spec,
            session,
            ctx,
            &mut steps_left,
            &mut out,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn search_spec(
    txns: &Txns,
    g: &Graph,
    problems: &[OpenOrder],
    spec: &'static Spec,
    session: Session,
    ctx: &CheckContext,
    steps_left: &mut u64,
    out: &mut Outcome,
) {
    let mask = (spec.a | spec.b) & (DATA | session.kind());
    if trivially_acceptable(problems, spec) {
        out.searched += 1;
        out.acceptable += 1;
        return;
    }
    out.without_graph = false;
    // A topological order of the known graph, as chronological as the graph allows (a
    // snapshot-isolation graph may have cycles its model allows, and then has none):
    // keys whose versions can be ordered along it are free.
    let position = topological_positions(txns, g, mask);
    let free: Vec<bool> = problems
        .iter()
        .map(|p| position.as_ref().is_some_and(|pos| is_free(p, pos)))
        .collect();
    if free.iter().all(|&f| f) {
        out.searched += 1;
        out.acceptable += 1;
        return;
    }
    // First pass: free keys fixed in that order, the others searched. An acceptable
    // result is a witness; a forced one is only a proof when no key was fixed, so it is
    // then confirmed by a pass that fixes nothing.
    let fixed_pass = free.iter().any(|&f| f);
    let fixed: Vec<bool> = if fixed_pass {
        free.clone()
    } else {
        vec![false; problems.len()]
    };
    let first = search_open(
        txns,
        g,
        problems,
        &fixed,
        position.as_deref(),
        spec,
        mask,
        ctx,
        steps_left,
    );
    let confirm = fixed_pass && !first.forced.is_empty();
    let result = if confirm {
        search_open(
            txns,
            g,
            problems,
            &vec![false; problems.len()],
            position.as_deref(),
            spec,
            mask,
            ctx,
            steps_left,
        )
    } else {
        first
    };
    out.searched += result.searched;
    out.acceptable += result.acceptable;
    out.forced.extend(result.forced);
    out.skipped += result.skipped;
    for why in result.why_skipped {
        if out.why_skipped.len() < 4 {
            out.why_skipped.push(why);
        }
    }
}

/// Searches the open keys not `fixed`; fixed keys take their order along `position`
/// (all its edges point forward, see [`is_free`]).
#[allow(clippy::too_many_arguments)]
fn search_open(
    txns: &Txns,
    g: &Graph,
    problems: &[OpenOrder],
    fixed: &[bool],
    position: Option<&[u32]>,
    spec: &'static Spec,
    mask: u8,
    ctx: &CheckContext,
    steps_left: &mut u64,
) -> Outcome {
    let mut out = Outcome::default();
    let searched: Vec<usize> = (0..problems.len()).filter(|&i| !fixed[i]).collect();
    if let Some(position) = position {
        return search_regions(
            txns, g, problems, fixed, &searched, position, spec, mask, ctx, steps_left,
        );
    }
    let unsettled: usize = searched.iter().map(|&i| problems[i].open.len()).sum();
    if unsettled > MAX_UNSETTLED_OPEN {
        out.skipped += 1;
        out.why_skipped.push(format!(
            "{} keys with {unsettled} open versions that no topological order settles (more than {MAX_UNSETTLED_OPEN}); the exact search only takes small components",
            searched.len()
        ));
        return out;
    }
    let keys: Vec<&OpenOrder> = searched.iter().map(|&i| &problems[i]).collect();
    search_graph(
        txns,
        g,
        &keys,
        spec,
        mask,
        ctx,
        steps_left,
        &|t| t,
        &mut out,
    );
    out
}

/// Searches `keys` on the graph `known` (whose node ids `global` maps back to
/// transactions): splits them into independent components by the strongly connected
/// components of `known` plus every edge some order could add, and searches each.
#[allow(clippy::too_many_arguments)]
fn search_graph(
    txns: &Txns,
    known: &Graph,
    keys: &[&OpenOrder],
    spec: &'static Spec,
    mask: u8,
    ctx: &CheckContext,
    steps_left: &mut u64,
    global: &dyn Fn(u32) -> u32,
    out: &mut Outcome,
) {
    let n = known.node_count();
    let mut possible = EdgeList::default();
    for p in keys {
        if possible.len() > MAX_POSSIBLE_EDGES {
            out.skipped += 1;
            out.why_skipped.push(format!(
                "{} keys with open version orders could add more than {MAX_POSSIBLE_EDGES} edges; the exact search only takes small components",
                keys.len()
            ));
            return;
        }
        for_each_possible_edge(p, |a, b, k| possible.add(a, b, k));
    }
    for v in 0..n as u32 {
        for (t, k) in known.out(v) {
            if k & mask != 0 {
                possible.add(v, t, k & mask);
            }
        }
    }
    let g2 = Graph::build(n, possible);
    let all: Vec<u32> = (0..n as u32).collect();
    let mut sets = Sets::new(n);
    let sccs = tarjan(&g2, &all, 0xff, &mut sets);
    drop((all, g2));
    let mut scc_of = vec![u32::MAX; n];
    for (i, c) in sccs.iter().enumerate() {
        for &v in c {
            scc_of[v as usize] = i as u32;
        }
    }
    // Keys with a possible edge inside the same SCC are one component.
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    let mut owner: Vec<usize> = vec![usize::MAX; sccs.len()];
    let mut relevant = vec![false; keys.len()];
    for (i, p) in keys.iter().enumerate() {
        for_each_possible_edge(p, |a, b, _| {
            let s = scc_of[a as usize];
            if s != u32::MAX && s == scc_of[b as usize] {
                relevant[i] = true;
                let s = s as usize;
                if owner[s] == usize::MAX {
                    owner[s] = i;
                } else {
                    let (x, y) = (root(&mut parent, owner[s]), root(&mut parent, i));
                    parent[x] = y;
                }
            }
        });
    }
    let mut components: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &r) in relevant.iter().enumerate() {
        if r {
            let c = root(&mut parent, i);
            components.entry(c).or_default().push(i);
        }
    }
    // Keys with no possible edge on any cycle: every order is acceptable.
    out.searched += 1;
    out.acceptable += 1;
    let order: Vec<u32> = (0..n as u32).collect();
    for members in components.values() {
        if ctx.cancel.is_cancelled() {
            out.skipped += 1;
            out.why_skipped
                .push("the time limit stopped the exact search".to_string());
            return;
        }
        let comp: Vec<&OpenOrder> = members.iter().map(|&i| keys[i]).collect();
        match search_component(
            txns, known, &comp, spec, mask, &scc_of, &order, steps_left, global,
        ) {
            Ok(None) => {
                out.searched += 1;
                out.acceptable += 1;
            }
            Ok(Some(f)) => {
                out.searched += 1;
                out.forced.push(f);
            }
            Err(why) => {
                out.skipped += 1;
                if out.why_skipped.len() < 4 {
                    out.why_skipped.push(why);
                }
            }
        }
    }
}

/// Union-find root, halving paths.
fn root(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Nodes a region may span: larger regions are skipped.
const MAX_REGION_NODES: usize = 200_000;

/// The exact search when the known graph has a topological order (`position`): every
/// edge of the known graph and of the fixed keys points forward in it, so a cycle needs
/// a possible edge pointing backward, and lies within the span of positions such edges
/// cover. Overlapping spans (and spans sharing a key, whose order is one choice) form
/// independent regions; each is searched on a graph of its own nodes only, so the cost
/// follows the unsettled part of the history, not its length.
#[allow(clippy::too_many_arguments)]
fn search_regions(
    txns: &Txns,
    g: &Graph,
    problems: &[OpenOrder],
    fixed: &[bool],
    searched: &[usize],
    position: &[u32],
    spec: &'static Spec,
    mask: u8,
    ctx: &CheckContext,
    steps_left: &mut u64,
) -> Outcome {
    let mut out = Outcome::default();
    // Backward possible edges, as position spans per key.
    let mut spans: Vec<(u32, u32, usize)> = Vec::new();
    for &i in searched {
        for_each_possible_edge(&problems[i], |a, b, _| {
            let (pa, pb) = (position[a as usize], position[b as usize]);
            if a != b && pa >= pb {
                spans.push((pb, pa, i));
            }
        });
    }
    // Keys with no backward possible edge: any order is acyclic.
    out.searched += 1;
    out.acceptable += 1;
    if spans.is_empty() {
        return out;
    }
    spans.sort_unstable();
    // Merge overlapping spans; then regions that share a key.
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for &(lo, hi, _) in &spans {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let region_at = |p: u32| {
        let r = merged.partition_point(|m| m.1 < p);
        (r < merged.len() && merged[r].0 <= p).then_some(r)
    };
    // Every searched key with a possible edge inside a region takes part in it (its
    // forward edges there can close a cycle too); regions sharing a key are one group.
    let mut parent: Vec<usize> = (0..merged.len()).collect();
    let mut region_of_key: std::collections::HashMap<usize, usize> = Default::default();
    for &i in searched {
        for_each_possible_edge(&problems[i], |a, b, _| {
            let (ra, rb) = (
                region_at(position[a as usize]),
                region_at(position[b as usize]),
            );
            let (Some(r), true) = (ra, ra == rb) else {
                return;
            };
            match region_of_key.get(&i) {
                Some(&other) => {
                    let (x, y) = (root(&mut parent, other), root(&mut parent, r));
                    parent[x] = y;
                }
                None => {
                    region_of_key.insert(i, r);
                }
            }
        });
    }
    // Per group: its position spans and its keys.
    type Group = (Vec<(u32, u32)>, Vec<usize>);
    let mut groups: std::collections::BTreeMap<usize, Group> = Default::default();
    for (r, &span) in merged.iter().enumerate() {
        let root = root(&mut parent, r);
        groups.entry(root).or_default().0.push(span);
    }
    for (&key, &r) in &region_of_key {
        let root = root(&mut parent, r);
        groups.entry(root).or_default().1.push(key);
    }
    // Node at each position, and the fixed keys' edges by their source's position.
    let mut at = vec![0u32; position.len()];
    for (v, &p) in position.iter().enumerate() {
        at[p as usize] = v as u32;
    }
    let mut fixed_edges: Vec<(u32, u32, u32, u8)> = Vec::new();
    for (p, _) in problems.iter().zip(fixed).filter(|(_, &f)| f) {
        for_each_ordered_edge(p, position, |a, b, k| {
            fixed_edges.push((position[a as usize], a, b, k));
        });
    }
    fixed_edges.sort_unstable();
    let mut local_of: Vec<u32> = vec![u32::MAX; g.node_count()];
    for (spans, mut keys) in groups.into_values() {
        keys.sort_unstable();
        if ctx.cancel.is_cancelled() {
            out.skipped += 1;
            out.why_skipped
                .push("the time limit stopped the exact search".to_string());
            return out;
        }
        let nodes: Vec<u32> = spans
            .iter()
            .flat_map(|&(lo, hi)| at[lo as usize..=hi as usize].iter().copied())
            .collect();
        if nodes.len() > MAX_REGION_NODES {
            out.skipped += 1;
            if out.why_skipped.len() < 4 {
                out.why_skipped.push(format!(
                    "a region of {} transactions around {} keys with open version orders (more than {MAX_REGION_NODES})",
                    nodes.len(),
                    keys.len()
                ));
            }
            continue;
        }
        for (l, &v) in nodes.iter().enumerate() {
            local_of[v as usize] = l as u32;
        }
        let local = |v: u32| Some(local_of[v as usize]).filter(|&l| l != u32::MAX);
        // The known graph on the region: the history's edges and the fixed keys'.
        let mut known = EdgeList::default();
        for (l, &v) in nodes.iter().enumerate() {
            for (t, k) in g.out(v) {
                if k & mask != 0 {
                    if let Some(lt) = local(t) {
                        known.add(l as u32, lt, k & mask);
                    }
                }
            }
        }
        for &(lo, hi) in &spans {
            let a = fixed_edges.partition_point(|e| e.0 < lo);
            let b = fixed_edges.partition_point(|e| e.0 <= hi);
            for &(_, x, y, k) in &fixed_edges[a..b] {
                if let (Some(lx), Some(ly)) = (local(x), local(y)) {
                    known.add(lx, ly, k);
                }
            }
        }
        // The region's keys with their transactions renamed; ends outside are dropped
        // (an edge leaving the region is on no cycle within it).
        let rename = |v: &Version| Version {
            value: v.value,
            writer: v.writer.and_then(local),
            readers: v.readers.iter().filter_map(|&r| local(r)).collect(),
        };
        let renamed: Vec<OpenOrder> = keys
            .iter()
            .map(|&i| {
                let p = &problems[i];
                OpenOrder {
                    key: p.key,
                    start: rename(&p.start),
                    open: p.open.iter().map(rename).collect(),
                    preds: p.preds.clone(),
                    start_edges_known: p.start_edges_known,
                }
            })
            .collect();
        let known = Graph::build(nodes.len(), known);
        let keys: Vec<&OpenOrder> = renamed.iter().collect();
        search_graph(
            txns,
            &known,
            &keys,
            spec,
            mask,
            ctx,
            steps_left,
            &|l| nodes[l as usize],
            &mut out,
        );
        for &v in &nodes {
            local_of[v as usize] = u32::MAX;
        }
    }
    out
}

/// Calls `f(from, to, kind)` for the edges of `p`'s open versions placed in the order of
/// their writers' positions (see [`is_free`]).
fn for_each_ordered_edge(p: &OpenOrder, position: &[u32], mut f: impl FnMut(u32, u32, u8)) {
    let mut order: Vec<usize> = (0..p.open.len()).collect();
    order.sort_by_key(|&i| p.open[i].writer.map_or(0, |w| position[w as usize]));
    let mut last = &p.start;
    for &i in &order {
        let v = &p.open[i];
        if let Some(w) = v.writer {
            if let Some(x) = last.writer {
                f(x, w, WW);
            }
            for &r in &last.readers {
                f(r, w, RW);
            }
        }
        last = v;
    }
}

/// Calls `f(from, to, kind)` for every edge some order of `p`'s open versions could
/// add: each open version may come right after the start version, or right after any
/// other open version it is not known to precede.
fn for_each_possible_edge(p: &OpenOrder, mut f: impl FnMut(u32, u32, u8)) {
    let mut edges_into = |from: &Version, to: &Version| {
        let Some(w) = to.writer else { return };
        if let Some(x) = from.writer {
            f(x, w, WW);
        }
        for &r in &from.readers {
            f(r, w, RW);
        }
    };
    for (j, v) in p.open.iter().enumerate() {
        edges_into(&p.start, v);
        for (i, u) in p.open.iter().enumerate() {
            // u right before v, unless v is known to precede u.
            if i != j && !p.preds[i].contains(&(j as u32)) {
                edges_into(u, v);
            }
        }
    }
}

/// A topological position for every transaction over edges of kinds `mask`, or `None`
/// when they are cyclic. Kahn's algorithm, starting from the transactions in the order
/// they completed (info ones last, by invocation) and taking newly ready ones first in,
/// first out: close to the order a database committed in, which makes most open keys
/// free, at the cost of one pass (no priority queue over a million transactions).
fn topological_positions(txns: &Txns, g: &Graph, mask: u8) -> Option<Vec<u32>> {
    let n = g.node_count();
    let mut indegree = vec![0u32; n];
    for v in 0..n as u32 {
        for (t, k) in g.out(v) {
            if k & mask != 0 {
                indegree[t as usize] += 1;
            }
        }
    }
    // Completion order: completions have distinct op indices; unfinished ones follow in
    // invocation (= id) order.
    let mut by_completion: Vec<(u64, u32)> = (0..n as u32)
        .map(|v| (txns.txns[v as usize].complete_index, v))
        .collect();
    by_completion.sort_unstable();
    let mut position = vec![u32::MAX; n];
    let mut queue: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
    let mut next = 0u32;
    for &(_, v) in &by_completion {
        // Nodes without predecessors enter in completion order; whatever they (and the
        // nodes before them) make ready goes next, first in, first out. A node with
        // predecessors is queued by the last of them (and may be placed already).
        if indegree[v as usize] == 0 && position[v as usize] == u32::MAX {
            queue.push_back(v);
        }
        while let Some(r) = queue.pop_front() {
            position[r as usize] = next;
            next += 1;
            for (t, k) in g.out(r) {
                if k & mask != 0 {
                    indegree[t as usize] -= 1;
                    if indegree[t as usize] == 0 {
                        queue.push_back(t);
                    }
                }
            }
        }
    }
    (next as usize == n).then_some(position)
}

/// Whether ordering `p`'s open versions by their writers' topological positions
/// respects what is known and makes every implied edge point forward.
fn is_free(p: &OpenOrder, position: &[u32]) -> bool {
    let pos = |v: &Version| v.writer.map_or(0, |w| position[w as usize]);
    let mut order: Vec<usize> = (0..p.open.len()).collect();
    order.sort_by_key(|&i| pos(&p.open[i]));
    let mut placed = vec![false; p.open.len()];
    let mut last = &p.start;
    for &i in &order {
        if p.preds[i].iter().any(|&j| !placed[j as usize]) {
            return false;
        }
        let v = &p.open[i];
        let Some(w) = v.writer else { return false };
        let forward = |x: u32| position[x as usize] < position[w as usize];
        if last.writer.is_some_and(|x| x != w && !forward(x))
            || last.readers.iter().any(|&r| r != w && !forward(r))
        {
            return false;
        }
        placed[i] = true;
        last = v;
    }
    true
}

/// A reachability matrix over (endpoint, phase) nodes with undo.
struct Reach {
    words: usize,
    rows: Vec<u64>,
    undo: Vec<(u32, Vec<u64>)>,
}

impl Reach {
    fn get(&self, from: usize, to: usize) -> bool {
        self.rows[from * self.words + to / 64] >> (to % 64) & 1 == 1
    }

    /// Adds `from -> to`; false when it closes a cycle.
    fn add(&mut self, from: usize, to: usize) -> bool {
        if from == to || self.get(to, from) {
            return false;
        }
        if self.get(from, to) {
            return true;
        }
        let n = self.rows.len() / self.words;
        let w = self.words;
        let mut source: Vec<u64> = self.rows[to * w..(to + 1) * w].to_vec();
        source[to / 64] |= 1 << (to % 64);
        for r in 0..n {
            if r == from || self.get(r, from) {
                let row = &mut self.rows[r * w..(r + 1) * w];
                if row.iter().zip(&source).all(|(a, b)| a & b == *b) {
                    continue;
                }
                self.undo.push((r as u32, row.to_vec()));
                for (a, b) in row.iter_mut().zip(&source) {
                    *a |= b;
                }
            }
        }
        true
    }

    fn mark(&self) -> usize {
        self.undo.len()
    }

    fn rollback(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let (r, old) = self.undo.pop().expect("above mark");
            let w = self.words;
            self.rows[r as usize * w..(r as usize + 1) * w].copy_from_slice(&old);
        }
    }
}

/// The transactions at the ends of a component's possible edges, and the reachability
/// between them (and their phases, see [`super::exists`]) through the known graph.
struct Component<'a> {
    keys: Vec<&'a OpenOrder>,
    /// transaction -> endpoint number
    index: std::collections::HashMap<u32, usize>,
    spec: &'static Spec,
    reach: Reach,
}

#[allow(clippy::too_many_arguments)]
fn search_component(
    txns: &Txns,
    g: &Graph,
    keys: &[&OpenOrder],
    spec: &'static Spec,
    mask: u8,
    scc_of: &[u32],
    position: &[u32],
    steps_left: &mut u64,
    global: &dyn Fn(u32) -> u32,
) -> Result<Option<Forced>, String> {
    let open: usize = keys.iter().map(|k| k.open.len()).sum();
    if open > MAX_OPEN {
        return Err(format!(
            "a component with {open} open versions over {} keys (more than {MAX_OPEN})",
            keys.len()
        ));
    }
    // Endpoints: every transaction a possible edge of these keys touches inside an SCC.
    let mut endpoints: BTreeSet<u32> = BTreeSet::new();
    let mut sccs: BTreeSet<u32> = BTreeSet::new();
    for p in keys {
        for_each_possible_edge(p, |a, b, _| {
            let s = scc_of[a as usize];
            if s != u32::MAX && s == scc_of[b as usize] {
                endpoints.insert(a);
                endpoints.insert(b);
                sccs.insert(s);
            }
        });
    }
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(format!(
            "a component whose possible edges touch {} transactions (more than {MAX_ENDPOINTS})",
            endpoints.len()
        ));
    }
    let endpoints: Vec<u32> = endpoints.into_iter().collect();
    let index: std::collections::HashMap<u32, usize> =
        endpoints.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let n = endpoints.len() * 2;
    let words = n.div_ceil(64);
    let mut budget = REACH_STEPS;
    let mut reach = Reach {
        words,
        rows: vec![0; n * words],
        undo: Vec::new(),
    };
    // Breadth-first from each (endpoint, phase) through the known graph, inside the
    // component's SCCs (a path between two of their nodes never leaves them).
    let (a, b) = (spec.a & mask, spec.b & mask);
    let mut seen: std::collections::HashSet<(u32, u8)> = Default::default();
    for (i, &start) in endpoints.iter().enumerate() {
        for phase in 0..2u8 {
            let from = i * 2 + phase as usize;
            seen.clear();
            let mut queue = vec![(start, phase)];
            while let Some((v, p)) = queue.pop() {
                for (t, k) in g.out(v) {
                    if budget == 0 {
                        return Err("the reachability inside a component took too long".to_string());
                    }
                    budget -= 1;
                    if !sccs.contains(&scc_of[t as usize]) {
                        continue;
                    }
                    let steps = [(k & a != 0, 1u8), (p == 1 && k & b != 0, 0u8)];
                    for (take, q) in steps {
                        if take && seen.insert((t, q)) {
                            if let Some(&j) = index.get(&t) {
                                let to = j * 2 + q as usize;
                                reach.rows[from * words + to / 64] |= 1 << (to % 64);
                            }
                            queue.push((t, q));
                        }
                    }
                }
            }
        }
    }
    let mut comp = Component {
        keys: keys.to_vec(),
        index,
        spec,
        reach,
    };
    let mut state = SearchState {
        placed: keys.iter().map(|k| vec![false; k.open.len()]).collect(),
        last: vec![None; keys.len()],
        tried: 0,
        steps_left: (*steps_left).min(STEPS_PER_COMPONENT),
        dead_ends: Vec::new(),
        exhausted: false,
    };
    let ok = place(txns, &mut comp, &mut state, position, global);
    *steps_left -= (*steps_left).min(STEPS_PER_COMPONENT) - state.steps_left;
    if ok {
        return Ok(None);
    }
    if state.exhausted {
        return Err(format!(
            "a component with {open} open versions over {} keys ran out of its step budget",
            keys.len()
        ));
    }
    Ok(Some(Forced {
        spec: comp.spec,
        keys: keys
            .iter()
            .map(|k| {
                (
                    k.key,
                    k.open
                        .iter()
                        .filter_map(|v| v.writer.map(|w| (v.value, global(w))))
                        .collect(),
                )
            })
            .collect(),
        tried: state.tried,
        dead_ends: state.dead_ends,
    }))
}

struct SearchState {
    placed: Vec<Vec<bool>>,
    /// Per key: the open version placed last (None: still the start version).
    last: Vec<Option<usize>>,
    tried: u64,
    steps_left: u64,
    dead_ends: Vec<String>,
    exhausted: bool,
}

/// Depth-first placement; true when a complete acyclic placement exists.
fn place(
    txns: &Txns,
    comp: &mut Component<'_>,
    st: &mut SearchState,
    position: &[u32],
    global: &dyn Fn(u32) -> u32,
) -> bool {
    // The first key with versions left to place.
    let Some(ki) = (0..comp.keys.len()).find(|&i| st.placed[i].iter().any(|p| !p)) else {
        return true;
    };
    let key = comp.keys[ki];
    let mut choices: Vec<usize> = (0..key.open.len())
        .filter(|&i| !st.placed[ki][i] && key.preds[i].iter().all(|&j| st.placed[ki][j as usize]))
        .collect();
    // The topological order first: usually the real one.
    choices.sort_by_key(|&i| key.open[i].writer.map_or(0, |w| position[w as usize]));
    for i in choices {
        if st.steps_left == 0 {
            st.exhausted = true;
            return false;
        }
        st.steps_left -= 1;
        st.tried += 1;
        let mark = comp.reach.mark();
        let from = match st.last[ki] {
            None => &key.start,
            Some(j) => &key.open[j],
        };
        let to = &key.open[i];
        match add_placement(comp, from, to) {
            Ok(()) => {
                let prev = st.last[ki];
                st.placed[ki][i] = true;
                st.last[ki] = Some(i);
                if place(txns, comp, st, position, global) {
                    return true;
                }
                st.placed[ki][i] = false;
                st.last[ki] = prev;
            }
            Err((x, y, kind)) => {
                if st.dead_ends.len() < 3 {
                    st.dead_ends.push(format!(
                        "on key {}, {} right after {} makes {} -{}-> {}, which closes a cycle",
                        txns.key_name(key.key),
                        txns.value_name(to.value),
                        txns.value_name(from.value),
                        super::anomaly::txn_name(txns, global(x)),
                        super::graph::kind_name(kind),
                        super::anomaly::txn_name(txns, global(y))
                    ));
                }
            }
        }
        comp.reach.rollback(mark);
        if st.exhausted {
            return false;
        }
    }
    false
}

/// Adds the edges of placing `to` right after `from`; on a cycle, the closing edge.
fn add_placement(
    comp: &mut Component<'_>,
    from: &Version,
    to: &Version,
) -> Result<(), (u32, u32, u8)> {
    let Some(w) = to.writer else { return Ok(()) };
    let mut edges: Vec<(u32, u32, u8)> = Vec::new();
    if let Some(x) = from.writer {
        edges.push((x, w, WW));
    }
    edges.extend(from.readers.iter().map(|&r| (r, w, RW)));
    for (x, y, kind) in edges {
        if x == y {
            continue;
        }
        let (Some(&i), Some(&j)) = (comp.index.get(&x), comp.index.get(&y)) else {
            // Not inside the component's SCCs: this edge is on no cycle.
            continue;
        };
        let (spec, r) = (comp.spec, &mut comp.reach);
        let mut ok = true;
        if spec.a & kind != 0 {
            ok &= r.add(i * 2, j * 2 + 1) && r.add(i * 2 + 1, j * 2 + 1);
        }
        if ok && spec.b & kind != 0 {
            ok &= r.add(i * 2 + 1, j * 2);
        }
        if !ok {
            return Err((x, y, kind));
        }
    }
    Ok(())
}
