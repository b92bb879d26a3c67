//! List-append analysis: version orders from reads, dependency edges, and the anomalies
//! a single read shows.
//!
//! Appending unique values to lists makes every read reveal the whole version history
//! of its key up to that point: `[1 2 3]` says 1, 2 and 3 were installed in that order.
//! So the longest committed read of a key is its version order, provided every other
//! read is a prefix of it (otherwise: incompatible-order). From that order:
//! - ww: T1's append is directly followed by T2's append in the order;
//! - wr: T2 read a list whose last element T1 appended;
//! - rw: T1 read a list, and T2 appended the element right after its end.
//!
//! Consecutive appends of one transaction form one version (the transaction's), so a
//! read that ends in the middle of them is an intermediate read (G1b), not a cycle.
//! Elements appended by failed transactions are dropped from the order (reading them is
//! G1a; committed appends after them are dirty updates); elements nobody appended are
//! garbage reads.

use super::anomaly::{self, txn_name, Anomalies};
use super::exact::{OpenOrder, Version};
use super::explain::{Step, StepExplainer};
use super::graph::{EdgeList, RW, WR, WW};
use super::txn::{MopKind, Outcome, TxnError, Txns, NIL, NONE};
use super::writes::{external_reads, final_write, is_external, Writes, Written};
use serde_json::json;

/// Writer code of a position nobody appended.
const GARBAGE: u32 = u32::MAX;
/// Flag on a writer code: this element is not its writer's last append to the key.
const NOT_FINAL: u32 = 1 << 31;

/// One version in a key's order: a run of consecutive elements appended by one
/// committed (or indeterminate) transaction, positions `start..end` of the longest read.
#[derive(Clone, Copy)]
struct Entry {
    txn: u32,
    start: u32,
    end: u32,
}

/// What the analysis keeps to explain edges later.
pub struct Index {
    appends: Writes,
    /// Per key: the global mop index of its longest committed read, or NONE.
    longest: Vec<u32>,
    chain_off: Vec<u32>,
    chain: Vec<Entry>,
    /// Per key: committed transactions whose appends no read observed. Their elements
    /// must follow the whole longest read (any earlier and that read would show them).
    unobserved_off: Vec<u32>,
    unobserved: Vec<u32>,
    /// (key, reader) of every external read that saw a key's whole longest read, sorted.
    final_readers: Vec<(u32, u32)>,
}

impl Index {
    fn writer(&self, key: u32, value: u32) -> Option<Written> {
        self.appends.writer(key, value)
    }

    fn chain_of(&self, key: u32) -> &[Entry] {
        &self.chain
            [self.chain_off[key as usize] as usize..self.chain_off[key as usize + 1] as usize]
    }

    fn unobserved_of(&self, key: u32) -> &[u32] {
        &self.unobserved[self.unobserved_off[key as usize] as usize
            ..self.unobserved_off[key as usize + 1] as usize]
    }

    /// The writer of the last version in the key's observed order.
    fn chain_of_tail(&self, key: u32) -> Option<u32> {
        self.chain_of(key).last().map(|e| e.txn)
    }

    /// For a compatible read of `n` elements: the version entry it ended in (if the last
    /// element belongs to a committed writer) and the next version after it.
    fn locate(&self, key: u32, n: u32) -> (Option<usize>, Option<usize>) {
        let chain = self.chain_of(key);
        if n == 0 {
            return (None, (!chain.is_empty()).then_some(0));
        }
        let pos = n - 1;
        // last entry with start <= pos
        let i = chain.partition_point(|e| e.start <= pos);
        if i == 0 {
            return (None, (!chain.is_empty()).then_some(0));
        }
        let cur = (pos < chain[i - 1].end).then_some(i - 1);
        (cur, (i < chain.len()).then_some(i))
    }

    fn longest_list<'t>(&self, txns: &'t Txns, key: u32) -> &'t [u32] {
        match self.longest[key as usize] {
            NONE => &[],
            m => txns.read_list(&txns.mops[m as usize]),
        }
    }
}

