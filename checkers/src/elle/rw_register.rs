//! Read-write register analysis: what can soundly be inferred about version orders when
//! transactions only read and overwrite registers with unique values (Elle's
//! `elle.rw-register`).
//!
//! A read of `v` says which transaction's write it saw (wr), since values are unique.
//! Version orders are only partly knowable; [`versions`](super::versions) infers what
//! the chosen sources allow (always: nil precedes every value; optionally writes follow
//! reads, sequential or linearizable keys, an external transaction order). Every
//! version edge `u -> v` of a key then gives, as in Elle, ww edges from `u`'s writer
//! to `v`'s writer and rw edges from `u`'s readers to `v`'s writer.
//!
//! nil precedes every value, so nil's readers anti-depend on every writer of the key.
//! That product is bounded: readers of nil get an rw edge only to writers of values
//! with no known predecessor that has a writer (any other writer follows one of those
//! through ww edges, so no path is lost), and past the memory limit the verdict is
//! unknown rather than a guess.

use super::anomaly::{self, Anomalies};
use super::exact::{OpenOrder, Version};
use super::explain::{Step, StepExplainer};
use super::graph::{EdgeList, RW, WR, WW};
use super::txn::{MopKind, Outcome, TxnError, Txns, NIL};
use super::versions::{self, Inference, Touches, Versions, ABSENT};
use super::writes::{external_reads, Writes, Written};

/// What the analysis keeps to explain edges and to search version orders later.
pub struct Index {
    pub(super) writes: Writes,
    pub(super) touches: Touches,
    pub(super) versions: Versions,
    /// (key, value read, reader) of every committed external read, sorted.
    pub(super) readers: Vec<(u32, u32, u32)>,
}

impl Index {
    fn writer(&self, key: u32, value: u32) -> Option<Written> {
        self.writes.writer(key, value)
    }

    /// The writer whose final write installed `value` as a version of `key`: it did
    /// not fail and `value` was its last write to the key.
    pub(super) fn version_writer(&self, key: u32, value: u32) -> Option<u32> {
        self.writer(key, value)
            .filter(|w| w.is_final && !w.failed)
            .map(|w| w.txn)
    }

    /// The committed transactions that read `value` of `key` from outside.
    pub(super) fn readers_of(&self, key: u32, value: u32) -> &[(u32, u32, u32)] {
        let a = self.readers.partition_point(|r| (r.0, r.1) < (key, value));
        let b = self.readers.partition_point(|r| (r.0, r.1) <= (key, value));
        &self.readers[a..b]
    }
}

/// Runs the analysis: adds ww/wr/rw edges to `edges`, non-cycle cases (and
/// `cyclic-versions`) to `anomalies`. `edge_limit` bounds the rw edges inferred.
pub fn analyse(
    txns: &Txns,
    inference: &Inference,
    edges: &mut EdgeList,
    anomalies: &mut Anomalies,
    edge_limit: u64,
) -> Result<Index, TxnError> {
    let (writes, touches) = std::thread::scope(|scope| {
        let touches = scope.spawn(|| Touches::build(txns));
        let writes = Writes::build(txns);
        let touches = touches
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (writes, touches)
    });
    let writes = writes?;
    let mut readers: Vec<(u32, u32, u32)> = Vec::new();
    let mut lost: Vec<(u32, u32, u32)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let t = t as u32;
        let mops = txns.mops_of(t);
        for (i, m) in external_reads(mops) {
            let (k, v) = (m.key, m.a);
            match writes.writer(k, v) {
                None if v != NIL => {
                    anomalies.add("garbage-read", || anomaly::garbage_read(txns, t, k, v))
                }
                Some(w) if txns.txns[w.txn as usize].outcome == Outcome::Fail => {
                    anomalies.add("G1a", || anomaly::aborted_read(txns, t, w.txn, k, v))
                }
                Some(w) if w.txn == t => {
                    anomalies.add("future-read", || anomaly::future_read(txns, t, k, v))
                }
                Some(w) => {
                    edges.add(w.txn, t, WR);
                    if !w.is_final {
                        anomalies.add("G1b", || anomaly::intermediate_read(txns, t, w.txn, k, v));
                    }
                }
                None => {}
            }
            readers.push((k, v, t));
            if mops[i + 1..]
                .iter()
                .any(|p| p.key == k && p.kind == MopKind::Write)
            {
                lost.push((k, v, t));
            }
        }
        if anomaly::touches_a_key_twice(mops) {
            check_internal(txns, t, anomalies);
        }
    }
    readers.sort_unstable();
    let versions = versions::infer(txns, &touches, inference, anomalies);
    let ix = Index {
        writes,
        touches,
        versions,
        readers,
    };
    add_version_edges(&ix, edges, edge_limit)?;
    anomaly::group_lost_updates(&mut lost, |k, v, group| {
        let version = txns.value_name(v);
        anomalies.add("lost-update", || {
            anomaly::lost_update(txns, k, &version, group)
        });
    });
    Ok(ix)
}

