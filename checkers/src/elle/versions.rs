//! Version orders of rw-register keys: what is known about the order in which each
//! key's values were installed, inferred from sources Elle defines, each sound under
//! its own assumption (Elle's `elle.rw-register/version-graphs`).
//!
//! - `initial-state` (always): nil, the initial state, precedes every value.
//! - `transaction-order` (`--transaction-order`): an external total order of
//!   transactions (e.g. commit timestamps from the database) orders their writes.
//!   Sound when the database installs each key's versions in that order.
//! - `wfr-keys` (`--wfr-keys`, writes follow reads): a committed transaction that read
//!   `a` and then wrote `b` to a key installed `b` after `a`. Sound for any database
//!   that orders a transaction's writes after the versions it read (every lock- or
//!   MVCC-based one); not for last-writer-wins stores whose write timestamps can be
//!   older than what the transaction read (e.g. client clocks).
//! - `sequential-keys` (`--sequential-keys`): each key is sequentially consistent, so
//!   every value one process's transaction saw or wrote precedes every value a later
//!   transaction of that process saw or wrote. Sound when each process's operations on
//!   a key take effect in process order (per-key sequential consistency, e.g. clients
//!   pinned to one replica with read-your-writes).
//! - `linearizable-keys` (`--linearizable-keys`): each key is linearizable, so every
//!   value a transaction saw or wrote precedes every value of a transaction that began
//!   after it completed. Sound for per-key linearizable stores (and implied by strict
//!   serializability).
//!
//! Elle's rule for contradictions: sources are added in the order above; when adding
//! one closes a cycle in some key's version graph, the cycles are reported as
//! `cyclic-versions` (naming the sources involved) and that source is left out.
//!
//! Values a transaction "saw or wrote" on a key are its external read (the first
//! micro-op on the key, when it is a read; ok transactions only) and its final write
//! (ok or info). For sequential and linearizable keys Elle relates one transaction's
//! final value to the next one's first; we relate all of them (the assumption, as Elle
//! states it, covers every pair), which infers a superset of Elle's orders.

use super::anomaly::{self, txn_name, Anomalies};
use super::scc::Tarjan;
use super::txn::{FastMap, MopKind, Outcome, Txns, NIL};
use serde_json::json;
use std::collections::BTreeMap;

/// Which optional sources to use; see the module doc for when each is sound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inference {
    pub sequential_keys: bool,
    pub linearizable_keys: bool,
    pub wfr_keys: bool,
    /// Completion op index -> position in an external total order of transactions.
    pub transaction_order: Option<std::sync::Arc<BTreeMap<u64, i64>>>,
}

impl Inference {
    /// Names of the optional sources switched on, in Elle's order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.transaction_order.is_some() {
            v.push(Source::TransactionOrder.name());
        }
        if self.wfr_keys {
            v.push(Source::WfrKeys.name());
        }
        if self.sequential_keys {
            v.push(Source::SequentialKeys.name());
        }
        if self.linearizable_keys {
            v.push(Source::LinearizableKeys.name());
        }
        v
    }
}