/// Runs the analysis: adds ww/wr/rw edges to `edges`, non-cycle cases to `anomalies`.
/// `edge_limit` bounds the edges inferred for appends no read observed.
pub fn analyse(
    txns: &Txns,
    edges: &mut EdgeList,
    anomalies: &mut Anomalies,
    edge_limit: u64,
) -> Result<Index, TxnError> {
    let n_keys = txns.key_count();
    // Pass 1: appends (with their finality) and the longest committed read per key.
    let appends = Writes::build(txns)?;
    let mut longest = vec![NONE; n_keys];
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        for (i, m) in txns.mops_of(t as u32).iter().enumerate() {
            if m.kind == MopKind::Read {
                let l = &mut longest[m.key as usize];
                if *l == NONE || txns.mops[*l as usize].b < m.b {
                    *l = txn.mop_start + i as u32;
                }
            }
        }
    }
    let mut ix = Index {
        appends,
        longest,
        chain_off: vec![0; n_keys + 1],
        chain: Vec::new(),
        unobserved_off: vec![0; n_keys + 1],
        unobserved: Vec::new(),
        final_readers: Vec::new(),
    };

    // Per key: writers along the longest read, version chain, ww edges, dirty updates.
    let mut first_failed = vec![NONE; n_keys];
    let mut first_garbage = vec![NONE; n_keys];
    let mut wpos: Vec<u32> = Vec::new();
    for k in 0..n_keys as u32 {
        let list = ix.longest_list(txns, k);
        wpos.clear();
        wpos.extend(list.iter().map(|&v| match ix.writer(k, v) {
            None => GARBAGE,
            Some(a) => a.txn | if a.is_final { 0 } else { NOT_FINAL },
        }));
        check_duplicates(txns, &ix, k, anomalies);
        let mut last_failed: Option<u32> = None;
        let key_start = ix.chain.len();
        for (p, &w) in wpos.iter().enumerate() {
            if w == GARBAGE {
                if first_garbage[k as usize] == NONE {
                    first_garbage[k as usize] = p as u32;
                }
                continue;
            }
            let t = w & !NOT_FINAL;
            if txns.txns[t as usize].outcome == Outcome::Fail {
                if first_failed[k as usize] == NONE {
                    first_failed[k as usize] = p as u32;
                }
                last_failed = Some(t);
                continue;
            }
            if let Some(f) = last_failed.take() {
                anomalies.add("dirty-update", || {
                    json!({
                        "key": anomaly::key_json(txns, k),
                        "aborted": anomaly::txn_ref(txns, f),
                        "writer": anomaly::txn_ref(txns, t),
                        "value": anomaly::value_json(txns, list[p]),
                        "why": format!(
                            "{} failed, yet its append to key {} is in the version order, and {} appended {} after it; a committed write was applied on top of an aborted one.",
                            txn_name(txns, f), txns.key_name(k), txn_name(txns, t), txns.value_name(list[p])
                        ),
                    })
                });
            }
            let in_key = ix.chain.len() > key_start;
            match ix.chain.last_mut().filter(|_| in_key) {
                Some(e) if e.txn == t => e.end = p as u32 + 1,
                prev => {
                    if let Some(e) = prev {
                        edges.add(e.txn, t, WW);
                    }
                    ix.chain.push(Entry {
                        txn: t,
                        start: p as u32,
                        end: p as u32 + 1,
                    });
                }
            }
        }
        ix.chain_off[k as usize + 1] = ix.chain.len() as u32;
        check_runs(txns, &ix, k, anomalies);
    }
    // An info transaction whose append some committed read shows did commit: its other
    // appends are committed too, read or not.
    let mut observed = vec![false; txns.txns.len()];
    for e in &ix.chain {
        observed[e.txn as usize] = true;
    }
    let committed = |t: u32| match txns.txns[t as usize].outcome {
        Outcome::Ok => true,
        Outcome::Info => observed[t as usize],
        Outcome::Fail => false,
    };
    let mut in_order: Vec<u32> = Vec::new();
    for k in 0..n_keys as u32 {
        in_order.clear();
        in_order.extend(ix.chain_of(k).iter().map(|e| e.txn));
        in_order.sort_unstable();
        let start = ix.unobserved.len();
        let unseen: Vec<u32> = ix
            .appends
            .of_key(k)
            .iter()
            .filter(|a| committed(a.txn) && in_order.binary_search(&a.txn).is_err())
            .map(|a| a.txn)
            .collect();
        ix.unobserved.extend(unseen);
        ix.unobserved[start..].sort_unstable();
        let mut w = start;
        for r in start..ix.unobserved.len() {
            if r == start || ix.unobserved[r] != ix.unobserved[w - 1] {
                ix.unobserved[w] = ix.unobserved[r];
                w += 1;
            }
        }
        ix.unobserved.truncate(w);
        if let Some(last) = ix.chain_of_tail(k) {
            for &u in &ix.unobserved[start..] {
                edges.add(last, u, WW);
            }
        }
        ix.unobserved_off[k as usize + 1] = ix.unobserved.len() as u32;
    }

    // Pass 2: every committed read against its key's order.
    let mut lost: Vec<(u32, u32, u32)> = Vec::new();
    // (key, reader) of every external read that saw the whole longest read.
    let mut final_readers: Vec<(u32, u32)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let t = t as u32;
        let mops = txns.mops_of(t);
        for (i, m) in mops.iter().enumerate() {
            if m.kind != MopKind::Read {
                continue;
            }
            let k = m.key;
            let list = txns.read_list(m);
            let long = ix.longest_list(txns, k);
            let external = is_external(mops, i);
            if !long.starts_with(list) {
                incompatible(txns, &ix, t, m, anomalies);
                continue;
            }
            let n = list.len() as u32;
            if first_failed[k as usize] < n {
                let v = long[first_failed[k as usize] as usize];
                if let Some(w) = ix.writer(k, v) {
                    anomalies.add("G1a", || anomaly::aborted_read(txns, t, w.txn, k, v));
                }
            }
            if first_garbage[k as usize] < n {
                let v = long[first_garbage[k as usize] as usize];
                anomalies.add("garbage-read", || anomaly::garbage_read(txns, t, k, v));
            }
            if !external {
                continue;
            }
            if n as usize == long.len() {
                final_readers.push((k, t));
            }
            let (cur, next) = ix.locate(k, n);
            if let Some(c) = cur {
                let e = ix.chain_of(k)[c];
                let last = list[n as usize - 1];
                // A version run may span failed or garbage elements of others; a read
                // ending on one of those saw no committed write (reported above).
                if let Some(a) = ix.writer(k, last).filter(|a| a.txn == e.txn) {
                    edges.add(e.txn, t, WR);
                    if !a.is_final && a.txn != t {
                        anomalies.add("G1b", || {
                            anomaly::intermediate_read(txns, t, a.txn, k, last)
                        });
                    }
                }
            }
            if let Some(nx) = next {
                edges.add(t, ix.chain_of(k)[nx].txn, RW);
            }
            if mops[i + 1..]
                .iter()
                .any(|p| p.key == k && p.kind == MopKind::Append)
            {
                lost.push((k, list.last().copied().unwrap_or(NONE), t));
                if let Some(&v) = list
                    .iter()
                    .find(|&&v| ix.writer(k, v).map(|a| a.txn) == Some(t))
                {
                    anomalies.add("future-read", || anomaly::future_read(txns, t, k, v));
                }
            }
        }
        if anomaly::touches_a_key_twice(mops) {
            check_internal(txns, t, anomalies);
        }
    }
    // Readers of the final observed version precede every unobserved committed append.
    let total: u64 = final_readers
        .iter()
        .map(|&(k, _)| ix.unobserved_of(k).len() as u64)
        .sum();
    if total > edge_limit {
        return Err(TxnError::TooManyEdges {
            edges: total,
            limit: edge_limit,
        });
    }
    for &(k, t) in &final_readers {
        for &u in ix.unobserved_of(k) {
            edges.add(t, u, RW);
        }
    }
    final_readers.sort_unstable();
    final_readers.dedup();
    ix.final_readers = final_readers;
    anomaly::group_lost_updates(&mut lost, |k, v, group| {
        let version = if v == NONE {
            "[]".to_string()
        } else {
            format!("a list ending in {}", txns.value_name(v))
        };
        anomalies.add("lost-update", || {
            anomaly::lost_update(txns, k, &version, group)
        });
    });
    Ok(ix)
}

