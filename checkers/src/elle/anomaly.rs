//! Non-cycle anomalies: the cases a single read or transaction proves on its own
//! (aborted read, intermediate read, garbage, duplicates, internal inconsistency, ...),
//! collected with a cap so that a million-transaction history yields a small report.

use super::txn::{Mop, MopKind, Txns, NIL};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Collects cases per anomaly name: every case is counted, the first `cap` are kept.
pub struct Anomalies {
    cap: usize,
    pub cases: BTreeMap<&'static str, Vec<Value>>,
    pub counts: BTreeMap<&'static str, u64>,
}

impl Anomalies {
    pub fn new(cap: usize) -> Anomalies {
        Anomalies {
            cap,
            cases: BTreeMap::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Records one case of `name`; `make` only runs when the case is kept.
    pub fn add(&mut self, name: &'static str, make: impl FnOnce() -> Value) {
        *self.counts.entry(name).or_default() += 1;
        let list = self.cases.entry(name).or_default();
        if list.len() < self.cap {
            list.push(make());
        }
    }
}

/// `{"txn": op index, "op": display}`: how evidence points at a transaction.
pub fn txn_ref(txns: &Txns, t: u32) -> Value {
    json!({"txn": txns.txns[t as usize].index(), "op": txns.txn_text(t)})
}

/// How a sentence names a transaction outside a cycle: `#12 (p3)`.
pub fn txn_name(txns: &Txns, t: u32) -> String {
    let x = &txns.txns[t as usize];
    format!("#{} (p{})", x.index(), x.process)
}

pub fn key_json(txns: &Txns, k: u32) -> Value {
    txns.key_name(k).to_json()
}

pub fn value_json(txns: &Txns, v: u32) -> Value {
    if v == NIL {
        Value::Null
    } else {
        txns.values.name(v).to_json()
    }
}

/// An ok read saw a value written by a failed transaction.
pub fn aborted_read(txns: &Txns, reader: u32, writer: u32, key: u32, value: u32) -> Value {
    json!({
        "reader": txn_ref(txns, reader),
        "writer": txn_ref(txns, writer),
        "key": key_json(txns, key),
        "value": value_json(txns, value),
        "why": format!(
            "{} read key {} and saw {}, written by {}, which failed; an aborted write must never be visible.",
            txn_name(txns, reader), txns.key_name(key), txns.value_name(value), txn_name(txns, writer)
        ),
    })
}

/// An ok read saw a value its writer later overwrote within the same transaction.
pub fn intermediate_read(txns: &Txns, reader: u32, writer: u32, key: u32, value: u32) -> Value {
    json!({
        "reader": txn_ref(txns, reader),
        "writer": txn_ref(txns, writer),
        "key": key_json(txns, key),
        "value": value_json(txns, value),
        "why": format!(
            "{} read key {} and saw {}, which {} wrote but then overwrote within the same transaction; only a transaction's final write may be visible to others.",
            txn_name(txns, reader), txns.key_name(key), txns.value_name(value), txn_name(txns, writer)
        ),
    })
}

/// An ok read saw a value nobody ever wrote.
pub fn garbage_read(txns: &Txns, reader: u32, key: u32, value: u32) -> Value {
    json!({
        "reader": txn_ref(txns, reader),
        "key": key_json(txns, key),
        "value": value_json(txns, value),
        "why": format!(
            "{} read key {} and saw {}, a value no transaction in the history ever wrote to that key.",
            txn_name(txns, reader), txns.key_name(key), txns.value_name(value)
        ),
    })
}

/// A read observed a write its own transaction only performs later.
pub fn future_read(txns: &Txns, t: u32, key: u32, value: u32) -> Value {
    json!({
        "txn": txn_ref(txns, t),
        "key": key_json(txns, key),
        "value": value_json(txns, value),
        "why": format!(
            "{} read key {} and saw {}, which it only writes later in the same transaction; a read cannot observe the future (a one-transaction G1c).",
            txn_name(txns, t), txns.key_name(key), txns.value_name(value)
        ),
    })
}

/// Several committed transactions read the same version of a key and each wrote it.
pub fn lost_update(txns: &Txns, key: u32, version: &str, group: &[u32]) -> Value {
    let names: Vec<String> = group.iter().map(|&t| txn_name(txns, t)).collect();
    json!({
        "key": key_json(txns, key),
        "value": version,
        "txns": group.iter().map(|&t| txn_ref(txns, t)).collect::<Vec<_>>(),
        "why": format!(
            "{} all read key {} = {} and then each wrote it, and all committed; in any serial order only the first could have read {}, so the others' updates were lost.",
            names.join(", "), txns.key_name(key), version, version
        ),
    })
}

/// A transaction's read disagrees with its own earlier micro-ops on the same key.
pub fn internal(txns: &Txns, t: u32, key: u32, expected: &str, read: &Mop) -> Value {
    json!({
        "txn": txn_ref(txns, t),
        "key": key_json(txns, key),
        "expected": expected,
        "read": txns.mop_text(read),
        "why": format!(
            "{} read key {} as {}, but its own earlier micro-ops imply {}; a transaction must observe its own writes and reads.",
            txn_name(txns, t), txns.key_name(key), read_text(txns, read), expected
        ),
    })
}

fn read_text(txns: &Txns, m: &Mop) -> String {
    match (m.kind, txns.shape) {
        (MopKind::Read, super::txn::Shape::ListAppend) => txns.list_text(txns.read_list(m)),
        _ => txns.value_name(m.a),
    }
}

/// Finds groups of two or more transactions sharing `(key, version)`; `records` are
/// `(key, version id, txn)`, sorted here. Calls `emit` once per group.
pub fn group_lost_updates(records: &mut [(u32, u32, u32)], mut emit: impl FnMut(u32, u32, &[u32])) {
    records.sort_unstable();
    let mut i = 0;
    while i < records.len() {
        let mut j = i + 1;
        while j < records.len() && records[j].0 == records[i].0 && records[j].1 == records[i].1 {
            j += 1;
        }
        if j - i >= 2 {
            let group: Vec<u32> = records[i..j].iter().map(|r| r.2).collect();
            emit(records[i].0, records[i].1, &group);
        }
        i = j;
    }
}

/// For each transaction with several micro-ops: the keys it touches more than once.
/// Cheap pre-filter, since most transactions touch each key once and need no check.
pub fn touches_a_key_twice(mops: &[Mop]) -> bool {
    mops.len() > 1
        && mops
            .iter()
            .enumerate()
            .any(|(i, m)| mops[..i].iter().any(|p| p.key == m.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_counts_everything_but_keeps_only_the_cap() {
        let mut a = Anomalies::new(2);
        for i in 0..5 {
            a.add("G1a", || json!(i));
        }
        assert_eq!(a.counts["G1a"], 5);
        assert_eq!(a.cases["G1a"], vec![json!(0), json!(1)]);
    }

    #[test]
    fn lost_update_groups_need_two_transactions() {
        let mut recs = vec![(1, 5, 10), (1, 5, 11), (1, 6, 12), (2, 5, 13)];
        let mut groups = Vec::new();
        group_lost_updates(&mut recs, |k, v, g| groups.push((k, v, g.to_vec())));
        assert_eq!(groups, vec![(1, 5, vec![10, 11])]);
    }
}