/// Reads an external transaction order: a map from completion op index to position, as
/// a JSON object (`{"12": 1, "15": 2}`), a JSON list of pairs (`[[12, 1], [15, 2]]`) or
/// an EDN map (`{12 1, 15 2}`, as Elle takes it). The error is one sentence.
pub fn parse_transaction_order(text: &str) -> Result<BTreeMap<u64, i64>, String> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(json_err) => crate::format::edn::parse_complete(text.as_bytes()).map_err(|_| {
            format!("the transaction order is neither JSON nor EDN ({json_err}); expected a map from completion op index to position, e.g. {{\"12\": 1, \"15\": 2}}")
        })?,
    };
    let number = |v: &serde_json::Value, what: &str| -> Result<i64, String> {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("the transaction order has {what} {v}, not an integer"))
    };
    let pairs: Vec<(i64, i64)> = match &value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let k = k
                    .parse::<i64>()
                    .map_err(|_| format!("the transaction order has key {k:?}, not an op index"))?;
                Ok((k, number(v, "position")?))
            })
            .collect::<Result<_, String>>()?,
        serde_json::Value::Array(items) => items
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([k, v]) => Ok((number(k, "op index")?, number(v, "position")?)),
                _ => Err(format!(
                    "the transaction order has entry {p}, not an [index, position] pair"
                )),
            })
            .collect::<Result<_, String>>()?,
        other => {
            return Err(format!(
                "the transaction order is {other}, not a map from completion op index to position"
            ))
        }
    };
    pairs
        .into_iter()
        .map(|(k, v)| {
            u64::try_from(k)
                .map(|k| (k, v))
                .map_err(|_| format!("the transaction order names op index {k}, which is negative"))
        })
        .collect()
}

/// Where a version-order edge came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    InitialState = 0,
    TransactionOrder = 1,
    WfrKeys = 2,
    SequentialKeys = 3,
    LinearizableKeys = 4,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::InitialState => "initial-state",
            Source::TransactionOrder => "transaction-order",
            Source::WfrKeys => "wfr-keys",
            Source::SequentialKeys => "sequential-keys",
            Source::LinearizableKeys => "linearizable-keys",
        }
    }

    fn from_u8(x: u8) -> Source {
        match x {
            1 => Source::TransactionOrder,
            2 => Source::WfrKeys,
            3 => Source::SequentialKeys,
            4 => Source::LinearizableKeys,
            _ => Source::InitialState,
        }
    }
}

/// `from` was installed before `to` on `key`, because of transactions `a` and `b`
/// (the same transaction for writes-follow-reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VEdge {
    pub key: u32,
    pub from: u32,
    pub to: u32,
    pub source: u8,
    pub a: u32,
    pub b: u32,
}

/// "No such value" in a [`Touch`] (distinct from [`NIL`], a read of the initial state).
pub const ABSENT: u32 = u32::MAX - 1;

/// What one transaction did to one key, as seen from outside it.
#[derive(Clone, Copy, Debug)]
pub struct Touch {
    pub key: u32,
    /// The external read's value (NIL for nil), or ABSENT when there is none (or the
    /// transaction did not commit, so its reads are unknown).
    pub read: u32,
    /// The final write's value, or ABSENT.
    pub write: u32,
}

impl Touch {
    fn values(&self) -> impl Iterator<Item = u32> {
        [self.read, self.write].into_iter().filter(|&v| v != ABSENT)
    }
}

/// Every transaction's touches, in one flat table.
pub struct Touches {
    pub off: Vec<u32>,
    pub list: Vec<Touch>,
}

impl Touches {
    /// Ok transactions: external reads and final writes; info transactions: final
    /// writes (their reads are unknown); failed ones: nothing.
    pub fn build(txns: &Txns) -> Touches {
        let mut off = Vec::with_capacity(txns.txns.len() + 1);
        let mut list: Vec<Touch> = Vec::with_capacity(txns.mops.len());
        off.push(0);
        for (t, txn) in txns.txns.iter().enumerate() {
            if txn.outcome != Outcome::Fail {
                let start = list.len();
                for m in txns.mops_of(t as u32) {
                    let slot = list[start..].iter().position(|x| x.key == m.key);
                    match m.kind {
                        MopKind::Read if slot.is_none() && txn.outcome == Outcome::Ok => {
                            list.push(Touch {
                                key: m.key,
                                read: m.a,
                                write: ABSENT,
                            })
                        }
                        MopKind::Write => match slot {
                            Some(s) => list[start + s].write = m.a,
                            None => list.push(Touch {
                                key: m.key,
                                read: ABSENT,
                                write: m.a,
                            }),
                        },
                        _ => {}
                    }
                }
            }
            off.push(list.len() as u32);
        }
        Touches { off, list }
    }