/// ww and rw edges from the version orders: for each known `u -> v` on a key, `u`'s
/// writer and readers precede `v`'s writer; nil's readers precede the writers of
/// values with no known predecessor that has a writer.
fn add_version_edges(ix: &Index, edges: &mut EdgeList, edge_limit: u64) -> Result<(), TxnError> {
    // Values with a known predecessor that has a writer: their writers follow that
    // writer by ww, so nil's readers reach them without an edge of their own.
    let mut covered: Vec<(u32, u32)> = ix
        .versions
        .edges
        .iter()
        .filter(|e| e.from != NIL && ix.version_writer(e.key, e.from).is_some())
        .map(|e| (e.key, e.to))
        .collect();
    covered.sort_unstable();
    covered.dedup();
    // Count first, so that a product too large for memory is refused before it is built.
    let mut total: u64 = 0;
    let mut uncovered: Vec<(u32, u32)> = Vec::new();
    for w in ix.writes.all() {
        if !w.is_final || w.failed || covered.binary_search(&(w.key, w.value)).is_ok() {
            continue;
        }
        uncovered.push((w.key, w.txn));
        total += ix.readers_of(w.key, NIL).len() as u64;
    }
    // Version edges are sorted by (key, from) like the readers: walk both together.
    let readers = &ix.readers;
    let mut r = 0usize;
    let mut readers_of_from = |key: u32, from: u32| -> (usize, usize) {
        r = gallop(readers, r, |x| (x.0, x.1) < (key, from));
        let end = gallop(readers, r, |x| (x.0, x.1) <= (key, from));
        (r, end)
    };
    let mut spans: Vec<(u32, u32)> = Vec::with_capacity(ix.versions.edges.len());
    for e in &ix.versions.edges {
        if e.from == NIL {
            spans.push((0, 0));
            continue;
        }
        let (a, b) = readers_of_from(e.key, e.from);
        total += (b - a) as u64;
        spans.push((a as u32, b as u32));
    }
    if total > edge_limit {
        return Err(TxnError::TooManyEdges {
            edges: total,
            limit: edge_limit,
        });
    }
    for &(k, w) in &uncovered {
        for r in ix.readers_of(k, NIL) {
            edges.add(r.2, w, RW);
        }
    }
    for (e, &(a, b)) in ix.versions.edges.iter().zip(&spans) {
        if e.from == NIL {
            continue;
        }
        let Some(to) = ix.version_writer(e.key, e.to) else {
            continue;
        };
        if let Some(from) = ix.version_writer(e.key, e.from) {
            edges.add(from, to, WW);
        }
        for r in &readers[a as usize..b as usize] {
            edges.add(r.2, to, RW);
        }
    }
    Ok(())
}

/// Tables [`Index::known_predecessors`] reuses from key to key.
#[derive(Default)]
struct PredScratch {
    values: Vec<u32>,
    back: Vec<(usize, usize)>,
    off: Vec<usize>,
    candidate: Vec<u32>,
    seen: Vec<bool>,
    todo: Vec<usize>,
}

