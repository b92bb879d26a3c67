//! Read-write register analysis: what can soundly be inferred about version orders when
//! transactions only read and overwrite registers with unique values.
//!
//! A read of `v` says which transaction's write it saw (wr), since values are unique.
//! Version orders are only partly knowable; we infer exactly two things:
//! - the initial state (nil) precedes every written version;
//! - when a committed transaction read `a` on a key and then wrote `b` to it, `a`
//!   precedes `b` (it observed `a` committed, then installed `b`).
//!
//! Each version then has at most one known predecessor, so the version order of a key
//! is a forest rooted at nil. ww edges link a version's writer to its successors'
//! writers; rw edges link each reader of a version to its successors' writers. Readers
//! of nil get an rw edge to every writer whose predecessor is unknown (nil); that product
//! is bounded, and past the bound the verdict is unknown rather than a guess.

use super::anomaly::{self, Anomalies};
use super::explain::{Step, StepExplainer};
use super::graph::{EdgeList, RW, WR, WW};
use super::txn::{MopKind, Outcome, TxnError, Txns, NIL};
use super::writes::{external_reads, final_write, Writes, Written};

/// What the analysis keeps to explain edges later.
pub struct Index {
    writes: Writes,
}

impl Index {
    fn writer(&self, key: u32, value: u32) -> Option<Written> {
        self.writes.writer(key, value)
    }

    /// The version a read of `value` observed: nil, or its writer's final write to the
    /// key (an intermediate value still belongs to its writer's version). `None` when
    /// the value's writer failed or nobody wrote it.
    fn version_of(&self, txns: &Txns, key: u32, value: u32) -> Option<u32> {
        if value == NIL {
            return Some(NIL);
        }
        let w = self.writer(key, value)?;
        if txns.txns[w.txn as usize].outcome == Outcome::Fail {
            return None;
        }
        if w.is_final {
            return Some(value);
        }
        final_write(txns, w.txn, key)
    }
}