    pub fn of(&self, t: u32) -> &[Touch] {
        &self.list[self.off[t as usize] as usize..self.off[t as usize + 1] as usize]
    }

    fn on(&self, t: u32, key: u32) -> Option<&Touch> {
        self.of(t).iter().find(|x| x.key == key)
    }
}

/// The accepted version orders, plus what contradicted them.
pub struct Versions {
    /// Accepted edges (initial-state ones implicit), sorted by (key, from, to, ...).
    pub edges: Vec<VEdge>,
    /// Names of the sources accepted, starting with initial-state.
    pub sources: Vec<&'static str>,
}

impl Versions {
    /// The accepted edges of `key`.
    pub fn of_key(&self, key: u32) -> &[VEdge] {
        let a = self.edges.partition_point(|e| e.key < key);
        let b = self.edges.partition_point(|e| e.key <= key);
        &self.edges[a..b]
    }

    /// An accepted edge `from -> to` on `key`, if any (not the implicit nil ones).
    pub fn edge(&self, key: u32, from: u32, to: u32) -> Option<&VEdge> {
        let list = self.of_key(key);
        let i = list.partition_point(|e| (e.from, e.to) < (from, to));
        list.get(i).filter(|e| e.from == from && e.to == to)
    }
}

/// Infers version orders from the sources `inf` switches on; contradictions become
/// `cyclic-versions` cases in `anomalies`.
pub fn infer(
    txns: &Txns,
    touches: &Touches,
    inf: &Inference,
    anomalies: &mut Anomalies,
) -> Versions {
    let mut accepted: Vec<VEdge> = Vec::new();
    let mut sources = vec![Source::InitialState.name()];
    let mut scratch = Scratch::new(txns.values.len());
    // Initial-state alone is acyclic: it only says nil precedes everything. The optional
    // sources follow in Elle's order.
    // Each source's edges, computed side by side (they only read the touches), sorted.
    let wanted: Vec<Source> = [
        (inf.transaction_order.is_some(), Source::TransactionOrder),
        (inf.wfr_keys, Source::WfrKeys),
        (inf.sequential_keys, Source::SequentialKeys),
        (inf.linearizable_keys, Source::LinearizableKeys),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, s)| s)
    .collect();
    let edges_of = |source: Source| -> Vec<VEdge> {
        let mut e = match source {
            Source::TransactionOrder => transaction_order_edges(
                txns,
                touches,
                inf.transaction_order
                    .as_ref()
                    .expect("wanted only when given"),
            ),
            Source::WfrKeys => wfr_edges(txns, touches),
            Source::SequentialKeys => sequential_edges(txns, touches),
            Source::LinearizableKeys => linearizable_edges(txns, touches),
            Source::InitialState => Vec::new(),
        };
        e.sort_unstable();
        e.dedup_by(|x, y| (x.key, x.from, x.to) == (y.key, y.from, y.to));
        e
    };
    let candidates: Vec<(Source, Vec<VEdge>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = wanted
            .iter()
            .map(|&source| scope.spawn(move || (source, edges_of(source))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (source, new) in candidates {
        let merged = merge(&accepted, &new);
        let mut names = sources.clone();
        names.push(source.name());
        let cycles = cyclic_keys(&merged, &new, &mut scratch);
        if cycles.is_empty() {
            accepted = merged;
            sources.push(source.name());
        } else {
            for (key, scc) in cycles {
                anomalies.add("cyclic-versions", || {
                    cyclic_case(txns, &merged, key, &scc, &names)
                });
            }
        }
    }
    Versions {
        edges: accepted,
        sources,
    }
}

/// Merges two sorted edge lists, keeping the first of equal (key, from, to) edges.
fn merge(a: &[VEdge], b: &[VEdge]) -> Vec<VEdge> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len()
            || (i < a.len() && (a[i].key, a[i].from, a[i].to) <= (b[j].key, b[j].from, b[j].to));
        let e = if take_a {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if out
            .last()
            .is_none_or(|l: &VEdge| (l.key, l.from, l.to) != (e.key, e.from, e.to))
        {
            out.push(e);
        }
    }
    out
}

fn push_all(
    out: &mut Vec<VEdge>,
    key: u32,
    from: &Touch,
    to: &Touch,
    source: Source,
    a: u32,
    b: u32,
) {
    for x in from.values() {
        for y in to.values() {
            if x != y {
                out.push(VEdge {
                    key,
                    from: x,
                    to: y,
                    source: source as u8,
                    a,
                    b,
                });
            }
        }
    }
}

fn wfr_edges(txns: &Txns, touches: &Touches) -> Vec<VEdge> {
    let mut out = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        for x in touches.of(t as u32) {
            // nil's place is the initial state's business.
            if x.read != ABSENT && x.read != NIL && x.write != ABSENT && x.read != x.write {
                out.push(VEdge {
                    key: x.key,
                    from: x.read,
                    to: x.write,
                    source: Source::WfrKeys as u8,
                    a: t as u32,
                    b: t as u32,
                });
            }
        }
    }
    out
}

