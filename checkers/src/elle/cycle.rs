//! Cycle search: strongly connected components first, then, inside each component,
//! cheap proofs of which models' cycles exist, then the shortest cycle of each anomaly
//! class, as Elle does.
//!
//! A cycle can only live inside one strongly connected component (SCC) of the graph, and
//! a valid history's graph is acyclic, so the common case costs one linear Tarjan pass.
//! Inside a bad component:
//!
//! 1. Existence ([`super::exists`]): for each of Elle's per-model subgraphs (ww for
//!    read-uncommitted, ww+wr for read committed, "ww/wr then maybe one rw" for snapshot
//!    isolation, ...), one more Tarjan pass says whether a cycle that model forbids
//!    exists. That decides the verdict for every model that has such a subgraph, in
//!    linear time, and rules out the classes whose cycles cannot exist.
//! 2. Explanation: each remaining anomaly class (G0, G1c, G-single-item, ...) is a
//!    breadth-first search over (transaction, small automaton state) that only follows
//!    the edge kinds the class allows and accepts only cycles of that class. BFS gives
//!    the shortest such cycle, which is the one a person can follow. Tarjan is
//!    iterative: a million-node component must not overflow the stack.
//!
//! Every cycle found is then explained the way Elle's explainer does (when an edge has
//! several reasons, the first of the workload's preference order, e.g. ww before rw for
//! list-append) and named by the edges of that explanation (Elle's `cycle-explainer`):
//! one rw edge is G-single-item, several non-adjacent ones G-nonadjacent-item, several
//! with two adjacent G2-item, else G1c with a wr edge, else G0; `-realtime` when a
//! realtime edge is used, else `-process` when a process edge is.
//!
//! The searches for G0, G1c and G2-item are complete: such a cycle exists exactly when a
//! sub-component (over the class's edge kinds) contains a starting edge of the right
//! kind, and then BFS finds it. G-single and G-nonadjacent need a search per starting
//! edge; they run under a step budget and, when it runs out, the class is reported as
//! "not fully searched". The existence proofs of step 1 make that matter only for
//! models without a subgraph of their own (consistent-view, cursor-stability, ...).

use super::consistency;
use super::exists::{self, ExistsCase};
use super::graph::{Graph, DATA, KINDS, PROCESS, REALTIME, RW, WR, WW};
use super::scc::Tarjan;
use crate::checker::CheckContext;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The shape a cycle must have to be of one anomaly class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Only ww edges (Adya's G0, write cycles).
    G0,
    /// ww and wr edges, at least one wr (G1c, circular information flow).
    G1c,
    /// Exactly one rw edge (G-single, read skew).
    GSingle,
    /// At least two rw edges, no two adjacent (G-nonadjacent).
    GNonadjacent,
    /// At least one rw edge (G2-item, write skew and worse).
    G2Item,
}

/// An anomaly class: a rule plus, for the session and strict variants, one extra edge
/// kind (process or realtime) the cycle must use at least once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    pub rule: Rule,
    pub extra: u8,
    pub name: &'static str,
}

const fn class(rule: Rule, extra: u8, name: &'static str) -> Class {
    Class { rule, extra, name }
}

/// Every cycle class, most severe first; searched in this order. The names are Elle's:
/// list-append and rw-register only have item (key) anti-dependencies, so one-rw and
/// non-adjacent-rw cycles are the `-item` variants (which imply Elle's G-single and
/// G-nonadjacent).
pub const CLASSES: [Class; 15] = [
    class(Rule::G0, 0, "G0"),
    class(Rule::G1c, 0, "G1c"),
    class(Rule::GSingle, 0, "G-single-item"),
    class(Rule::GNonadjacent, 0, "G-nonadjacent-item"),
    class(Rule::G2Item, 0, "G2-item"),
    class(Rule::G0, PROCESS, "G0-process"),
    class(Rule::G1c, PROCESS, "G1c-process"),
    class(Rule::GSingle, PROCESS, "G-single-item-process"),
    class(Rule::GNonadjacent, PROCESS, "G-nonadjacent-item-process"),
    class(Rule::G2Item, PROCESS, "G2-item-process"),
    class(Rule::G0, REALTIME, "G0-realtime"),
    class(Rule::G1c, REALTIME, "G1c-realtime"),
    class(Rule::GSingle, REALTIME, "G-single-item-realtime"),
    class(Rule::GNonadjacent, REALTIME, "G-nonadjacent-item-realtime"),
    class(Rule::G2Item, REALTIME, "G2-item-realtime"),
];