/// Runs the analysis: adds ww/wr/rw edges to `edges`, non-cycle cases to `anomalies`.
/// `edge_limit` bounds the rw edges inferred from reads of nil.
pub fn analyse(
    txns: &Txns,
    edges: &mut EdgeList,
    anomalies: &mut Anomalies,
    edge_limit: u64,
) -> Result<Index, TxnError> {
    let ix = Index {
        writes: Writes::build(txns)?,
    };

    // Reads: wr edges and read anomalies; collect (key, version, reader) for rw edges
    // and (key, version, writer) successor records for ww/rw.
    let mut readers: Vec<(u32, u32, u32)> = Vec::new();
    let mut succs: Vec<(u32, u32, u32)> = Vec::new();
    let mut lost: Vec<(u32, u32, u32)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        let t = t as u32;
        let mops = txns.mops_of(t);
        if txn.outcome == Outcome::Fail {
            continue;
        }
        let mut read_version: Vec<(u32, u32)> = Vec::new();
        if txn.outcome == Outcome::Ok {
            for (i, m) in external_reads(mops) {
                let (k, v) = (m.key, m.a);
                match ix.writer(k, v) {
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
                            anomalies
                                .add("G1b", || anomaly::intermediate_read(txns, t, w.txn, k, v));
                        }
                    }
                    None => {}
                }
                if let Some(version) = ix.version_of(txns, k, v) {
                    readers.push((k, version, t));
                    read_version.push((k, version));
                }
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
        // Each final write's known predecessor: what this txn read of the key, else nil.
        for m in mops.iter().filter(|m| m.kind == MopKind::Write) {
            if final_write(txns, t, m.key) != Some(m.a) {
                continue;
            }
            let pred = read_version
                .iter()
                .find(|(k, _)| *k == m.key)
                .map_or(NIL, |&(_, v)| v);
            succs.push((m.key, pred, t));
        }
    }
    readers.sort_unstable();
    succs.sort_unstable();
    // Successor groups by (key, predecessor version): ww from the predecessor's writer,
    // rw from each of its readers. Count first so the nil product cannot explode.
    let group = |list: &[(u32, u32, u32)], i: usize| {
        let mut j = i;
        while j < list.len() && list[j].0 == list[i].0 && list[j].1 == list[i].1 {
            j += 1;
        }
        j
    };
    let mut total: u64 = 0;
    let (mut i, mut r) = (0, 0);
    while i < succs.len() {
        let j = group(&succs, i);
        let key = (succs[i].0, succs[i].1);
        r += readers[r..].partition_point(|x| (x.0, x.1) < key);
        let r_end = if r < readers.len() && (readers[r].0, readers[r].1) == key {
            group(&readers, r)
        } else {
            r
        };
        total += ((r_end - r) * (j - i)) as u64;
        i = j;
    }
    if total > edge_limit {
        return Err(TxnError::TooManyEdges {
            edges: total,
            limit: edge_limit,
        });
    }
    let (mut i, mut r) = (0, 0);
    while i < succs.len() {
        let j = group(&succs, i);
        let (k, pred) = (succs[i].0, succs[i].1);
        if let Some(w) = ix.writer(k, pred) {
            for s in &succs[i..j] {
                edges.add(w.txn, s.2, WW);
            }
        }
        r += readers[r..].partition_point(|x| (x.0, x.1) < (k, pred));
        let r_end = if r < readers.len() && (readers[r].0, readers[r].1) == (k, pred) {
            group(&readers, r)
        } else {
            r
        };
        for rd in &readers[r..r_end] {
            for s in &succs[i..j] {
                edges.add(rd.2, s.2, RW);
            }
        }
        i = j;
    }
    anomaly::group_lost_updates(&mut lost, |k, v, group| {
        let version = txns.value_name(v);
        anomalies.add("lost-update", || {
            anomaly::lost_update(txns, k, &version, group)
        });
    });
    Ok(ix)
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
            WW => external_reads(txns.mops_of(to)).find_map(|(_, m)| {
                let w = self.writer(m.key, m.a)?;
                let next = final_write(txns, to, m.key)?;
                (w.txn == from).then(|| {
                    Step::new(
                        txns,
                        m.key,
                        next,
                        format!(
                            "{a} wrote {} to key {}; {b} read key {} = {} and then wrote {}, so {b}'s version followed {a}'s (ww).",
                            txns.value_name(m.a), key_of(m.key), key_of(m.key), txns.value_name(m.a), txns.value_name(next)
                        ),
                    )
                })
            }),
            RW => external_reads(txns.mops_of(from)).find_map(|(_, m)| {
                let version = self.version_of(txns, m.key, m.a)?;
                let next = final_write(txns, to, m.key)?;
                let pred = external_reads(txns.mops_of(to))
                    .find(|(_, p)| p.key == m.key)
                    .map_or(Some(NIL), |(_, p)| self.version_of(txns, m.key, p.a))?;
                (pred == version).then(|| {
                    let why = if version == NIL {
                        format!(
                            "{a} read key {} = nil, the initial state, and {b} wrote {}, a later version, so {a} ran before {b}'s write (rw).",
                            key_of(m.key), txns.value_name(next)
                        )
                    } else {
                        format!(
                            "{a} read key {} = {}; {b} read that same version and then wrote {}, the next version, so {a} ran before {b}'s write (rw).",
                            key_of(m.key), txns.value_name(m.a), txns.value_name(next)
                        )
                    };
                    Step::new(txns, m.key, next, why)
                })
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph::{RW, WR, WW};
    use super::super::testkit::{analyse, history};
    use super::super::txn::Shape;
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
        let (_, edges, anomalies) = analyse(&h, Shape::RwRegister);
        for e in [(0, 1, WW), (0, 1, WR), (2, 0, RW)] {
            assert!(edges.contains(&e), "{e:?} missing from {edges:?}");
        }
        // Nil's reader does not get an edge to T1 directly: T1's version follows T0's,
        // which the chain T2 -rw-> T0 -ww-> T1 already says.
        assert!(!edges.contains(&(2, 1, RW)), "{edges:?}");
        assert!(anomalies.cases.is_empty());
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
