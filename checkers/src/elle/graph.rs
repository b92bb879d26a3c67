//! The transaction dependency graph: nodes are transactions, edges carry a bit set of
//! why one transaction must precede another (ww, wr, rw, process, realtime).
//!
//! Stored as CSR (compressed sparse rows): one offsets array and one flat target array,
//! so a million transactions with ten million edges fit in ~100 MB and walk fast. Built
//! by counting sort, never by sorting all edges.

use super::txn::{Outcome, Txns};

/// Edge kinds, as bits: an edge may have several reasons at once.
pub const WW: u8 = 1;
pub const WR: u8 = 2;
pub const RW: u8 = 4;
pub const PROCESS: u8 = 8;
pub const REALTIME: u8 = 16;
/// The data dependencies of Adya's direct serialization graph.
pub const DATA: u8 = WW | WR | RW;

/// The single kinds in a bit set, in a fixed order.
pub const KINDS: [u8; 5] = [WW, WR, RW, PROCESS, REALTIME];

/// The name of one edge kind, as the evidence spells it.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROCESS => "process",
        REALTIME => "realtime",
        _ => "mixed",
    }
}

/// Collects edges before they are frozen into a [`Graph`].
#[derive(Default)]
pub struct EdgeList {
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    pub kind: Vec<u8>,
}

