//! The `kafka` checker: Kafka-style logs judged as Jepsen's kafka test judges them.
//!
//! A system of append-only logs, one per *key*: a `send` appends a message and is told
//! its *offset*; a `poll` returns, per key, `[offset, message]` records from the
//! consumer's position on; consumers `commit_offsets` they have processed and read them
//! back with `list_committed_offsets`. Messages are unique per key (the workloads make
//! them so): that is what lets a record name the send that wrote it.
//!
//! # Op shapes (Jepsen's)
//!
//! | f | invocation value | `ok` completion value |
//! |---|---|---|
//! | `send` | `[["send", k, msg]]` | `[["send", k, [offset, msg]]]` |
//! | `poll` | `[["poll"]]`, or `{"final": true, ...}` for a final poll | `[["poll", {k: [[offset, msg], ...]}]]` |
//! | `txn` | a list mixing both micro-ops | both, completed |
//! | `assign` / `subscribe` | list of keys | list of keys |
//! | `commit_offsets` | anything | `{k: offset}` committed |
//! | `list_committed_offsets` | list of keys | `{k: offset}` |
//!
//! Map keys are strings; one that reads as an integer is that integer, so `"3"` and `3`
//! name one key. A *final poll* reads every key from offset 0 after the heal.
//!
//! # Anomalies (all make the history invalid)
//!
//! - `inconsistent-offsets`: one offset of a key holds two different messages.
//! - `duplicate`: one message sits at two offsets of a key.
//! - `lost-write`: a message whose offset lies below the highest offset some poll read
//!   (in the key's observed order) was never polled, although its send was acknowledged.
//! - `unseen`: an acknowledged message no poll ever returned, although a final poll
//!   (from offset 0, after the heal) began after the send was acknowledged.
//! - `poll-skip` / `nonmonotonic-poll`: between two successive polls of one process the
//!   key's position jumped over known messages, or went back (or stayed); reset by
//!   `assign` for the keys it drops.
//! - `int-poll-skip` / `int-nonmonotonic-poll`: the same inside one poll's records.
//! - `nonmonotonic-send` / `int-nonmonotonic-send`: a process's acknowledged sends to a
//!   key got offsets that do not increase (across ops / inside one op).
//! - `aborted-read`: a poll returned a message whose send definitely failed (G1a).
//! - `unexpected`: a poll returned a message nobody sent.
//! - `committed-offset-regression`: `list_committed_offsets` returned a lower offset for
//!   a key (or none) than a `commit_offsets` acknowledged before the list began, or than
//!   a list that completed before it began. Servers are expected to keep the highest
//!   committed offset: committed offsets only move forward.
//! - `unexpected-committed-offset`: a listed committed offset above every offset any
//!   client had tried to commit for that key.
//!
//! Offsets are compared by their *index* in the observed log (see [`log`]): a hole in the
//! offsets nobody observed is not a skip. Histories with no acknowledged send or poll, or
//! with ops of the wrong shape, are `unknown` unless something above was found.

pub mod log;
pub mod ops;

use crate::checker::{CheckContext, Checker};
use crate::convergence::{capped, conclude, Elem, Malformed, EVIDENCE_LIST_CAP};
use crate::history::{History, Pair};
use crate::op::{OpType, Process};
use crate::verdict::Verdict;
use log::KeyLog;
use ops::{effects, is_final_poll, kind, Kind, OpEffects};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Jepsen's kafka analysis; see the module docs.
pub struct Kafka;

impl Checker for Kafka {
    fn name(&self) -> &str {
        "kafka"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        analyse(history)
    }

    /// Buffered: most of the analysis (lost writes, skips, unseen messages) needs every
    /// poll of a key, and Kafka workloads never retire keys; the verdict comes at the end.
    fn online(&self) -> Box<dyn crate::online::OnlineChecker> {
        Box::new(crate::online::Buffered::new(Box::new(Kafka)))
    }
}

/// Who sent a message, and how that ended.
#[derive(Clone, Copy, Debug)]
struct Writer {
    invoke_index: u64,
    /// The completion's index; `None` while indeterminate.
    done_index: Option<u64>,
    outcome: OpType,
}

/// The anomalies found, by name, each a list of capped examples with a full count.
#[derive(Default)]
struct Found {
    cases: BTreeMap<&'static str, (usize, Vec<Value>)>,
}