fn transaction_order_edges(
    txns: &Txns,
    touches: &Touches,
    order: &BTreeMap<u64, i64>,
) -> Vec<VEdge> {
    // (key, position, value, txn) of every ordered transaction's final writes.
    let mut writes: Vec<(u32, i64, u32, u32)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome == Outcome::Fail || txn.complete_index == u64::MAX {
            continue;
        }
        let Some(&pos) = order.get(&txn.complete_index) else {
            continue;
        };
        for x in touches.of(t as u32) {
            if x.write != ABSENT {
                writes.push((x.key, pos, x.write, t as u32));
            }
        }
    }
    writes.sort_unstable();
    // Per key, each group of equal positions precedes the next group.
    let mut out = Vec::new();
    let group_end = |i: usize| {
        let mut j = i;
        while j < writes.len() && (writes[j].0, writes[j].1) == (writes[i].0, writes[i].1) {
            j += 1;
        }
        j
    };
    let mut i = 0;
    while i < writes.len() {
        let j = group_end(i);
        if j < writes.len() && writes[j].0 == writes[i].0 {
            let k = group_end(j);
            for x in &writes[i..j] {
                for y in &writes[j..k] {
                    if x.2 != y.2 {
                        out.push(VEdge {
                            key: x.0,
                            from: x.2,
                            to: y.2,
                            source: Source::TransactionOrder as u8,
                            a: x.3,
                            b: y.3,
                        });
                    }
                }
            }
        }
        i = j;
    }
    out
}

fn sequential_edges(txns: &Txns, touches: &Touches) -> Vec<VEdge> {
    let order = super::graph::process_order(txns);
    let mut out = Vec::new();
    // key -> the process's last transaction touching it.
    let mut last: FastMap<u32, u32> = FastMap::default();
    for (i, &(process, _, t)) in order.iter().enumerate() {
        if i == 0 || order[i - 1].0 != process {
            last.clear();
        }
        for x in touches.of(t) {
            if let Some(&p) = last.get(&x.key) {
                if let Some(from) = touches.on(p, x.key) {
                    push_all(&mut out, x.key, from, x, Source::SequentialKeys, p, t);
                }
            }
            last.insert(x.key, t);
        }
    }
    out
}

