//! What both workloads need to know about writes: for every (key, value) written, the
//! transaction that wrote it and whether it was that transaction's final write to the
//! key; plus which reads of a transaction observe outside state.
//!
//! Stored as one vector sorted by (key, value) with per-key offsets: lookups are a
//! binary search within one key's few writes, and there is no per-op hash map.

use super::txn::{Mop, MopKind, Outcome, TxnError, Txns, NIL};

/// One write (an append or a register write) of one transaction.
#[derive(Clone, Copy, Debug)]
pub struct Written {
    pub key: u32,
    pub value: u32,
    pub txn: u32,
    /// The transaction's last write to the key: its externally visible version.
    pub is_final: bool,
    /// The writer's outcome (kept here: looking it up per write costs a cache miss).
    pub failed: bool,
}

/// Every write of a history, indexed by key and value.
pub struct Writes {
    recs: Vec<Written>,
    off: Vec<u32>,
}

impl Writes {
    /// Indexes the writes of every transaction (ok, info and fail alike: reads of failed
    /// writes must be recognised too). Values must be unique per key.
    pub fn build(txns: &Txns) -> Result<Writes, TxnError> {
        let mut recs: Vec<Written> = Vec::new();
        let mut seen_keys: Vec<u32> = Vec::new();
        for t in 0..txns.txns.len() as u32 {
            let failed = txns.txns[t as usize].outcome == Outcome::Fail;
            seen_keys.clear();
            for m in txns.mops_of(t).iter().rev() {
                if matches!(m.kind, MopKind::Append | MopKind::Write) {
                    let is_final = !seen_keys.contains(&m.key);
                    if is_final {
                        seen_keys.push(m.key);
                    }
                    recs.push(Written {
                        key: m.key,
                        value: m.a,
                        txn: t,
                        is_final,
                        failed,
                    });
                }
            }
        }
        recs.sort_unstable_by_key(|w| (w.key, w.value));
        if let Some(w) = recs
            .windows(2)
            .find(|w| w[0].key == w[1].key && w[0].value == w[1].value)
        {
            return Err(TxnError::DuplicateWrite {
                key: txns.key_name(w[0].key).to_string(),
                value: txns.value_name(w[0].value),
                first: txns.txns[w[0].txn as usize].index(),
                second: txns.txns[w[1].txn as usize].index(),
            });
        }
        let n_keys = txns.key_count();
        let mut off = vec![0u32; n_keys + 1];
        for w in &recs {
            off[w.key as usize + 1] += 1;
        }
        for k in 0..n_keys {
            off[k + 1] += off[k];
        }
        Ok(Writes { recs, off })
    }

    /// Every write, sorted by (key, value).
    pub fn all(&self) -> &[Written] {
        &self.recs
    }

    /// The writes to `key`, sorted by value.
    pub fn of_key(&self, key: u32) -> &[Written] {
        &self.recs[self.off[key as usize] as usize..self.off[key as usize + 1] as usize]
    }

    /// Who wrote `value` to `key`; `None` for nil or a value nobody wrote.
    pub fn writer(&self, key: u32, value: u32) -> Option<Written> {
        if value == NIL {
            return None;
        }
        let w = self.of_key(key);
        w.binary_search_by_key(&value, |x| x.value)
            .ok()
            .map(|i| w[i])
    }
}

/// Whether micro-op `i` of a transaction reads state from outside it: it is a read and
/// the first micro-op on its key. Later reads reflect the transaction's own work.
pub fn is_external(mops: &[Mop], i: usize) -> bool {
    mops[i].kind == MopKind::Read && !mops[..i].iter().any(|p| p.key == mops[i].key)
}

/// The external reads of a transaction, with their positions.
pub fn external_reads(mops: &[Mop]) -> impl Iterator<Item = (usize, &Mop)> + '_ {
    mops.iter()
        .enumerate()
        .filter(move |(i, _)| is_external(mops, *i))
}

/// The last value transaction `t` wrote (or appended) to `key`.
pub fn final_write(txns: &Txns, t: u32, key: u32) -> Option<u32> {
    txns.mops_of(t)
        .iter()
        .rev()
        .find(|m| matches!(m.kind, MopKind::Append | MopKind::Write) && m.key == key)
        .map(|m| m.a)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::history;
    use super::super::txn::{Shape, Txns};
    use super::*;
    use crate::op::OpType::{Invoke, Ok};
    use serde_json::json;

    #[test]
    fn only_the_last_write_per_key_is_final_and_only_first_reads_are_external() {
        let v = json!([
            ["r", 1, null],
            ["w", 1, 5],
            ["w", 1, 6],
            ["r", 1, 6],
            ["r", 2, null]
        ]);
        let h = history(&[(0, Invoke, v.clone()), (0, Ok, v)]);
        let txns = Txns::from_history(&h, Shape::RwRegister).unwrap();
        let w = Writes::build(&txns).unwrap();
        // Key 1 is key id 0; values 5 and 6 are value ids 0 and 1.
        assert!(!w.writer(0, 0).unwrap().is_final, "5 was overwritten");
        assert!(w.writer(0, 1).unwrap().is_final);
        assert!(w.writer(0, NIL).is_none());
        let ext: Vec<usize> = external_reads(txns.mops_of(0)).map(|(i, _)| i).collect();
        assert_eq!(ext, vec![0, 4]);
        assert_eq!(final_write(&txns, 0, 0), Some(1));
    }

    #[test]
    fn a_value_appended_twice_to_one_key_is_refused() {
        let h = history(&[
            (0, Invoke, json!([["append", 1, 5]])),
            (0, Ok, json!([["append", 1, 5]])),
            (1, Invoke, json!([["append", 1, 5]])),
        ]);
        let txns = Txns::from_history(&h, Shape::ListAppend).unwrap();
        let err = Writes::build(&txns).err().unwrap();
        assert!(err.to_string().contains("unique"), "{err}");
    }
}