/// Elle's name for a cycle whose steps have these kinds (`elle.txn/cycle-explainer`);
/// `None` for a cycle without data edges (impossible in a valid graph).
pub fn classify(kinds: &[u8]) -> Option<&'static str> {
    let n = kinds.len();
    let rws = kinds.iter().filter(|&&k| k == RW).count();
    let adjacent = (0..n).any(|i| kinds[i] == RW && kinds[(i + 1) % n] == RW);
    let rule = match rws {
        1 => Rule::GSingle,
        0 if kinds.contains(&WR) => Rule::G1c,
        0 if kinds.contains(&WW) => Rule::G0,
        0 => return None,
        _ if adjacent => Rule::G2Item,
        _ => Rule::GNonadjacent,
    };
    let extra = if kinds.contains(&REALTIME) {
        REALTIME
    } else if kinds.contains(&PROCESS) {
        PROCESS
    } else {
        0
    };
    CLASSES
        .iter()
        .find(|c| c.rule == rule && c.extra == extra)
        .map(|c| c.name)
}

/// The order in which a workload's explainer names an edge that has several reasons:
/// Elle's list-append explains ww, then wr, then rw; its rw-register wr, then ww, then
/// rw; session orders come last in both.
pub type Preference = [u8; 5];
pub const LIST_APPEND_PREFERENCE: Preference = [WW, WR, RW, PROCESS, REALTIME];
pub const RW_REGISTER_PREFERENCE: Preference = [WR, WW, RW, PROCESS, REALTIME];

/// `cycle` with each step's kind chosen as the workload's explainer would.
fn explain_kinds(g: &Graph, cycle: &Cycle, prefer: &Preference) -> Cycle {
    (0..cycle.len())
        .map(|i| {
            let (from, chosen) = cycle[i];
            let to = cycle[(i + 1) % cycle.len()].0;
            let bits = g.kind(from, to);
            let kind = prefer
                .iter()
                .copied()
                .find(|&k| bits & k != 0)
                .unwrap_or(chosen);
            (from, kind)
        })
        .collect()
}

// Automaton state bits. The meaning of bit A depends on the rule: G1c: a wr edge seen;
// G-single and G2-item: an rw edge seen; G-nonadjacent: a second rw edge seen.
const S_EXTRA: u8 = 1;
const S_A: u8 = 2;
const S_LAST_RW: u8 = 4;
const STATES: usize = 8;

impl Class {
    /// Whether a cycle must be explained as this very class to count (Elle's `:type`
    /// constraint on G-single-item, G-nonadjacent-item and G2-item and their variants);
    /// G0 and G1c searches accept whatever their cycle turns out to be.
    pub fn typed(&self) -> bool {
        !matches!(self.rule, Rule::G0 | Rule::G1c)
    }

    /// The edge kinds a cycle of this class may use.
    pub fn allowed(&self) -> u8 {
        let base = match self.rule {
            Rule::G0 => WW,
            Rule::G1c => WW | WR,
            _ => DATA,
        };
        base | self.extra
    }

    /// The kind of the edge every search starts from; every cycle of the class has one.
    fn start_kind(&self) -> u8 {
        match self.rule {
            Rule::G0 if self.extra == 0 => WW,
            Rule::G1c if self.extra == 0 => WR,
            Rule::G0 | Rule::G1c => self.extra,
            _ => RW,
        }
    }

    /// The edge kinds a sub-component must contain internally for a cycle to exist.
    fn needed(&self) -> u8 {
        let data = match self.rule {
            Rule::G0 => WW,
            Rule::G1c => WR,
            _ => RW,
        };
        data | self.extra
    }

    /// The automaton state after the start edge.
    fn initial(&self) -> u8 {
        match (self.rule, self.start_kind()) {
            // One rw edge so far, and it was the last one taken.
            (Rule::GNonadjacent, RW) => S_LAST_RW,
            (Rule::GSingle | Rule::G2Item, RW) | (Rule::G1c, WR) => S_A,
            (_, k) if k == self.extra => S_EXTRA,
            _ => 0,
        }
    }

    /// One automaton step along an edge interpreted as `kind`; `None` = not allowed.
    fn step(&self, st: u8, kind: u8) -> Option<u8> {
        if kind & self.allowed() == 0 {
            return None;
        }
        let st_no_last = st & !S_LAST_RW;
        Some(match kind {
            RW => match self.rule {
                Rule::G0 | Rule::G1c => return None,
                Rule::GSingle if st & S_A != 0 => return None,
                Rule::GSingle | Rule::G2Item => st_no_last | S_A,
                Rule::GNonadjacent if st & S_LAST_RW != 0 => return None,
                Rule::GNonadjacent => st_no_last | S_A | S_LAST_RW,
            },
            WR if self.rule == Rule::G1c => st_no_last | S_A,
            k if k == self.extra => st_no_last | S_EXTRA,
            _ => st_no_last,
        })
    }

    /// Whether arriving back at the start in state `st` closes a cycle of this class.
    fn accepts(&self, st: u8) -> bool {
        if self.extra != 0 && st & S_EXTRA == 0 {
            return false;
        }
        match self.rule {
            Rule::G0 => true,
            // For G-nonadjacent the first edge is rw, so the last one must not be.
            Rule::GNonadjacent => st & S_A != 0 && st & S_LAST_RW == 0,
            _ => st & S_A != 0,
        }
    }