/// The first index at or after `from` where `before` turns false (`list` is partitioned
/// by it), found by galloping: cheap when it is near, as in a merge walk.
pub(super) fn gallop<T>(list: &[T], from: usize, before: impl Fn(&T) -> bool) -> usize {
    let mut step = 1;
    let mut lo = from;
    while lo + step <= list.len() && before(&list[lo + step - 1]) {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step).min(list.len());
    lo + list[lo..hi].partition_point(before)
}

/// Internal consistency: a read must return the transaction's own last write or read.
fn check_internal(txns: &Txns, t: u32, anomalies: &mut Anomalies) {
    let mut state: Vec<(u32, u32)> = Vec::new();
    for m in txns.mops_of(t) {
        let slot = state.iter().position(|s| s.0 == m.key);
        if m.kind == MopKind::Read {
            if let Some(s) = slot {
                if state[s].1 != m.a {
                    let expected = txns.value_name(state[s].1);
                    anomalies.add("internal", || {
                        anomaly::internal(txns, t, m.key, &expected, m)
                    });
                }
            }
        }
        if matches!(m.kind, MopKind::Read | MopKind::Write) {
            match slot {
                Some(s) => state[s].1 = m.a,
                None => state.push((m.key, m.a)),
            }
        }
    }
}

impl Index {
    /// Keys whose committed versions the inferred orders do not totally order, for the
    /// exact search. Committed: written by an ok transaction, or by an info one some
    /// committed read shows (it did commit); other info writes may never have happened
    /// and take no part.
    pub(super) fn open_orders(&self, txns: &Txns) -> Vec<OpenOrder> {
        // Writes and reads are both sorted by (key, value): one merge walk.
        let mut observed = vec![false; txns.txns.len()];
        let all = self.writes.all();
        let mut w = 0usize;
        for &(k, v, _) in &self.readers {
            w = gallop(all, w, |x| (x.key, x.value) < (k, v));
            if let Some(x) = all.get(w).filter(|x| (x.key, x.value) == (k, v)) {
                observed[x.txn as usize] = true;
            }
        }
        let committed = |t: u32| match txns.txns[t as usize].outcome {
            Outcome::Ok => true,
            Outcome::Info => observed[t as usize],
            Outcome::Fail => false,
        };
        let mut out = Vec::new();
        let mut scratch = PredScratch::default();
        let mut i = 0;
        while i < all.len() {
            let key = all[i].key;
            let mut j = i;
            while j < all.len() && all[j].key == key {
                j += 1;
            }
            let versions: Vec<Written> = all[i..j]
                .iter()
                .copied()
                .filter(|w| w.is_final && committed(w.txn))
                .collect();
            i = j;
            if versions.len() < 2 {
                continue;
            }
            let preds = self.known_predecessors(key, &versions, &mut scratch);
            let total = preds.iter().map(Vec::len).sum::<usize>();
            // Totally ordered: every pair is related.
            if total == versions.len() * (versions.len() - 1) / 2 {
                continue;
            }
            let readers =
                |v: u32| -> Vec<u32> { self.readers_of(key, v).iter().map(|r| r.2).collect() };
            out.push(OpenOrder {
                key,
                start: Version {
                    value: NIL,
                    writer: None,
                    readers: readers(NIL),
                },
                open: versions
                    .iter()
                    .map(|w| Version {
                        value: w.value,
                        writer: Some(w.txn),
                        readers: readers(w.value),
                    })
                    .collect(),
                preds,
                start_edges_known: false,
            });
        }
        out
    }