impl EdgeList {
    /// Adds `from -> to`; self-edges are dropped (a transaction never precedes itself).
    pub fn add(&mut self, from: u32, to: u32, kind: u8) {
        if from != to {
            self.src.push(from);
            self.dst.push(to);
            self.kind.push(kind);
        }
    }

    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// Moves `other`'s edges after this list's.
    pub fn append(&mut self, mut other: EdgeList) {
        if self.src.is_empty() {
            *self = other;
            return;
        }
        self.src.append(&mut other.src);
        self.dst.append(&mut other.dst);
        self.kind.append(&mut other.kind);
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// Bytes this list holds, for the memory limit.
    pub fn size_bytes(&self) -> usize {
        self.src.capacity() * 9
    }
}

/// A frozen graph in CSR form; parallel edges are merged by OR-ing their kinds.
pub struct Graph {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    kinds: Vec<u8>,
}

impl Graph {
    /// Freezes `edges` over `n` nodes.
    pub fn build(n: usize, edges: EdgeList) -> Graph {
        let mut offsets = vec![0u32; n + 1];
        for &s in &edges.src {
            offsets[s as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let m = edges.len();
        let mut targets = vec![0u32; m];
        let mut kinds = vec![0u8; m];
        for i in 0..m {
            let s = edges.src[i] as usize;
            let slot = fill[s] as usize;
            targets[slot] = edges.dst[i];
            kinds[slot] = edges.kind[i];
            fill[s] += 1;
        }
        drop(edges);
        // Merge parallel edges per row, compacting in place.
        let mut out_offsets = vec![0u32; n + 1];
        let mut w = 0usize;
        let mut row: Vec<(u32, u8)> = Vec::new();
        for v in 0..n {
            let (a, b) = (offsets[v] as usize, offsets[v + 1] as usize);
            row.clear();
            row.extend((a..b).map(|i| (targets[i], kinds[i])));
            row.sort_unstable_by_key(|e| e.0);
            let mut i = 0;
            while i < row.len() {
                let (t, mut k) = row[i];
                i += 1;
                while i < row.len() && row[i].0 == t {
                    k |= row[i].1;
                    i += 1;
                }
                targets[w] = t;
                kinds[w] = k;
                w += 1;
            }
            out_offsets[v + 1] = w as u32;
        }
        targets.truncate(w);
        kinds.truncate(w);
        targets.shrink_to_fit();
        kinds.shrink_to_fit();
        Graph {
            offsets: out_offsets,
            targets,
            kinds,
        }
    }

    pub fn node_count(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    /// The out-edges of `v`: (target, kind bits).
    pub fn out(&self, v: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        let (a, b) = (
            self.offsets[v as usize] as usize,
            self.offsets[v as usize + 1] as usize,
        );
        self.targets[a..b]
            .iter()
            .copied()
            .zip(self.kinds[a..b].iter().copied())
    }

    /// The out-edges of `v` as two parallel slices (targets, kind bits).
    pub fn row(&self, v: u32) -> (&[u32], &[u8]) {
        let (a, b) = (
            self.offsets[v as usize] as usize,
            self.offsets[v as usize + 1] as usize,
        );
        (&self.targets[a..b], &self.kinds[a..b])
    }

    /// The kind bits of edge `from -> to`, 0 when there is none.
    pub fn kind(&self, from: u32, to: u32) -> u8 {
        let (a, b) = (
            self.offsets[from as usize] as usize,
            self.offsets[from as usize + 1] as usize,
        );
        match self.targets[a..b].binary_search(&to) {
            Ok(i) => self.kinds[a + i],
            Err(_) => 0,
        }
    }
}

/// Which session order a check adds to the dependency graph, as Elle decides it: the
/// realtime order when the anomalies that fail the check include a realtime cycle,
/// else the process order when they include a process cycle, else neither. (Process
/// order is part of realtime order, so a realtime graph needs no process edges; Elle
/// then names a cycle through a process's own order `-realtime` too.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    None,
    Process,
    Realtime,
}

impl Session {
    /// The edge kind this session order adds (0 for none).
    pub fn kind(self) -> u8 {
        match self {
            Session::None => 0,
            Session::Process => PROCESS,
            Session::Realtime => REALTIME,
        }
    }

    /// Adds this session order's edges.
    pub fn add_edges(self, txns: &Txns, edges: &mut EdgeList) {
        match self {
            Session::None => {}
            Session::Process => add_process_edges(txns, edges),
            Session::Realtime => add_realtime_edges(txns, edges),
        }
    }
}

/// Realtime edges (Elle's `realtime-graph`): T1 completed ok before T2 was invoked.
/// Transitively reduced as Elle does: each invocation links only to the frontier of
/// latest completions, so the edge count stays near (transactions x concurrency)
/// instead of quadratic.
///
/// Failed transactions are left out entirely: they did not happen. Info transactions
/// may receive edges but never send them, since they never completed.
pub fn add_realtime_edges(txns: &Txns, edges: &mut EdgeList) {
    realtime_pairs_among(txns, |_| true, |a, b| edges.add(a, b, REALTIME));
}

/// Calls `f(a, b)` for the transitively reduced realtime order over the transactions
/// `include` selects (a completed ok before b was invoked; see [`add_realtime_edges`]).
pub fn realtime_pairs_among(
    txns: &Txns,
    include: impl Fn(u32) -> bool,
    mut f: impl FnMut(u32, u32),
) {
    // Events in history order: invocations and completions, by op index.
    let mut events: Vec<(u64, u32, bool)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome == Outcome::Fail || !include(t as u32) {
            continue;
        }
        events.push((txn.invoke_index, t as u32, true));
        if txn.outcome == Outcome::Ok {
            events.push((txn.complete_index, t as u32, false));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    reduced_order(&events, txns.txns.len(), &mut f);
}

/// The frontier walk behind the realtime order: `events` are (op index, txn, is
/// invocation) in history order; `n` bounds the txn ids.
pub(super) fn reduced_order(events: &[(u64, u32, bool)], n: usize, f: &mut impl FnMut(u32, u32)) {
    let mut frontier = Frontier::default();
    let mut invoked_at = vec![Mark::default(); n];
    for &(_, t, is_invoke) in events {
        if is_invoke {
            for p in frontier.latest() {
                f(p, t);
            }
            invoked_at[t as usize] = frontier.mark();
        } else {
            frontier.completed(t, invoked_at[t as usize]);
        }
    }
}

/// Elle's transitively reduced realtime order, walked in history order: the frontier of
/// latest ok completions. An invocation gets a realtime edge from each transaction on
/// the frontier ([`Frontier::latest`]) and takes a [`Mark`]; its ok completion
/// ([`Frontier::completed`]) removes from the frontier what it saw there (that now
/// reaches later transactions through it) and joins it. The frontier is an antichain of
/// the realtime order, so it holds at most as many transactions as run concurrently.
///
/// Transactions join at the end, in completion order, so what an invocation saw and is
/// still on the frontier at its completion is the frontier's oldest entries, those
/// completed before its mark: no copy of what it saw is needed.
#[derive(Debug)]
pub(crate) struct Frontier<T> {
    /// (transaction, the number of its completion), oldest first.
    latest: Vec<(T, u64)>,
    completions: u64,
}

impl<T> Default for Frontier<T> {
    fn default() -> Self {
        Frontier {
            latest: Vec::new(),
            completions: 0,
        }
    }
}

/// When a transaction was invoked, as a [`Frontier`] tells it: completions before it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mark(u64);

impl<T: Copy> Frontier<T> {
    /// The transactions an invocation now gets realtime edges from.
    pub fn latest(&self) -> impl ExactSizeIterator<Item = T> + '_ {
        self.latest.iter().map(|&(t, _)| t)
    }

    /// The mark of an invocation now.
    pub fn mark(&self) -> Mark {
        Mark(self.completions)
    }

    /// `t`, invoked at `invoked_at`, completed ok.
    pub fn completed(&mut self, t: T, invoked_at: Mark) {
        debug_assert!(invoked_at.0 <= self.completions, "a mark of this frontier");
        let seen = self.latest.partition_point(|&(_, c)| c < invoked_at.0);
        self.latest.drain(..seen);
        self.latest.push((t, self.completions));
        self.completions += 1;
    }
}

/// Process edges (Elle's `process-graph`): each committed transaction to the next
/// committed one of the same process. Failed and info transactions are not part of a
/// process's order.
pub fn add_process_edges(txns: &Txns, edges: &mut EdgeList) {
    for_each_process_pair(txns, |a, b| edges.add(a, b, PROCESS));
}

/// Every ok transaction as (process, invocation index, txn), sorted: each process's
/// order (Elle's process graph runs through ok transactions only).
pub fn process_order(txns: &Txns) -> Vec<(u64, u64, u32)> {
    let mut by_process: Vec<(u64, u64, u32)> = txns
        .txns
        .iter()
        .enumerate()
        .filter(|(_, x)| x.outcome == Outcome::Ok)
        .map(|(t, x)| (x.process, x.invoke_index, t as u32))
        .collect();
    by_process.sort_unstable();
    by_process
}

/// Calls `f(a, b)` for consecutive ok transactions `a`, `b` of one process.
pub fn for_each_process_pair(txns: &Txns, mut f: impl FnMut(u32, u32)) {
    for w in process_order(txns).windows(2) {
        if w[0].0 == w[1].0 {
            f(w[0].2, w[1].2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn csr_merges_parallel_edges_and_drops_self_edges() {
        let mut e = EdgeList::default();
        e.add(0, 1, WW);
        e.add(0, 1, RW);
        e.add(1, 1, WW);
        e.add(1, 0, WR);
        let g = Graph::build(2, e);
        assert_eq!(g.edge_count(), 2);
        assert_eq!(g.kind(0, 1), WW | RW);
        assert_eq!(g.kind(1, 0), WR);
        assert_eq!(g.kind(1, 1), 0);
    }

    /// Random interleavings of `workers` clients: each step one client invokes, or
    /// completes with ok / fail / info (info retires the process id).
    fn random_history() -> impl Strategy<Value = crate::history::History> {
        (
            1usize..5,
            prop::collection::vec((0usize..5, 0u8..10), 0..60),
        )
            .prop_map(|(workers, steps)| {
                let mut ops = Vec::new();
                let mut pid: Vec<u64> = (0..workers as u64).collect();
                let mut busy = vec![false; workers];
                for (w, roll) in steps {
                    let w = w % workers;
                    let p = crate::op::Process::Client(pid[w]);
                    let mut op = crate::op::Op::invoke(p, "txn", serde_json::json!([]));
                    if busy[w] {
                        op.kind = match roll {
                            0 => crate::op::OpType::Fail,
                            1 => crate::op::OpType::Info,
                            _ => crate::op::OpType::Ok,
                        };
                        if roll == 1 {
                            pid[w] += workers as u64;
                        }
                    }
                    busy[w] = !busy[w];
                    ops.push(op);
                }
                crate::history::History::reindexed(ops).unwrap()
            })
    }

    proptest::proptest! {
        /// The transitively reduced realtime edges reach exactly the pairs where one
        /// transaction completed ok before the other was invoked.
        #[test]
        fn realtime_reduction_preserves_exactly_the_realtime_order(h in random_history()) {
            let txns = Txns::from_history(&h, super::super::txn::Shape::ListAppend).unwrap();
            let mut e = EdgeList::default();
            add_realtime_edges(&txns, &mut e);
            let n = txns.txns.len();
            let g = Graph::build(n, e);
            for a in 0..n {
                let mut seen = vec![false; n];
                let mut todo = vec![a as u32];
                while let Some(v) = todo.pop() {
                    for (t, k) in g.out(v) {
                        if k & REALTIME != 0 && !seen[t as usize] {
                            seen[t as usize] = true;
                            todo.push(t);
                        }
                    }
                }
                for (b, &reached) in seen.iter().enumerate() {
                    let (x, y) = (&txns.txns[a], &txns.txns[b]);
                    let before = x.outcome == Outcome::Ok
                        && y.outcome != Outcome::Fail
                        && x.complete_index < y.invoke_index;
                    proptest::prop_assert_eq!(reached, before, "{} -> {}", a, b);
                }
            }
        }
    }
}