    /// Whether a closed walk with these edge kinds (cyclic order) is of this class.
    pub fn walk_is(&self, kinds: &[u8]) -> bool {
        if kinds.is_empty()
            || kinds
                .iter()
                .any(|&k| k & self.allowed() == 0 || k.count_ones() != 1)
        {
            return false;
        }
        if self.extra != 0 && !kinds.contains(&self.extra) {
            return false;
        }
        let rws = kinds.iter().filter(|&&k| k == RW).count();
        let n = kinds.len();
        match self.rule {
            Rule::G0 => rws == 0 && !kinds.contains(&WR),
            Rule::G1c => rws == 0 && kinds.contains(&WR),
            Rule::GSingle => rws == 1,
            Rule::G2Item => rws >= 1,
            Rule::GNonadjacent => {
                rws >= 2 && (0..n).all(|i| !(kinds[i] == RW && kinds[(i + 1) % n] == RW))
            }
        }
    }
}

/// A cycle: `steps[i] = (txn, kind)` means txn -kind-> the next step's txn (wrapping).
pub type Cycle = Vec<(u32, u8)>;

/// What the cycle search found.
#[derive(Default)]
pub struct Found {
    /// Up to `cap` cycles per class name.
    pub cycles: BTreeMap<&'static str, Vec<Cycle>>,
    /// Classes whose search ran out of budget somewhere: absence is not proven.
    pub incomplete: BTreeSet<&'static str>,
    /// Non-trivial strongly connected components of the whole graph.
    pub scc_count: usize,
    /// Set when the caller cancelled (time limit); the result is then partial.
    pub cancelled: bool,
    /// Per component, the weakest models whose cycle-existence subgraph has a cycle
    /// (Elle's `*-cycle-exists`), whether or not a cycle was also shown.
    pub exists: Vec<ExistsCase>,
}

/// Node-set membership with O(1) reset: `member[v] == stamp` and `local[v]` = position.
pub(super) struct Sets {
    member: Vec<u32>,
    local: Vec<u32>,
    stamp: u32,
}

impl Sets {
    pub(super) fn new(n: usize) -> Sets {
        Sets {
            member: vec![0; n],
            local: vec![0; n],
            stamp: 0,
        }
    }

    pub(super) fn enter(&mut self, nodes: &[u32]) {
        self.stamp += 1;
        for (i, &v) in nodes.iter().enumerate() {
            self.member[v as usize] = self.stamp;
            self.local[v as usize] = i as u32;
        }
    }

    pub(super) fn local_of(&self, v: u32) -> Option<usize> {
        (self.member[v as usize] == self.stamp).then(|| self.local[v as usize] as usize)
    }
}

/// Strongly connected components of size >= 2 of the subgraph induced by `nodes` over
/// edges whose kinds intersect `mask`, as transaction ids.
pub(super) fn tarjan(g: &Graph, nodes: &[u32], mask: u8, sets: &mut Sets) -> Vec<Vec<u32>> {
    sets.enter(nodes);
    let mut out = Vec::new();
    Tarjan::default().run(
        nodes.len(),
        |v, cursor| {
            let (targets, kinds) = g.row(nodes[v]);
            while (*cursor as usize) < targets.len() {
                let i = *cursor as usize;
                *cursor += 1;
                if kinds[i] & mask != 0 {
                    if let Some(w) = sets.local_of(targets[i]) {
                        return Some(w);
                    }
                }
            }
            None
        },
        |comp| out.push(comp.iter().map(|&w| nodes[w as usize]).collect()),
    );
    out
}

/// Why a search stopped without a cycle.
enum Miss {
    None,
    /// No cycle within the length bound, but the search was cut by it.
    Bounded,
    Exhausted,
    Cancelled,
}

/// BFS scratch space over one component, reused across start edges via epochs.
struct Bfs {
    epoch: Vec<u32>,
    parent: Vec<u32>,
    via: Vec<u8>,
    current: u32,
}

impl Bfs {
    fn new(n: usize) -> Bfs {
        Bfs {
            epoch: vec![0; n * STATES],
            parent: vec![0; n * STATES],
            via: vec![0; n * STATES],
            current: 0,
        }
    }
}

struct Budget {
    steps_left: u64,
}