    /// For each of `versions` (one key's), the indices of the others the accepted
    /// version orders place before it, transitively.
    fn known_predecessors(
        &self,
        key: u32,
        versions: &[Written],
        scratch: &mut PredScratch,
    ) -> Vec<Vec<u32>> {
        let edges = self.versions.of_key(key);
        if edges.iter().all(|e| e.from == NIL) {
            return vec![Vec::new(); versions.len()];
        }
        let PredScratch {
            values,
            back,
            off,
            candidate,
            seen,
            todo,
        } = scratch;
        // The key's values, numbered locally; predecessor lists by local number.
        values.clear();
        values.extend(
            edges
                .iter()
                .flat_map(|e| [e.from, e.to])
                .chain(versions.iter().map(|w| w.value))
                .filter(|&v| v != NIL),
        );
        values.sort_unstable();
        values.dedup();
        let id = |v: u32| values.binary_search(&v).expect("collected above");
        back.clear();
        back.extend(
            edges
                .iter()
                .filter(|e| e.from != NIL)
                .map(|e| (id(e.to), id(e.from))),
        );
        back.sort_unstable();
        off.clear();
        off.resize(values.len() + 1, 0);
        for &(to, _) in back.iter() {
            off[to + 1] += 1;
        }
        for i in 0..values.len() {
            off[i + 1] += off[i];
        }
        candidate.clear();
        candidate.resize(values.len(), u32::MAX);
        for (i, w) in versions.iter().enumerate() {
            candidate[id(w.value)] = i as u32;
        }
        versions
            .iter()
            .map(|w| {
                // Backwards from w over the key's edges (through any value).
                seen.clear();
                seen.resize(values.len(), false);
                let start = id(w.value);
                seen[start] = true;
                todo.push(start);
                let mut preds = Vec::new();
                while let Some(v) = todo.pop() {
                    for &(_, from) in &back[off[v]..off[v + 1]] {
                        if !seen[from] {
                            seen[from] = true;
                            todo.push(from);
                            if candidate[from] != u32::MAX {
                                preds.push(candidate[from]);
                            }
                        }
                    }
                }
                preds.sort_unstable();
                preds
            })
            .collect()
    }

    /// Why `u` precedes `v` on `key`, as a clause.
    fn order_reason(&self, txns: &Txns, key: u32, u: u32, v: u32) -> Option<String> {
        if u == NIL {
            return Some(format!(
                "nil, the initial state, precedes every version, so {} came later (initial-state)",
                txns.value_name(v)
            ));
        }
        self.versions
            .edge(key, u, v)
            .map(|e| versions::edge_reason(txns, e))
    }
}