/// A transaction's appends to a key are one atomic step in its program order, so the
/// longest read must show each committed transaction's appends together and in that
/// order (all of them, unless the read ends inside them: that is an intermediate read,
/// G1b, reported elsewhere). Otherwise the observed order and the transaction's own
/// order of versions contradict each other: `cyclic-versions` (Elle's list-append does
/// not check this; a serial order can never produce it).
fn check_runs(txns: &Txns, ix: &Index, k: u32, anomalies: &mut Anomalies) {
    let chain = ix.chain_of(k);
    let list = ix.longest_list(txns, k);
    // A repeated element is duplicate-elements, reported as such.
    if first_duplicate(list).is_some() {
        return;
    }
    let mut own: Vec<u32> = Vec::new();
    for (i, e) in chain.iter().enumerate() {
        own.clear();
        own.extend(
            txns.mops_of(e.txn)
                .iter()
                .filter(|m| m.kind == MopKind::Append && m.key == k)
                .map(|m| m.a),
        );
        let run = &list[e.start as usize..e.end as usize];
        if run.len() == 1 && own.len() == 1 {
            continue;
        }
        // Split runs (another version in between) are a ww cycle, shown as such.
        if chain.iter().filter(|x| x.txn == e.txn).count() > 1 {
            continue;
        }
        let at_end = i + 1 == chain.len() && e.end as usize == list.len();
        let consistent = if at_end {
            own.starts_with(run)
        } else {
            own.as_slice() == run
        };
        if consistent {
            continue;
        }
        let t = e.txn;
        anomalies.add("cyclic-versions", || {
            json!({
                "key": anomaly::key_json(txns, k),
                "txn": anomaly::txn_ref(txns, t),
                "appended": txns.list_text(&own),
                "read": txns.list_text(list),
                "why": format!(
                    "{} appended {} to key {} in that order, as one step, but key {} was read as {}, which shows them {}; the version order the reads show contradicts the transaction's own.",
                    txn_name(txns, t),
                    txns.list_text(&own),
                    txns.key_name(k),
                    txns.key_name(k),
                    txns.list_text(list),
                    if run.len() == own.len() { "in another order" } else { "without all of them before the next version" }
                ),
            })
        });
    }
}