/// Shortest cycle of `class` through the start edge `a -> b` (kind = start kind), within
/// the component whose membership is loaded in `sets`.
#[allow(clippy::too_many_arguments)]
fn bfs_cycle(
    local: &Local,
    comp: &[u32],
    bfs: &mut Bfs,
    class: &Class,
    la: usize,
    lb: usize,
    max_len: usize,
    budget: &mut Budget,
    ctx: &CheckContext,
) -> Result<Cycle, Miss> {
    bfs.current += 1;
    let ep = bfs.current;
    let start_kind = class.start_kind();
    let s0 = class.initial();
    let code = |l: usize, st: u8| l * STATES + st as usize;
    let mut queue: VecDeque<u32> = VecDeque::new();
    let c0 = code(lb, s0);
    bfs.epoch[c0] = ep;
    bfs.parent[c0] = u32::MAX;
    bfs.via[c0] = start_kind;
    queue.push_back(c0 as u32);
    // Layered BFS: nodes of layer d close cycles of d + 2 edges (start edge included).
    let (mut depth, mut left_in_layer, mut next_layer) = (0usize, 1usize, 0usize);
    while let Some(c) = queue.pop_front() {
        if depth + 2 > max_len {
            return Err(Miss::Bounded);
        }
        left_in_layer -= 1;
        let (l, st) = (c as usize / STATES, (c as usize % STATES) as u8);
        let (targets, kinds) = local.row(l);
        for (&lt, &kinds) in targets.iter().zip(kinds) {
            if budget.steps_left == 0 {
                return Err(Miss::Exhausted);
            }
            budget.steps_left -= 1;
            if budget.steps_left & 0xffff == 0 && ctx.cancel.is_cancelled() {
                return Err(Miss::Cancelled);
            }
            let lt = lt as usize;
            for &k in KINDS.iter().filter(|&&k| kinds & k != 0) {
                let Some(st2) = class.step(st, k) else {
                    continue;
                };
                if lt == la {
                    if class.accepts(st2) {
                        // Walk parents back to the start edge.
                        let mut rev: Vec<(u32, u8)> = vec![(comp[l], k)];
                        let mut cur = c as usize;
                        while bfs.parent[cur] != u32::MAX {
                            let p = bfs.parent[cur] as usize;
                            rev.push((comp[p / STATES], bfs.via[cur]));
                            cur = p;
                        }
                        rev.push((comp[la], start_kind));
                        rev.reverse();
                        return Ok(rev);
                    }
                    continue;
                }
                let c2 = code(lt, st2);
                if bfs.epoch[c2] != ep {
                    bfs.epoch[c2] = ep;
                    bfs.parent[c2] = c;
                    bfs.via[c2] = k;
                    queue.push_back(c2 as u32);
                    next_layer += 1;
                }
            }
        }
        if left_in_layer == 0 {
            depth += 1;
            left_in_layer = next_layer;
            next_layer = 0;
        }
    }
    Err(Miss::None)
}

/// One sub-component's edges of a class's kinds, between its own members, by local
/// index: the searches never scan edges that leave it or that the class cannot use
/// (a transaction may have thousands of realtime edges to readers outside).
struct Local {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    kinds: Vec<u8>,
}

impl Local {
    fn new(g: &Graph, sub: &[u32], sets: &Sets, mask: u8) -> Local {
        let mut offsets = Vec::with_capacity(sub.len() + 1);
        let mut targets = Vec::new();
        let mut kinds = Vec::new();
        offsets.push(0);
        for &v in sub {
            for (t, k) in g.out(v) {
                if k & mask != 0 {
                    if let Some(lt) = sets.local_of(t) {
                        targets.push(lt as u32);
                        kinds.push(k & mask);
                    }
                }
            }
            offsets.push(targets.len() as u32);
        }
        Local {
            offsets,
            targets,
            kinds,
        }
    }

    fn row(&self, l: usize) -> (&[u32], &[u8]) {
        let (a, b) = (self.offsets[l] as usize, self.offsets[l + 1] as usize);
        (&self.targets[a..b], &self.kinds[a..b])
    }
}

/// Cuts a closed walk that repeats a transaction down to a simple cycle of the class:
/// BFS over automaton states may pass a node twice; usually one of the two loops still
/// has the class's shape (the other one is a cycle of a class searched earlier). When
/// neither has, the walk is returned as is and the caller rejects it.
fn simplify(class: &Class, mut walk: Cycle) -> Cycle {
    // Bounded: each round removes at least one step.
    for _ in 0..walk.len() {
        let mut first_seen: BTreeMap<u32, usize> = BTreeMap::new();
        let mut split = None;
        for (i, &(v, _)) in walk.iter().enumerate() {
            if let Some(&j) = first_seen.get(&v) {
                split = Some((j, i));
                break;
            }
            first_seen.insert(v, i);
        }
        let Some((j, i)) = split else { break };
        let inner: Cycle = walk[j..i].to_vec();
        let outer: Cycle = walk[..j].iter().chain(walk[i..].iter()).copied().collect();
        let kinds = |c: &Cycle| c.iter().map(|s| s.1).collect::<Vec<u8>>();
        if class.walk_is(&kinds(&inner)) {
            walk = inner;
        } else if class.walk_is(&kinds(&outer)) {
            walk = outer;
        } else {
            break;
        }
    }
    walk
}