impl StepExplainer for Index {
    fn explain(&self, txns: &Txns, from: u32, to: u32, kind: u8, a: &str, b: &str) -> Option<Step> {
        let key_of = |k: u32| txns.key_name(k).to_string();
        match kind {
            WR => external_reads(txns.mops_of(to)).find_map(|(_, m)| {
                let w = self.writer(m.key, m.a)?;
                (w.txn == from).then(|| {
                    Step::new(
                        txns,
                        m.key,
                        m.a,
                        format!(
                            "{a} wrote {} to key {}; {b} read key {} = {}, so {b} saw {a}'s write (wr).",
                            txns.value_name(m.a), key_of(m.key), key_of(m.key), txns.value_name(m.a)
                        ),
                    )
                })
            }),
            WW => self.touches.of(from).iter().find_map(|x| {
                let y = self.touches.of(to).iter().find(|y| y.key == x.key)?;
                if x.write == ABSENT || y.write == ABSENT {
                    return None;
                }
                let why = self.order_reason(txns, x.key, x.write, y.write)?;
                Some(Step::new(
                    txns,
                    x.key,
                    y.write,
                    format!(
                        "{a} wrote {} to key {} and {b} wrote {}, a later version: {why} (ww).",
                        txns.value_name(x.write), key_of(x.key), txns.value_name(y.write)
                    ),
                ))
            }),
            RW => self.touches.of(from).iter().find_map(|x| {
                let y = self.touches.of(to).iter().find(|y| y.key == x.key)?;
                if x.read == ABSENT || y.write == ABSENT {
                    return None;
                }
                let why = self.order_reason(txns, x.key, x.read, y.write).or_else(|| {
                    // nil's readers precede every writer, also through a chain of writers.
                    (x.read == NIL).then(|| "nil, the initial state, precedes every version".to_string())
                })?;
                Some(Step::new(
                    txns,
                    x.key,
                    y.write,
                    format!(
                        "{a} read key {} = {} and {b} wrote {}, a later version: {why}; so {a} ran before {b}'s write (rw).",
                        key_of(x.key), txns.value_name(x.read), txns.value_name(y.write)
                    ),
                ))
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph::{RW, WR, WW};
    use super::super::testkit::{analyse, analyse_with, history};
    use super::super::txn::Shape;
    use super::super::versions::Inference;
    use crate::op::OpType::{Invoke, Ok};
    use serde_json::json;

    #[test]
    fn read_then_write_orders_versions_and_nil_precedes_blind_writes() {
        // T0 writes 1 blind; T1 reads 1 and writes 2; T2 read nil.
        let h = history(&[
            (0, Invoke, json!([["w", 1, 1]])),
            (0, Ok, json!([["w", 1, 1]])),
            (1, Invoke, json!([["r", 1, null], ["w", 1, 2]])),
            (1, Ok, json!([["r", 1, 1], ["w", 1, 2]])),
            (2, Invoke, json!([["r", 1, null]])),
            (2, Ok, json!([["r", 1, null]])),
        ]);
        let wfr = Inference {
            wfr_keys: true,
            ..Inference::default()
        };
        let (_, edges, anomalies) = analyse_with(&h, Shape::RwRegister, &wfr);
        for e in [(0, 1, WW), (0, 1, WR), (2, 0, RW)] {
            assert!(edges.contains(&e), "{e:?} missing from {edges:?}");
        }
        // Nil's reader does not get an edge to T1 directly: T1's version follows T0's,
        // which the chain T2 -rw-> T0 -ww-> T1 already says.
        assert!(!edges.contains(&(2, 1, RW)), "{edges:?}");
        assert!(anomalies.cases.is_empty());
        // Without writes-follow-reads, 1 and 2 are unordered: nil's reader precedes
        // both writers directly, and no ww edge is known.
        let (_, edges, _) = analyse(&h, Shape::RwRegister);
        assert!(
            edges.contains(&(2, 1, RW)) && edges.contains(&(2, 0, RW)),
            "{edges:?}"
        );
        assert!(!edges.iter().any(|e| e.2 == WW), "{edges:?}");
    }

    #[test]
    fn a_read_of_an_unwritten_value_still_orders_the_write_after_it() {
        // T0 read 7 (nobody wrote it) and then wrote 2; T1 read nil. With wfr, 7 < 2
        // and nil < 7: T1 must precede T0 (Elle's initial-state edge nil -> 2).
        let h = history(&[
            (0, Invoke, json!([["r", 1, null], ["w", 1, 2]])),
            (0, Ok, json!([["r", 1, 7], ["w", 1, 2]])),
            (1, Invoke, json!([["r", 1, null]])),
            (1, Ok, json!([["r", 1, null]])),
        ]);
        let wfr = Inference {
            wfr_keys: true,
            ..Inference::default()
        };
        let (_, edges, anomalies) = analyse_with(&h, Shape::RwRegister, &wfr);
        assert!(edges.contains(&(1, 0, RW)), "{edges:?}");
        assert_eq!(anomalies.counts.get("garbage-read"), Some(&1));
    }

    #[test]
    fn two_blind_writes_stay_unordered() {
        let h = history(&[
            (0, Invoke, json!([["w", 1, 1]])),
            (0, Ok, json!([["w", 1, 1]])),
            (1, Invoke, json!([["w", 1, 2]])),
            (1, Ok, json!([["w", 1, 2]])),
        ]);
        let (_, edges, _) = analyse(&h, Shape::RwRegister);
        assert!(edges.is_empty(), "{edges:?}");
    }
}