impl Found {
    fn add(&mut self, anomaly: &'static str, case: Value) {
        let (count, examples) = self.cases.entry(anomaly).or_default();
        *count += 1;
        if examples.len() < EVIDENCE_LIST_CAP {
            examples.push(case);
        }
    }
}

fn analyse(history: &History) -> Verdict {
    let mut malformed = Malformed::default();
    let pairs: Vec<(Pair<'_>, OpEffects)> = history
        .pairs()
        .filter(|p| kind(&p.invoke.f) != Kind::Other)
        .map(|p| {
            let e = effects(&p, &mut malformed);
            (p, e)
        })
        .collect();

    // Writers, logs and what was polled.
    let mut writers: HashMap<(Elem, Elem), Writer> = HashMap::new();
    let mut logs: BTreeMap<Elem, KeyLog> = BTreeMap::new();
    // key → message → index of the first ok poll that returned it
    let mut polled: BTreeMap<Elem, HashMap<Elem, u64>> = BTreeMap::new();
    let (mut acknowledged, mut sends, mut poll_count, mut polled_records) = (0usize, 0, 0, 0);
    for (pair, e) in &pairs {
        let done_index = pair
            .completion
            .filter(|c| c.kind != OpType::Info)
            .map(|c| c.index);
        for (k, m, offset) in &e.sends {
            sends += 1;
            let outcome = pair.outcome();
            acknowledged += usize::from(outcome == OpType::Ok);
            writers.entry((k.clone(), m.clone())).or_insert(Writer {
                invoke_index: pair.invoke.index,
                done_index,
                outcome,
            });
            if let (Some(o), OpType::Ok) = (offset, outcome) {
                logs.entry(k.clone()).or_default().observe(*o, m.clone());
            }
        }
        let index = pair.completion.map_or(pair.invoke.index, |c| c.index);
        for poll in &e.polls {
            poll_count += 1;
            for (k, records) in poll {
                for r in records {
                    polled_records += 1;
                    logs.entry(k.clone())
                        .or_default()
                        .observe(r.offset, r.msg.clone());
                    polled
                        .entry(k.clone())
                        .or_default()
                        .entry(r.msg.clone())
                        .or_insert(index);
                }
            }
        }
    }
    for log in logs.values_mut() {
        log.index();
    }

    let mut found = Found::default();
    for (k, log) in &logs {
        for (offset, msgs) in log.inconsistent() {
            found.add(
                "inconsistent-offsets",
                json!({"key": k.to_value(), "offset": offset, "messages": msgs.iter().map(Elem::to_value).collect::<Vec<_>>()}),
            );
        }
        for (m, offsets) in log.duplicates() {
            found.add(
                "duplicate",
                json!({"key": k.to_value(), "message": m.to_value(), "offsets": offsets}),
            );
        }
    }
    read_provenance(&polled, &writers, &mut found);
    lost_writes(&logs, &polled, &writers, &mut found);
    let unseen = unseen(&pairs, &polled, &logs, &mut found);
    continuity(&pairs, &logs, &mut found);
    committed_offsets(&pairs, &mut found);

    let anomalies: Vec<String> = found.cases.keys().map(|s| s.to_string()).collect();
    let mut evidence = Map::new();
    evidence.insert("send_count".into(), json!(sends));
    evidence.insert("acknowledged_send_count".into(), json!(acknowledged));
    evidence.insert("poll_count".into(), json!(poll_count));
    evidence.insert("polled_record_count".into(), json!(polled_records));
    evidence.insert("key_count".into(), json!(logs.len()));
    evidence.insert("unseen_without_final_poll_count".into(), json!(unseen));
    evidence.insert("malformed".into(), malformed.evidence());
    for (name, (count, examples)) in &found.cases {
        evidence.insert(
            name.replace('-', "_"),
            json!({"count": count, "cases": examples}),
        );
    }
    let tally = format!(
        "{sends} send(s), {acknowledged} acknowledged; {poll_count} poll(s) returned {polled_records} record(s) over {} key(s).",
        logs.len()
    );
    let summary = if found.cases.is_empty() {
        tally
    } else {
        let list = found
            .cases
            .iter()
            .map(|(name, (count, _))| format!("{count} {name}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("Found {list}. {tally}")
    };
    let explanation = found
        .cases
        .iter()
        .filter_map(|(name, (_, examples))| Some(format!("{name}: {}", examples.first()?)))
        .collect::<Vec<_>>()
        .join("\n");
    let unknown = malformed.reason().or_else(|| {
        (acknowledged == 0 && polled_records == 0).then(|| {
            "No send was acknowledged and no poll returned anything, so nothing was checked."
                .to_string()
        })
    });
    conclude(
        anomalies,
        unknown,
        summary,
        explanation,
        Value::Object(evidence),
    )
}

/// `unexpected` (nobody sent it) and `aborted-read` (its send failed) records.
fn read_provenance(
    polled: &BTreeMap<Elem, HashMap<Elem, u64>>,
    writers: &HashMap<(Elem, Elem), Writer>,
    found: &mut Found,
) {
    for (k, msgs) in polled {
        let mut msgs: Vec<(&Elem, &u64)> = msgs.iter().collect();
        msgs.sort();
        for (m, &read_index) in msgs {
            match writers.get(&(k.clone(), m.clone())) {
                None => found.add(
                    "unexpected",
                    json!({"key": k.to_value(), "message": m.to_value(), "read_index": read_index}),
                ),
                Some(w) if w.outcome == OpType::Fail => found.add(
                    "aborted-read",
                    json!({"key": k.to_value(), "message": m.to_value(), "read_index": read_index, "send_index": w.invoke_index}),
                ),
                Some(_) => {}
            }
        }
    }
}

/// Jepsen's lost writes: per key, every message whose last offset lies at or below the
/// highest (first) offset of a polled message must have been polled too.
fn lost_writes(
    logs: &BTreeMap<Elem, KeyLog>,
    polled: &BTreeMap<Elem, HashMap<Elem, u64>>,
    writers: &HashMap<(Elem, Elem), Writer>,
    found: &mut Found,
) {
    for (k, log) in logs {
        let Some(read) = polled.get(k) else { continue };
        let Some((bound, max_msg)) = read
            .keys()
            .filter_map(|m| Some((log.index_of(m)?, m)))
            .max()
        else {
            continue;
        };
        let mut lost: Vec<(usize, &Elem)> = log
            .offsets
            .values()
            .flatten()
            .filter(|m| !read.contains_key(*m))
            .filter_map(|m| Some((log.last_index_of(m)?, m)))
            .filter(|(i, _)| *i <= bound)
            .filter(|(_, m)| {
                writers
                    .get(&(k.clone(), (*m).clone()))
                    .is_some_and(|w| w.outcome == OpType::Ok)
            })
            .collect();
        lost.sort();
        lost.dedup();
        for (i, m) in lost {
            let w = writers[&(k.clone(), m.clone())];
            found.add(
                "lost-write",
                json!({
                    "key": k.to_value(), "message": m.to_value(), "log_index": i,
                    "send_index": w.done_index.unwrap_or(w.invoke_index),
                    "max_read": max_msg.to_value(), "max_read_index": read[max_msg],
                }),
            );
        }
    }
}

/// Acknowledged messages no poll returned although a final poll began after the send
/// was acknowledged. Returns how many unpolled acknowledged messages had no such final
/// poll (not an anomaly: nothing was obliged to read them).
fn unseen(
    pairs: &[(Pair<'_>, OpEffects)],
    polled: &BTreeMap<Elem, HashMap<Elem, u64>>,
    logs: &BTreeMap<Elem, KeyLog>,
    found: &mut Found,
) -> usize {
    let last_final_poll = pairs
        .iter()
        .filter(|(p, _)| is_final_poll(p) && p.outcome() == OpType::Ok)
        .map(|(p, _)| p.invoke.index)
        .max();
    let mut without_final = 0;
    for (pair, e) in pairs {
        if pair.outcome() != OpType::Ok {
            continue;
        }
        let done = pair.completion.map_or(pair.invoke.index, |c| c.index);
        for (k, m, offset) in &e.sends {
            if polled.get(k).is_some_and(|p| p.contains_key(m)) {
                continue;
            }
            // Already reported as a lost write: below something read.
            let below_read = logs.get(k).zip(polled.get(k)).is_some_and(|(log, read)| {
                let bound = read.keys().filter_map(|r| log.index_of(r)).max();
                log.last_index_of(m).zip(bound).is_some_and(|(i, b)| i <= b)
            });
            if below_read {
                continue;
            }
            match last_final_poll {
                Some(f) if f > done => found.add(
                    "unseen",
                    json!({"key": k.to_value(), "message": m.to_value(), "offset": offset, "send_index": done, "final_poll_index": f}),
                ),
                _ => without_final += 1,
            }
        }
    }
    without_final
}

/// Per process: successive polls and sends move forward through each key's log one
/// message at a time; inside one op too.
fn continuity(pairs: &[(Pair<'_>, OpEffects)], logs: &BTreeMap<Elem, KeyLog>, found: &mut Found) {
    #[derive(Default)]
    struct ProcessState {
        /// key → (last message polled, index of that poll's completion)
        last_read: HashMap<Elem, (Elem, u64)>,
        /// key → (last message sent, index of that send's completion)
        last_sent: HashMap<Elem, (Elem, u64)>,
    }
    let mut states: HashMap<Process, ProcessState> = HashMap::new();
    let index = |k: &Elem, m: &Elem| logs.get(k).and_then(|l| l.index_of(m));
    let skipped = |k: &Elem, from: usize, to: usize| -> Value {
        let between = logs.get(k).map(|l| l.between(from, to)).unwrap_or_default();
        capped(between.into_iter().map(|(o, m)| json!([o, m.to_value()])))
    };
    for (pair, e) in pairs {
        if pair.outcome() != OpType::Ok {
            continue;
        }
        let state = states.entry(pair.invoke.process).or_default();
        let at = pair.completion.map_or(pair.invoke.index, |c| c.index);
        if kind(&pair.invoke.f) == Kind::Assign {
            state.last_read.retain(|k, _| e.assigned.contains(k));
            state.last_sent.retain(|k, _| e.assigned.contains(k));
            continue;
        }
        for poll in &e.polls {
            for (k, records) in poll {
                let Some(first) = records.first() else {
                    continue;
                };
                if let Some((prev, prev_at)) = state.last_read.get(k) {
                    if let (Some(i), Some(j)) = (index(k, prev), index(k, &first.msg)) {
                        let case = |extra: Value| {
                            let mut c = json!({"key": k.to_value(), "messages": [prev.to_value(), first.msg.to_value()], "delta": j as i64 - i as i64, "ops": [prev_at, at]});
                            if !extra.is_null() {
                                c["skipped"] = extra;
                            }
                            c
                        };
                        if j > i + 1 {
                            found.add("poll-skip", case(skipped(k, i + 1, j)));
                        } else if j <= i {
                            found.add("nonmonotonic-poll", case(Value::Null));
                        }
                    }
                }
                for w in records.windows(2) {
                    if let (Some(i), Some(j)) = (index(k, &w[0].msg), index(k, &w[1].msg)) {
                        let mut case = json!({"key": k.to_value(), "messages": [w[0].msg.to_value(), w[1].msg.to_value()], "offsets": [w[0].offset, w[1].offset], "delta": j as i64 - i as i64, "index": at});
                        if j > i + 1 {
                            case["skipped"] = skipped(k, i + 1, j);
                            found.add("int-poll-skip", case);
                        } else if j <= i {
                            found.add("int-nonmonotonic-poll", case);
                        }
                    }
                }
                let last = records.last().expect("records are not empty");
                state.last_read.insert(k.clone(), (last.msg.clone(), at));
            }
        }
        let mut sent_here: HashMap<&Elem, &Elem> = HashMap::new();
        for (k, m, _) in &e.sends {
            let (prev, prev_at, name) = match sent_here.get(k) {
                Some(prev) => ((*prev).clone(), at, "int-nonmonotonic-send"),
                None => match state.last_sent.get(k) {
                    Some((prev, prev_at)) => (prev.clone(), *prev_at, "nonmonotonic-send"),
                    None => {
                        sent_here.insert(k, m);
                        continue;
                    }
                },
            };
            if let (Some(i), Some(j)) = (index(k, &prev), index(k, m)) {
                if j <= i {
                    found.add(
                        name,
                        json!({"key": k.to_value(), "messages": [prev.to_value(), m.to_value()], "delta": j as i64 - i as i64, "ops": [prev_at, at]}),
                    );
                }
            }
            sent_here.insert(k, m);
        }
        for (k, m) in sent_here {
            state.last_sent.insert(k.clone(), (m.clone(), at));
        }
    }
}

/// Committed offsets only move forward, and only to offsets someone committed.
fn committed_offsets(pairs: &[(Pair<'_>, OpEffects)], found: &mut Found) {
    enum Event<'a> {
        /// A commit that did not fail was invoked: its offsets may now be committed.
        CommitInvoked(&'a [(Elem, i64)]),
        /// A commit was acknowledged: its offsets are committed.
        CommitDone(&'a [(Elem, i64)]),
        ListInvoked(usize),
        ListDone(usize, u64),
    }
    // A failed commit still names what it tried, in its invocation, when it is a map.
    let attempted: Vec<Vec<(Elem, i64)>> = pairs
        .iter()
        .map(|(p, e)| {
            if kind(&p.invoke.f) != Kind::Commit || p.outcome() == OpType::Fail {
                return Vec::new();
            }
            if !e.offsets.is_empty() {
                return e.offsets.clone();
            }
            let source = p.completion.map_or(&p.invoke.value, |c| {
                if c.value.is_object() {
                    &c.value
                } else {
                    &p.invoke.value
                }
            });
            source
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((ops::key_of(k), v.as_i64()?)))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let mut events: Vec<(u64, Event<'_>)> = Vec::new();
    for (i, (p, e)) in pairs.iter().enumerate() {
        match kind(&p.invoke.f) {
            Kind::Commit => {
                events.push((p.invoke.index, Event::CommitInvoked(&attempted[i])));
                if let (OpType::Ok, Some(c)) = (p.outcome(), p.completion) {
                    events.push((c.index, Event::CommitDone(&e.offsets)));
                }
            }
            Kind::ListCommitted => {
                if let (OpType::Ok, Some(c)) = (p.outcome(), p.completion) {
                    events.push((p.invoke.index, Event::ListInvoked(i)));
                    events.push((c.index, Event::ListDone(i, c.index)));
                }
            }
            _ => {}
        }
    }
    events.sort_by_key(|(index, _)| *index);
    // key → (highest offset known committed, the op that showed it)
    let mut floor: HashMap<Elem, (i64, u64)> = HashMap::new();
    // key → highest offset anyone tried to commit
    let mut ceiling: HashMap<Elem, i64> = HashMap::new();
    let mut floor_at_invoke: HashMap<usize, HashMap<Elem, (i64, u64)>> = HashMap::new();
    for (at, event) in events {
        match event {
            Event::CommitInvoked(offsets) => {
                for (k, o) in offsets {
                    let c = ceiling.entry(k.clone()).or_insert(*o);
                    *c = (*c).max(*o);
                }
            }
            Event::CommitDone(offsets) => {
                for (k, o) in offsets {
                    raise(&mut floor, k, *o, at);
                }
            }
            Event::ListInvoked(i) => {
                floor_at_invoke.insert(i, floor.clone());
            }
            Event::ListDone(i, done) => {
                let listed: HashMap<&Elem, i64> =
                    pairs[i].1.offsets.iter().map(|(k, o)| (k, *o)).collect();
                let before = floor_at_invoke.remove(&i).unwrap_or_default();
                let mut keys: Vec<&Elem> = before.keys().chain(listed.keys().copied()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let got = listed.get(k).copied();
                    if let Some(&(expected, shown_by)) = before.get(k) {
                        if got.is_none_or(|g| g < expected) {
                            found.add(
                                "committed-offset-regression",
                                json!({"key": k.to_value(), "listed": got, "committed": expected, "committed_index": shown_by, "index": done}),
                            );
                        }
                    }
                    if let Some(g) = got {
                        if ceiling.get(k).is_none_or(|c| g > *c) {
                            found.add(
                                "unexpected-committed-offset",
                                json!({"key": k.to_value(), "listed": g, "highest_attempted": ceiling.get(k), "index": done}),
                            );
                        }
                        raise(&mut floor, k, g, done);
                    }
                }
            }
        }
    }
}

fn raise(floor: &mut HashMap<Elem, (i64, u64)>, k: &Elem, offset: i64, at: u64) {
    match floor.get_mut(k) {
        Some(f) if f.0 >= offset => {}
        Some(f) => *f = (offset, at),
        None => {
            floor.insert(k.clone(), (offset, at));
        }
    }
}

#[cfg(test)]
mod tests;