/// Cycle length bounds of the iterative deepening, in edges.
const DEPTHS: [usize; 7] = [2, 3, 4, 6, 8, 12, usize::MAX];

/// Per-class step budget for the searches that must try many start edges.
const STEP_BUDGET: u64 = 20_000_000;

/// Finds up to `cap` shortest cycles of each class in `g`, and which models' cycles
/// exist in each component. `prefer` is the workload's explainer order.
pub fn find_cycles(g: &Graph, prefer: &Preference, cap: usize, ctx: &CheckContext) -> Found {
    let mut found = Found::default();
    let all: Vec<u32> = (0..g.node_count() as u32).collect();
    let mut sets = Sets::new(g.node_count());
    let sccs = tarjan(g, &all, 0xff, &mut sets);
    drop(all);
    found.scc_count = sccs.len();
    let mut budgets: BTreeMap<&'static str, Budget> = CLASSES
        .iter()
        .map(|c| {
            (
                c.name,
                Budget {
                    steps_left: STEP_BUDGET,
                },
            )
        })
        .collect();
    for scc in &sccs {
        if ctx.cancel.is_cancelled() {
            found.cancelled = true;
            return found;
        }
        // Step 1: which models' cycles exist here; classes no cycle can have are skipped.
        let cases = exists::cases_in(g, scc, &mut sets);
        let impossible = exists::impossible_classes(&cases);
        found.exists.extend(cases);
        // Names found in this component, as searched (what Elle skips by) and as named.
        let mut here: Vec<&'static str> = Vec::new();
        let mut subs_by_mask: Vec<(u8, Vec<Vec<u32>>)> = Vec::new();
        for class in &CLASSES {
            if impossible.contains(class.name)
                || consistency::implied_anomalies(&here).contains(class.name)
            {
                continue;
            }
            // Enough cases of this class to show; its presence is already established.
            if found.cycles.get(class.name).map_or(0, Vec::len) >= cap {
                continue;
            }
            let mask = class.allowed();
            if !subs_by_mask.iter().any(|(m, _)| *m == mask) {
                let subs = tarjan(g, scc, mask, &mut sets);
                subs_by_mask.push((mask, subs));
            }
            let subs = &subs_by_mask
                .iter()
                .find(|(m, _)| *m == mask)
                .expect("just added")
                .1;
            let budget = budgets
                .get_mut(class.name)
                .expect("every class has a budget");
            match search_class(g, subs, class, prefer, &mut sets, cap, budget, ctx) {
                Ok(Searched { cycles, unproven }) => {
                    if unproven {
                        found.incomplete.insert(class.name);
                    }
                    for (name, cycle) in cycles {
                        if name == class.name && !here.contains(&name) {
                            here.push(name);
                        }
                        // The same cycle may come back from another class's search.
                        let mut members: Vec<u32> = cycle.iter().map(|s| s.0).collect();
                        members.sort_unstable();
                        let list = found.cycles.entry(name).or_default();
                        let known = list.iter().any(|c| {
                            let mut m: Vec<u32> = c.iter().map(|s| s.0).collect();
                            m.sort_unstable();
                            m == members
                        });
                        if list.len() < cap && !known {
                            list.push(cycle);
                        }
                    }
                }
                Err(Miss::Exhausted) => {
                    found.incomplete.insert(class.name);
                }
                Err(Miss::Cancelled) => {
                    found.cancelled = true;
                    return found;
                }
                Err(Miss::None | Miss::Bounded) => {}
            }
        }
    }
    // A class found in one component is not incomplete for the verdict's sake.
    let names: Vec<&'static str> = found.cycles.keys().copied().collect();
    let implied = consistency::implied_anomalies(&names);
    found.incomplete.retain(|c| !implied.contains(c));
    found
}