/// The longest read of a key lists some element twice.
fn check_duplicates(txns: &Txns, ix: &Index, k: u32, anomalies: &mut Anomalies) {
    let list = ix.longest_list(txns, k);
    if let Some(dup) = first_duplicate(list) {
        let m = ix.longest[k as usize];
        let reader = owner(txns, m);
        anomalies.add("duplicate-elements", || {
            duplicate_case(txns, reader, k, list, dup)
        });
    }
}

fn first_duplicate(list: &[u32]) -> Option<u32> {
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

fn duplicate_case(txns: &Txns, reader: u32, k: u32, list: &[u32], dup: u32) -> serde_json::Value {
    json!({
        "reader": anomaly::txn_ref(txns, reader),
        "key": anomaly::key_json(txns, k),
        "value": anomaly::value_json(txns, dup),
        "read": txns.list_text(list),
        "why": format!(
            "{} read key {} = {}, which contains {} more than once; each value was appended once.",
            txn_name(txns, reader), txns.key_name(k), txns.list_text(list), txns.value_name(dup)
        ),
    })
}

/// The transaction owning global mop index `m`.
fn owner(txns: &Txns, m: u32) -> u32 {
    txns.txns.partition_point(|x| x.mop_end <= m) as u32
}

/// A committed read that is not a prefix of its key's longest read.
fn incompatible(txns: &Txns, ix: &Index, t: u32, m: &super::txn::Mop, anomalies: &mut Anomalies) {
    let k = m.key;
    let list = txns.read_list(m);
    let long = ix.longest_list(txns, k);
    let other = owner(txns, ix.longest[k as usize]);
    anomalies.add("incompatible-order", || {
        json!({
            "key": anomaly::key_json(txns, k),
            "reads": [txns.list_text(list), txns.list_text(long)],
            "txns": [anomaly::txn_ref(txns, t), anomaly::txn_ref(txns, other)],
            "why": format!(
                "{} read key {} = {} and {} read it as {}; neither is a prefix of the other, so no single order of appends explains both.",
                txn_name(txns, t), txns.key_name(k), txns.list_text(list), txn_name(txns, other), txns.list_text(long)
            ),
        })
    });
    if let Some(dup) = first_duplicate(list) {
        anomalies.add("duplicate-elements", || {
            duplicate_case(txns, t, k, list, dup)
        });
    }
    // Elements only this read shows still need their writers checked.
    for &v in list {
        match ix.writer(k, v) {
            None => anomalies.add("garbage-read", || anomaly::garbage_read(txns, t, k, v)),
            Some(a) if txns.txns[a.txn as usize].outcome == Outcome::Fail => {
                anomalies.add("G1a", || anomaly::aborted_read(txns, t, a.txn, k, v))
            }
            Some(_) => {}
        }
    }
}

/// Internal consistency: each read must agree with the transaction's own earlier reads
/// and appends on that key.
fn check_internal(txns: &Txns, t: u32, anomalies: &mut Anomalies) {
    // key -> (known whole list?, elements)
    let mut state: Vec<(u32, bool, Vec<u32>)> = Vec::new();
    for m in txns.mops_of(t) {
        let slot = state.iter().position(|s| s.0 == m.key);
        match m.kind {
            MopKind::Append => match slot {
                Some(s) => state[s].2.push(m.a),
                None => state.push((m.key, false, vec![m.a])),
            },
            MopKind::Read => {
                let list = txns.read_list(m);
                if let Some(s) = slot {
                    let (_, known, expected) = &state[s];
                    let ok = if *known {
                        list == expected.as_slice()
                    } else {
                        list.ends_with(expected)
                    };
                    if !ok {
                        let text = if *known {
                            txns.list_text(expected)
                        } else {
                            format!("a list ending in {}", txns.list_text(expected))
                        };
                        anomalies.add("internal", || anomaly::internal(txns, t, m.key, &text, m));
                    }
                    state[s] = (m.key, true, list.to_vec());
                } else {
                    state.push((m.key, true, list.to_vec()));
                }
            }
            MopKind::Write | MopKind::ReadUnknown => {}
        }
    }
}

impl Index {
    /// Keys with two or more committed appends no read shows: their order is open (all
    /// come after the longest read, in some order), for the exact search.
    pub(super) fn open_orders(&self, txns: &Txns) -> Vec<OpenOrder> {
        let mut out = Vec::new();
        for k in 0..txns.key_count() as u32 {
            let unobserved = self.unobserved_of(k);
            if unobserved.len() < 2 {
                continue;
            }
            let long = self.longest_list(txns, k);
            let a = self.final_readers.partition_point(|r| r.0 < k);
            let b = self.final_readers.partition_point(|r| r.0 <= k);
            let start = Version {
                value: long.last().copied().unwrap_or(NIL),
                writer: self.chain_of_tail(k),
                readers: self.final_readers[a..b].iter().map(|r| r.1).collect(),
            };
            let open: Vec<Version> = unobserved
                .iter()
                .map(|&t| Version {
                    value: final_write(txns, t, k).unwrap_or(NIL),
                    writer: Some(t),
                    readers: Vec::new(),
                })
                .collect();
            out.push(OpenOrder {
                key: k,
                start,
                preds: vec![Vec::new(); open.len()],
                open,
                start_edges_known: true,
            });
        }
        out
    }

    /// Why `to`'s unobserved committed append on `key` follows the last observed version.
    fn unobserved_step(
        &self,
        txns: &Txns,
        key: u32,
        to: u32,
        a: &str,
        b: &str,
        kind: &str,
    ) -> Step {
        let long = self.longest_list(txns, key);
        let v = final_write(txns, to, key).unwrap_or(NONE);
        let k = txns.key_name(key);
        let why = if kind == "ww" {
            format!(
                "{a} wrote the last element of key {k}'s longest read {}; {b} appended {} and committed, but no read shows it, so it came after every element read (ww).",
                txns.list_text(long), txns.value_name(v)
            )
        } else {
            format!(
                "{a} read key {k} = {}, the longest read of that key, without {}, which {b} appended and committed; no read shows it, so it came after every element read and {a} ran before {b}'s append (rw).",
                txns.list_text(long), txns.value_name(v)
            )
        };
        Step::new(txns, key, v, why)
    }
}

impl StepExplainer for Index {
    fn explain(&self, txns: &Txns, from: u32, to: u32, kind: u8, a: &str, b: &str) -> Option<Step> {
        let key_of = |k: u32| txns.key_name(k).to_string();
        match kind {
            WW => {
                for m in txns
                    .mops_of(from)
                    .iter()
                    .filter(|m| m.kind == MopKind::Append)
                {
                    let chain = self.chain_of(m.key);
                    if let Some(w) = chain
                        .windows(2)
                        .find(|w| w[0].txn == from && w[1].txn == to)
                    {
                        let long = self.longest_list(txns, m.key);
                        let (x, y) = (long[w[0].end as usize - 1], long[w[1].start as usize]);
                        return Some(Step::new(
                            txns,
                            m.key,
                            y,
                            format!(
                                "{a} appended {} to key {}, and {b} appended {} right after it (key {} was read as {}), so {b}'s write followed {a}'s (ww).",
                                txns.value_name(x), key_of(m.key), txns.value_name(y), key_of(m.key), txns.list_text(long)
                            ),
                        ));
                    }
                    if self.chain_of_tail(m.key) == Some(from)
                        && self.unobserved_of(m.key).contains(&to)
                    {
                        return Some(self.unobserved_step(txns, m.key, to, a, b, "ww"));
                    }
                }
                None
            }
            WR => {
                for (_, m) in external_reads(txns.mops_of(to)) {
                    let list = txns.read_list(m);
                    if let (Some(c), _) = self.locate(m.key, list.len() as u32) {
                        if self.chain_of(m.key)[c].txn == from {
                            let x = list[list.len() - 1];
                            return Some(Step::new(
                                txns,
                                m.key,
                                x,
                                format!(
                                    "{a} appended {} to key {}; {b} read key {} = {}, so {b} saw {a}'s append (wr).",
                                    txns.value_name(x), key_of(m.key), key_of(m.key), txns.list_text(list)
                                ),
                            ));
                        }
                    }
                }
                None
            }
            RW => {
                for (_, m) in external_reads(txns.mops_of(from)) {
                    let list = txns.read_list(m);
                    if list.len() == self.longest_list(txns, m.key).len()
                        && self.unobserved_of(m.key).contains(&to)
                    {
                        return Some(self.unobserved_step(txns, m.key, to, a, b, "rw"));
                    }
                    if let (_, Some(nx)) = self.locate(m.key, list.len() as u32) {
                        let e = self.chain_of(m.key)[nx];
                        if e.txn == to {
                            let long = self.longest_list(txns, m.key);
                            let y = long[e.start as usize];
                            let after = match list.last() {
                                Some(&x) => format!("right after {}", txns.value_name(x)),
                                None => "as the first element".to_string(),
                            };
                            return Some(Step::new(
                                txns,
                                m.key,
                                y,
                                format!(
                                    "{a} read key {} = {} without {}, which {b} appended {after} (key {} was later read as {}), so {a} ran before {b}'s append (rw).",
                                    key_of(m.key), txns.list_text(list), txns.value_name(y), key_of(m.key), txns.list_text(long)
                                ),
                            ));
                        }
                    }
                }
                None
            }
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
    fn version_order_gives_ww_wr_and_rw_edges() {
        // T0 appends 1, T1 appends 2, T2 read [1] then T3 reads [1 2].
        let h = history(&[
            (0, Invoke, json!([["append", 1, 1]])),
            (0, Ok, json!([["append", 1, 1]])),
            (1, Invoke, json!([["append", 1, 2]])),
            (1, Ok, json!([["append", 1, 2]])),
            (2, Invoke, json!([["r", 1, null]])),
            (2, Ok, json!([["r", 1, [1]]])),
            (3, Invoke, json!([["r", 1, null]])),
            (3, Ok, json!([["r", 1, [1, 2]]])),
        ]);
        let (_, edges, anomalies) = analyse(&h, Shape::ListAppend);
        for e in [(0, 1, WW), (0, 2, WR), (2, 1, RW), (1, 3, WR)] {
            assert!(edges.contains(&e), "{e:?} missing from {edges:?}");
        }
        assert_eq!(edges.len(), 4, "{edges:?}");
        assert!(anomalies.cases.is_empty());
    }

    #[test]
    fn unobserved_committed_append_follows_the_longest_read() {
        // T1's append of 2 is never read: it must come after [1], so T2 (which read
        // [1]) precedes it, and so does T0's version.
        let h = history(&[
            (0, Invoke, json!([["append", 1, 1]])),
            (0, Ok, json!([["append", 1, 1]])),
            (1, Invoke, json!([["append", 1, 2]])),
            (1, Ok, json!([["append", 1, 2]])),
            (2, Invoke, json!([["r", 1, null]])),
            (2, Ok, json!([["r", 1, [1]]])),
        ]);
        let (_, edges, _) = analyse(&h, Shape::ListAppend);
        assert!(edges.contains(&(0, 1, WW)), "{edges:?}");
        assert!(edges.contains(&(2, 1, RW)), "{edges:?}");
    }

    #[test]
    fn a_read_ending_inside_a_transactions_appends_is_g1b_not_a_cycle() {
        let h = history(&[
            (0, Invoke, json!([["append", 1, 1], ["append", 1, 2]])),
            (0, Ok, json!([["append", 1, 1], ["append", 1, 2]])),
            (1, Invoke, json!([["r", 1, null]])),
            (1, Ok, json!([["r", 1, [1]]])),
        ]);
        let (_, edges, anomalies) = analyse(&h, Shape::ListAppend);
        assert_eq!(anomalies.counts.get("G1b"), Some(&1));
        assert!(!edges.iter().any(|e| e.0 == 1), "{edges:?}");
    }
}