fn linearizable_edges(txns: &Txns, touches: &Touches) -> Vec<VEdge> {
    // Per key, the realtime order among the transactions touching it, reduced the same
    // way as the realtime graph.
    let mut by_key: Vec<(u32, u32, u32)> = Vec::with_capacity(touches.list.len());
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome == Outcome::Fail {
            continue;
        }
        let base = touches.off[t];
        for (i, x) in touches.of(t as u32).iter().enumerate() {
            by_key.push((x.key, t as u32, base + i as u32));
        }
    }
    by_key.sort_unstable();
    let mut out = Vec::new();
    let mut events: Vec<(u64, u32, bool)> = Vec::new();
    for group in by_key.chunk_by(|x, y| x.0 == y.0) {
        events.clear();
        for (i, &(_, t, _)) in group.iter().enumerate() {
            let txn = &txns.txns[t as usize];
            events.push((txn.invoke_index, i as u32, true));
            if txn.outcome == Outcome::Ok {
                events.push((txn.complete_index, i as u32, false));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        super::graph::reduced_order(&events, group.len(), &mut |a, b| {
            let (key, ta, ia) = group[a as usize];
            let (_, tb, ib) = group[b as usize];
            let (from, to) = (&touches.list[ia as usize], &touches.list[ib as usize]);
            push_all(&mut out, key, from, to, Source::LinearizableKeys, ta, tb);
        });
    }
    out
}

/// Reusable per-key numbering of values and Tarjan tables, so that checking tens of
/// thousands of small version graphs allocates nothing per key.
struct Scratch {
    stamp: Vec<u32>,
    local: Vec<u32>,
    epoch: u32,
    names: Vec<u32>,
    adj: Vec<(u32, u32)>,
    tarjan: Tarjan,
    off: Vec<u32>,
}

impl Scratch {
    fn new(n_values: usize) -> Scratch {
        Scratch {
            stamp: vec![0; n_values + 1],
            local: vec![0; n_values + 1],
            epoch: 0,
            names: Vec::new(),
            adj: Vec::new(),
            tarjan: Tarjan::default(),
            off: Vec::new(),
        }
    }

    fn slot(v: u32) -> usize {
        if v == NIL {
            0
        } else {
            v as usize + 1
        }
    }

    /// The local number of value `v` in the current key.
    fn local(&mut self, v: u32) -> u32 {
        let slot = Scratch::slot(v);
        if self.stamp[slot] != self.epoch {
            self.stamp[slot] = self.epoch;
            self.local[slot] = self.names.len() as u32;
            self.names.push(v);
        }
        self.local[slot]
    }
}

/// The cyclic strongly connected components of the version graphs of the keys `new`
/// touches, in `all` (with the implicit nil -> every value edges).
fn cyclic_keys(all: &[VEdge], new: &[VEdge], scratch: &mut Scratch) -> Vec<(u32, Vec<u32>)> {
    let mut out = Vec::new();
    let mut keys: Vec<u32> = new.iter().map(|e| e.key).collect();
    keys.dedup();
    let mut a = 0;
    for key in keys {
        a = super::rw_register::gallop(all, a, |e| e.key < key);
        let b = super::rw_register::gallop(all, a, |e| e.key <= key);
        let edges = &all[a..b];
        // Local numbering: nil is 0.
        scratch.epoch += 1;
        scratch.names.clear();
        scratch.adj.clear();
        scratch.local(NIL);
        for e in edges {
            let x = scratch.local(e.from);
            let y = scratch.local(e.to);
            scratch.adj.push((x, y));
        }
        // Initial state: nil precedes every other value.
        for v in 1..scratch.names.len() as u32 {
            scratch.adj.push((0, v));
        }
        let n = scratch.names.len();
        let Scratch {
            names,
            adj,
            tarjan,
            off,
            ..
        } = scratch;
        adj.sort_unstable();
        off.clear();
        off.resize(n + 1, 0);
        for &(x, _) in adj.iter() {
            off[x as usize + 1] += 1;
        }
        for i in 0..n {
            off[i + 1] += off[i];
        }
        tarjan.run(
            n,
            |v, cursor| {
                let i = off[v] + *cursor;
                *cursor += 1;
                (i < off[v + 1]).then(|| adj[i as usize].1 as usize)
            },
            |scc| {
                let mut values: Vec<u32> = scc.iter().map(|&l| names[l as usize]).collect();
                values.sort_unstable();
                out.push((key, values));
            },
        );
    }
    out
}

/// One sentence for why `e` orders its values.
pub fn edge_reason(txns: &Txns, e: &VEdge) -> String {
    let (a, b) = (txn_name(txns, e.a), txn_name(txns, e.b));
    let (x, y) = (txns.value_name(e.from), txns.value_name(e.to));
    match Source::from_u8(e.source) {
        Source::InitialState => format!("nil, the initial state, precedes {y} (initial-state)"),
        Source::TransactionOrder => {
            format!("{a} (wrote {x}) comes before {b} (wrote {y}) in the given transaction order (transaction-order)")
        }
        Source::WfrKeys => format!("{a} read {x} and then wrote {y} (wfr-keys)"),
        Source::SequentialKeys => format!(
            "process {} ran {a} (saw or wrote {x}) before {b} (saw or wrote {y}) (sequential-keys)",
            txns.txns[e.a as usize].process
        ),
        Source::LinearizableKeys => {
            format!("{a} (saw or wrote {x}) completed before {b} (saw or wrote {y}) began (linearizable-keys)")
        }
    }
}

/// The evidence for a cyclic version graph: the values, the sources, and one cycle
/// through them with the reason for each step.
fn cyclic_case(
    txns: &Txns,
    edges: &[VEdge],
    key: u32,
    scc: &[u32],
    sources: &[&'static str],
) -> serde_json::Value {
    let a = edges.partition_point(|e| e.key < key);
    let b = edges.partition_point(|e| e.key <= key);
    let inside = |v: u32| scc.binary_search(&v).is_ok();
    let key_edges: Vec<VEdge> = edges[a..b]
        .iter()
        .copied()
        .filter(|e| inside(e.from) && inside(e.to))
        .collect();
    let cycle = find_cycle(scc, &key_edges);
    let steps: Vec<String> = cycle
        .iter()
        .map(|e| match e {
            Some(e) => edge_reason(txns, e),
            None => "nil, the initial state, precedes every value (initial-state)".to_string(),
        })
        .collect();
    let values: Vec<String> = scc.iter().map(|&v| txns.value_name(v)).collect();
    json!({
        "key": anomaly::key_json(txns, key),
        "scc": scc.iter().map(|&v| anomaly::value_json(txns, v)).collect::<Vec<_>>(),
        "sources": sources,
        "steps": steps,
        "why": format!(
            "the version order of key {} inferred from {} is cyclic among {}: {}; no single order of versions satisfies them all, so the last source ({}) is not used.",
            txns.key_name(key),
            sources.join(", "),
            values.join(", "),
            steps.join("; "),
            sources.last().copied().unwrap_or("?")
        ),
    })
}

/// A cycle through the (small) strongly connected `scc`, as its edges; `None` stands
/// for an implicit initial-state edge out of nil.
fn find_cycle(scc: &[u32], edges: &[VEdge]) -> Vec<Option<VEdge>> {
    // BFS from the first value back to itself; nil -> v edges are implicit.
    let start = scc[0];
    let mut parent: FastMap<u32, (u32, Option<VEdge>)> = FastMap::default();
    let mut queue = std::collections::VecDeque::from([start]);
    let out_of = |v: u32| -> Vec<(u32, Option<VEdge>)> {
        let mut o: Vec<(u32, Option<VEdge>)> = edges
            .iter()
            .filter(|e| e.from == v)
            .map(|e| (e.to, Some(*e)))
            .collect();
        if v == NIL {
            o.extend(scc.iter().filter(|&&w| w != NIL).map(|&w| (w, None)));
        }
        o
    };
    // Bounded: each value is queued once.
    while let Some(v) = queue.pop_front() {
        for (w, e) in out_of(v) {
            if w == start {
                let mut path = vec![e];
                let mut cur = v;
                while cur != start {
                    let (p, pe) = parent[&cur];
                    path.push(pe);
                    cur = p;
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = parent.entry(w) {
                slot.insert((v, e));
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}