/// Searches one class over the sub-components (of its allowed edge kinds) of one SCC.
/// Returns the cycles found, each under the name Elle's explainer gives it: usually
/// the class searched; a cycle that explains as another class is kept under that name
/// (it is a real cycle of it), and this class's absence is then not proven.
#[allow(clippy::too_many_arguments)]
fn search_class(
    g: &Graph,
    subs: &[Vec<u32>],
    class: &Class,
    prefer: &Preference,
    sets: &mut Sets,
    want: usize,
    budget: &mut Budget,
    ctx: &CheckContext,
) -> Result<Searched, Miss> {
    let start = class.start_kind();
    let mut out: Vec<(&'static str, Cycle)> = Vec::new();
    let mut of_class = 0usize;
    // Node sets of the cycles found, so one cycle is not reported from each of its edges.
    let mut seen: Vec<Vec<u32>> = Vec::new();
    // Whether a shortest walk from some start edge was not a simple cycle of this class:
    // a simple one may still exist behind it, so absence is then not proven.
    let mut detoured = false;
    for sub in subs {
        sets.enter(sub);
        // Which edge kinds occur inside this sub-component?
        let mut inside = 0u8;
        for &v in sub {
            for (t, k) in g.out(v) {
                if sets.local_of(t).is_some() {
                    inside |= k & class.allowed();
                }
            }
        }
        if inside & class.needed() != class.needed() {
            continue;
        }
        // The BFS tables cost ~9 bytes per (transaction, state); past the memory limit
        // the search is abandoned and reported as incomplete, never guessed.
        if sub.len().saturating_mul(STATES * 9) > ctx.memory_limit_bytes / 2 {
            return Err(Miss::Exhausted);
        }
        let mut bfs = Bfs::new(sub.len());
        let local = Local::new(g, sub, sets, class.allowed());
        let starts: Vec<(usize, usize)> = (0..sub.len())
            .flat_map(|la| {
                let (targets, kinds) = local.row(la);
                targets
                    .iter()
                    .zip(kinds)
                    .filter(|(_, &k)| k & start != 0)
                    .map(move |(&lb, _)| (la, lb as usize))
            })
            .collect();
        // Iterative deepening: every start edge at one length bound before the next, so
        // the first cycle found is (nearly) the shortest, and short cycles, the common case
        // in buggy histories, cost a small neighbourhood search each instead of a sweep of
        // a possibly huge component.
        for &max_len in &DEPTHS {
            let mut bounded = false;
            for &(a, b) in &starts {
                match bfs_cycle(&local, sub, &mut bfs, class, a, b, max_len, budget, ctx) {
                    Ok(walk) => {
                        let cycle = simplify(class, walk);
                        let mut members: Vec<u32> = cycle.iter().map(|s| s.0).collect();
                        members.sort_unstable();
                        let simple = members.windows(2).all(|w| w[0] != w[1]);
                        if !simple {
                            // The walk only has the class's shape by passing a node twice
                            // (for G-nonadjacent: a detour that separates two rw edges).
                            // That is no cycle of this class; never report it.
                            detoured = true;
                            continue;
                        }
                        let explained = explain_kinds(g, &cycle, prefer);
                        let kinds: Vec<u8> = explained.iter().map(|s| s.1).collect();
                        let Some(name) = classify(&kinds) else {
                            detoured = true;
                            continue;
                        };
                        // Elle names what G0 and G1c searches find by its explanation
                        // and counts the search done; the other classes must match.
                        if name != class.name && class.typed() {
                            detoured = true;
                        }
                        if !seen.contains(&members) {
                            seen.push(members);
                            out.push((name, explained));
                            of_class += usize::from(name == class.name);
                            if of_class >= want || out.len() >= 4 * want {
                                return Ok(Searched {
                                    cycles: out,
                                    unproven: false,
                                });
                            }
                        }
                    }
                    Err(Miss::Bounded) => bounded = true,
                    Err(Miss::None) => {}
                    // Out of budget: cycles in hand are still proofs.
                    Err(Miss::Exhausted) => {
                        return Ok(Searched {
                            cycles: out,
                            unproven: of_class == 0,
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            // The shortest cycles are in hand; or no search was cut short by the bound,
            // so deeper bounds cannot find more.
            if of_class > 0 || !bounded {
                break;
            }
        }
        if of_class > 0 {
            return Ok(Searched {
                cycles: out,
                unproven: false,
            });
        }
    }
    Ok(Searched {
        cycles: out,
        unproven: detoured,
    })
}

/// What one class's search in one component produced.
struct Searched {
    /// Cycles found, each under the name its explanation gives it.
    cycles: Vec<(&'static str, Cycle)>,
    /// No cycle of the class was found, yet its absence is not proven (budget, or
    /// shortest walks that were no simple cycle of the class).
    unproven: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elle::exists::{components, SPECS};
    use crate::elle::graph::EdgeList;
    use proptest::prelude::*;

    fn graph(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
        let mut e = EdgeList::default();
        for &(a, b, k) in edges {
            e.add(a, b, k);
        }
        Graph::build(n, e)
    }

    fn find(g: &Graph) -> Found {
        find_cycles(g, &LIST_APPEND_PREFERENCE, 8, &CheckContext::default())
    }

    fn names(f: &Found) -> Vec<&'static str> {
        f.cycles.keys().copied().collect()
    }

    #[test]
    fn acyclic_graph_has_no_components_and_no_cycles() {
        let g = graph(4, &[(0, 1, WW), (1, 2, WR), (2, 3, RW), (0, 3, REALTIME)]);
        let f = find(&g);
        assert_eq!(f.scc_count, 0);
        assert!(f.cycles.is_empty() && f.exists.is_empty());
    }

    #[test]
    fn each_rule_is_recognised_on_its_minimal_cycle() {
        let g0 = graph(2, &[(0, 1, WW), (1, 0, WW)]);
        assert_eq!(names(&find(&g0)), vec!["G0"]);
        let g1c = graph(2, &[(0, 1, WW), (1, 0, WR)]);
        assert_eq!(names(&find(&g1c)), vec!["G1c"]);
        let single = graph(2, &[(0, 1, RW), (1, 0, WR)]);
        assert_eq!(names(&find(&single)), vec!["G-single-item"]);
        let nonadj = graph(4, &[(0, 1, RW), (1, 2, WR), (2, 3, RW), (3, 0, WR)]);
        assert_eq!(names(&find(&nonadj)), vec!["G-nonadjacent-item"]);
        let g2 = graph(2, &[(0, 1, RW), (1, 0, RW)]);
        assert_eq!(names(&find(&g2)), vec!["G2-item"]);
        let rt = graph(2, &[(0, 1, RW), (1, 0, REALTIME)]);
        assert_eq!(names(&find(&rt)), vec!["G-single-item-realtime"]);
        let pr = graph(2, &[(0, 1, WW), (1, 0, PROCESS)]);
        assert_eq!(names(&find(&pr)), vec!["G0-process"]);
    }

    #[test]
    fn an_edge_with_several_reasons_is_explained_as_elle_would() {
        // 0 -> 1 is both ww and rw. List-append's explainer says ww first: the cycle
        // is G0, never G-single-item.
        let g = graph(2, &[(0, 1, WW | RW), (1, 0, WW)]);
        assert_eq!(names(&find(&g)), vec!["G0"]);
        // rw-register's explainer names wr before ww.
        let g = graph(2, &[(0, 1, WW | WR), (1, 0, WW)]);
        let f = find_cycles(&g, &RW_REGISTER_PREFERENCE, 8, &CheckContext::default());
        assert_eq!(names(&f), vec!["G1c"]);
    }

    #[test]
    fn classify_follows_elles_cycle_explainer() {
        assert_eq!(classify(&[WW, WW]), Some("G0"));
        assert_eq!(classify(&[WW, WR, REALTIME]), Some("G1c-realtime"));
        assert_eq!(classify(&[RW, WR, PROCESS]), Some("G-single-item-process"));
        assert_eq!(classify(&[RW, WW, RW, WR]), Some("G-nonadjacent-item"));
        // rw edges adjacent across the wrap-around.
        assert_eq!(classify(&[RW, WW, WR, RW]), Some("G2-item"));
        assert_eq!(classify(&[PROCESS, REALTIME]), None);
    }

    #[test]
    fn bfs_returns_the_shortest_cycle() {
        // A long G-single loop 0->1->2->3->0 and a short one 0->4->0.
        let g = graph(
            5,
            &[
                (0, 1, RW),
                (1, 2, WW),
                (2, 3, WW),
                (3, 0, WW),
                (0, 4, RW),
                (4, 0, WR),
            ],
        );
        let f = find(&g);
        assert_eq!(f.cycles["G-single-item"][0].len(), 2, "{:?}", f.cycles);
    }

    #[test]
    fn walk_classification_handles_wraparound_adjacency() {
        let c = CLASSES
            .iter()
            .find(|c| c.name == "G-nonadjacent-item")
            .unwrap();
        assert!(c.walk_is(&[RW, WW, RW, WR]));
        assert!(!c.walk_is(&[RW, WW, WR, RW]));
    }

    #[test]
    fn deep_chain_component_does_not_overflow_the_stack() {
        let n = 200_000u32;
        let mut edges: Vec<(u32, u32, u8)> = (0..n - 1).map(|i| (i, i + 1, WW)).collect();
        edges.push((n - 1, 0, WR));
        let g = graph(n as usize, &edges);
        let f = find(&g);
        assert_eq!(f.scc_count, 1);
        assert_eq!(f.cycles["G1c"][0].len(), n as usize);
    }

    #[test]
    fn a_thousand_transaction_ring_is_decided_and_explained() {
        // T0 -ww-> T1 -ww-> ... -ww-> T999 -rw-> T0, plus realtime edges every way a
        // concurrent history has them; the one rw edge makes it G-single-item.
        let n = 1000u32;
        let mut edges: Vec<(u32, u32, u8)> = (0..n - 1).map(|i| (i, i + 1, WW)).collect();
        edges.push((n - 1, 0, RW));
        let g = graph(n as usize, &edges);
        let f = find(&g);
        assert_eq!(names(&f), vec!["G-single-item"]);
        assert_eq!(f.cycles["G-single-item"][0].len(), n as usize);
        assert!(f.incomplete.is_empty(), "{:?}", f.incomplete);
        assert_eq!(
            f.exists.iter().map(|c| c.spec().exists).collect::<Vec<_>>(),
            // Snapshot isolation and repeatable read are incomparable: both are weakest.
            vec!["PL-SI-cycle-exists", "PL-2.99-cycle-exists"]
        );
    }

    /// Brute force: does some edge of kind `first` (a -> b) close a cycle through a path
    /// b ~> a over edges of kinds `path`? (Transitive closure; graphs here are tiny.)
    fn brute(n: usize, edges: &[(u32, u32, u8)], first: u8, path: u8) -> bool {
        let mut reach = vec![vec![false; n]; n];
        for (i, row) in reach.iter_mut().enumerate() {
            row[i] = true;
        }
        for &(a, b, k) in edges {
            if k & path != 0 && a != b {
                reach[a as usize][b as usize] = true;
            }
        }
        for m in 0..n {
            let via = reach[m].clone();
            for row in reach.iter_mut() {
                if row[m] {
                    for (j, &r) in via.iter().enumerate() {
                        row[j] |= r;
                    }
                }
            }
        }
        edges
            .iter()
            .any(|&(a, b, k)| k & first != 0 && a != b && reach[b as usize][a as usize])
    }

    /// Brute force for an extension spec: a closed walk of `a` steps, each maybe followed
    /// by one `b` step, via the closure of the one-step relation `A ∪ A;B`.
    fn brute_extension(n: usize, edges: &[(u32, u32, u8)], a: u8, b: u8) -> bool {
        let mut step = vec![vec![false; n]; n];
        for &(x, y, k) in edges {
            if x != y && k & a != 0 {
                step[x as usize][y as usize] = true;
                for &(y2, z, k2) in edges {
                    if y2 == y && y != z && k2 & b != 0 {
                        step[x as usize][z as usize] = true;
                    }
                }
            }
        }
        for m in 0..n {
            let via = step[m].clone();
            for row in step.iter_mut() {
                if row[m] {
                    for (j, &r) in via.iter().enumerate() {
                        row[j] |= r;
                    }
                }
            }
        }
        (0..n).any(|i| step[i][i])
    }

    fn random_graph() -> impl Strategy<Value = (usize, Vec<(u32, u32, u8)>)> {
        (2usize..8).prop_flat_map(|n| {
            let kind = prop::sample::select(vec![WW, WR, RW, WW | RW, WR | RW, REALTIME, PROCESS]);
            (
                Just(n),
                prop::collection::vec((0..n as u32, 0..n as u32, kind), 0..16),
            )
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

        /// Every reported cycle is a simple cycle of the graph whose explained edges have
        /// its class's shape; G0 is found whenever it exists; and each model's existence
        /// proof agrees with a brute force over its subgraph.
        #[test]
        fn reported_cycles_are_real_and_existence_proofs_are_exact((n, edges) in random_graph()) {
            let g = graph(n, &edges);
            let f = find(&g);
            for (name, cycles) in &f.cycles {
                for c in cycles {
                    let kinds: Vec<u8> = c.iter().map(|s| s.1).collect();
                    proptest::prop_assert_eq!(classify(&kinds), Some(*name), "{:?}", c);
                    let mut nodes: Vec<u32> = c.iter().map(|s| s.0).collect();
                    for (i, &(v, k)) in c.iter().enumerate() {
                        let next = c[(i + 1) % c.len()].0;
                        proptest::prop_assert!(g.kind(v, next) & k != 0, "{name}: no {k} edge {v}->{next}");
                    }
                    nodes.sort_unstable();
                    nodes.dedup();
                    proptest::prop_assert_eq!(nodes.len(), c.len(), "{} is not simple: {:?}", name, c);
                }
            }
            if brute(n, &edges, WW, WW) {
                proptest::prop_assert!(f.cycles.contains_key("G0"), "G0 missing for {:?}", edges);
            }
            // Each spec's subgraph has a cycle exactly when brute force says so.
            let all: Vec<u32> = (0..n as u32).collect();
            for spec in &SPECS {
                let mut sets = Sets::new(n);
                let has = !components(&g, &all, spec.a, spec.b, &mut sets).is_empty();
                let want = if spec.b == 0 {
                    brute(n, &edges, spec.a, spec.a)
                } else {
                    brute_extension(n, &edges, spec.a, spec.b)
                };
                proptest::prop_assert_eq!(has, want, "{} on {:?}", spec.exists, edges);
            }
            // The weakest violated specs are reported, and only violated ones.
            let reported: Vec<&str> = f.exists.iter().map(|c| c.spec().model).collect();
            let impossible = consistency::impossible_closure(&reported);
            for spec in &SPECS {
                let mut sets = Sets::new(n);
                let has = !components(&g, &all, spec.a, spec.b, &mut sets).is_empty();
                proptest::prop_assert!(!reported.contains(&spec.model) || has, "{} reported", spec.exists);
                proptest::prop_assert!(!has || impossible.contains(spec.model), "{} missing", spec.exists);
            }
        }
    }
}
