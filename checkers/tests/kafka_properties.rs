//! Property tests for the kafka checker: histories of a simulated correct log service
//! (each op takes effect atomically at its completion; offsets sparse; committed offsets
//! kept at their maximum) are never flagged, and one corruption of such a history — a
//! record cut out of a poll, a committed offset listed too low, two messages at one
//! offset — is always caught with the anomaly it makes.

use distest_checkers::kafka::Kafka;
use distest_checkers::{CheckContext, Checker, History, Op, OpType, Process, Validity, Verdict};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

struct Server {
    logs: BTreeMap<String, Vec<(i64, i64)>>,
    committed: BTreeMap<String, i64>,
}

impl Server {
    fn append(&mut self, key: &str, msg: i64, gap: i64) -> i64 {
        let log = self.logs.entry(key.to_string()).or_default();
        let offset = log.last().map_or(0, |(o, _)| o + gap);
        log.push((offset, msg));
        offset
    }

    fn read_from(&self, key: &str, from: i64, limit: usize) -> Vec<(i64, i64)> {
        self.logs
            .get(key)
            .map(|l| {
                l.iter()
                    .filter(|(o, _)| *o >= from)
                    .take(limit)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct Worker {
    process: u64,
    positions: BTreeMap<String, i64>,
    /// The op in flight: its invocation.
    pending: Option<Op>,
}

/// Records as a poll returns them: `[[offset, message], ...]`.
fn records_json(records: &[(i64, i64)]) -> Value {
    json!(records
        .iter()
        .map(|(o, m)| json!([o, m]))
        .collect::<Vec<_>>())
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|k| k.to_string()).collect()
}

/// A history of `steps` steps by `workers` clients over `key_count` keys, ending with a
/// final poll of every key from offset 0.
fn simulate(seed: u64, workers: usize, key_count: usize, steps: usize) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let all = keys(key_count);
    let mut server = Server {
        logs: BTreeMap::new(),
        committed: BTreeMap::new(),
    };
    let mut ops: Vec<Op> = Vec::new();
    let record = |mut op: Op, ops: &mut Vec<Op>| {
        op.index = ops.len() as u64;
        op.time = op.index * 1000;
        ops.push(op.clone());
        op
    };
    let fresh = |process: u64, all: &[String]| Worker {
        process,
        positions: all.iter().map(|k| (k.clone(), 0)).collect(),
        pending: None,
    };
    let mut ws: Vec<Worker> = (0..workers).map(|w| fresh(w as u64, &all)).collect();
    let mut next_msg = 0i64;
    for _ in 0..steps {
        let w = rng.gen_range(0..workers);
        let Some(inv) = ws[w].pending.take() else {
            let key = all[rng.gen_range(0..all.len())].clone();
            let (f, value) = match rng.gen_range(0..20) {
                0..=8 => {
                    next_msg += 1;
                    ("send", json!([["send", key, next_msg]]))
                }
                9..=14 => ("poll", json!([["poll"]])),
                15..=16 => ("commit_offsets", Value::Null),
                17..=18 => ("list_committed_offsets", json!(all)),
                _ => {
                    let chosen: Vec<&String> = all.iter().filter(|_| rng.gen_bool(0.6)).collect();
                    ("assign", json!(chosen))
                }
            };
            let op = Op::invoke(Process::Client(ws[w].process), f, value);
            ws[w].pending = Some(record(op, &mut ops));
            continue;
        };
        let worker = &mut ws[w];
        let crash = inv.f == "send" && rng.gen_bool(0.05);
        let done = match inv.f.as_str() {
            "send" => {
                let (key, msg) = (
                    inv.value[0][1].as_str().unwrap().to_string(),
                    inv.value[0][2].as_i64().unwrap(),
                );
                if crash {
                    if rng.gen_bool(0.5) {
                        server.append(&key, msg, rng.gen_range(1..3));
                    }
                    inv.complete(OpType::Info, inv.value.clone())
                } else {
                    let offset = server.append(&key, msg, rng.gen_range(1..3));
                    inv.complete(OpType::Ok, json!([["send", key, [offset, msg]]]))
                }
            }
            "poll" => {
                let mut out = Map::new();
                for (k, pos) in worker.positions.iter_mut() {
                    let records = server.read_from(k, *pos, rng.gen_range(1..4));
                    if let Some((last, _)) = records.last() {
                        *pos = last + 1;
                        out.insert(k.clone(), records_json(&records));
                    }
                }
                inv.complete(OpType::Ok, json!([["poll", out]]))
            }
            "commit_offsets" => {
                let mut out = Map::new();
                for (k, pos) in &worker.positions {
                    if *pos > 0 {
                        let c = server.committed.entry(k.clone()).or_insert(pos - 1);
                        *c = (*c).max(pos - 1);
                        out.insert(k.clone(), json!(pos - 1));
                    }
                }
                inv.complete(OpType::Ok, Value::Object(out))
            }
            "list_committed_offsets" => inv.complete(OpType::Ok, json!(server.committed)),
            _ => {
                let chosen: Vec<String> = serde_json::from_value(inv.value.clone()).unwrap();
                worker.positions.retain(|k, _| chosen.contains(k));
                for k in &chosen {
                    let start = server.committed.get(k).map_or(0, |c| c + 1);
                    worker.positions.entry(k.clone()).or_insert(start);
                }
                inv.complete(OpType::Ok, inv.value.clone())
            }
        };
        record(done, &mut ops);
        if crash {
            *worker = fresh(worker.process + workers as u64, &all);
        }
    }
    // Ops still in flight end the history unfinished; then one final poll of everything.
    let process = ws.iter().map(|w| w.process).max().unwrap_or(0) + 1_000;
    let inv = record(
        Op::invoke(Process::Client(process), "poll", json!({"final": true})),
        &mut ops,
    );
    let mut out = Map::new();
    for k in &all {
        let records = server.read_from(k, 0, usize::MAX);
        if !records.is_empty() {
            out.insert(k.clone(), records_json(&records));
        }
    }
    record(inv.complete(OpType::Ok, json!([["poll", out]])), &mut ops);
    ops
}

fn check(ops: Vec<Op>) -> Verdict {
    let h = History::new(ops).unwrap();
    Kafka.check(&h, &CheckContext::default())
}

/// The offset an ok send was acknowledged with, by message.
fn acked_offsets(ops: &[Op]) -> BTreeMap<i64, i64> {
    ops.iter()
        .filter(|o| o.f == "send" && o.kind == OpType::Ok)
        .map(|o| {
            (
                o.value[0][2][1].as_i64().unwrap(),
                o.value[0][2][0].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Whether a completed poll returned at least one record.
fn polled_any(op: &Op) -> bool {
    op.value.as_array().into_iter().flatten().any(|mop| {
        mop[1].as_object().is_some_and(|keys| {
            keys.values()
                .any(|r| r.as_array().is_some_and(|r| !r.is_empty()))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_correct_log_service_is_never_flagged(
        seed in any::<u64>(), workers in 1usize..5, key_count in 1usize..4, steps in 1usize..300,
    ) {
        let ops = simulate(seed, workers, key_count, steps);
        let any_ack = ops.iter().any(|o| o.f == "send" && o.kind == OpType::Ok);
        // A send whose outcome is unknown may still show up in a poll: then there is
        // something to check too.
        let any_polled = ops.iter().any(|o| o.f == "poll" && o.kind == OpType::Ok && polled_any(o));
        let v = check(ops);
        prop_assert!(v.anomalies.is_empty(), "{:?}: {}", v.anomalies, v.explanation);
        let expected = if any_ack || any_polled { Validity::Valid } else { Validity::Unknown };
        prop_assert_eq!(v.valid, expected, "{}", v.summary);
    }

    #[test]
    fn a_record_cut_out_of_a_poll_is_an_internal_skip(
        seed in any::<u64>(), workers in 1usize..4, steps in 50usize..300,
    ) {
        let mut ops = simulate(seed, workers, 2, steps);
        let acked = acked_offsets(&ops);
        // A poll with three records of one key whose middle message was acknowledged.
        let target = ops.iter().position(|o| o.f == "poll" && o.kind == OpType::Ok && o.value[0][1]
            .as_object().unwrap().values().any(|r| r.as_array().unwrap().len() >= 3
                && acked.contains_key(&r[1][1].as_i64().unwrap())));
        prop_assume!(target.is_some());
        let target = target.unwrap();
        let map = ops[target].value[0][1].as_object_mut().unwrap();
        let records = map.values_mut().find(|r| r.as_array().unwrap().len() >= 3
            && acked.contains_key(&r[1][1].as_i64().unwrap())).unwrap();
        records.as_array_mut().unwrap().remove(1);
        let v = check(ops);
        prop_assert_eq!(v.valid, Validity::Invalid);
        prop_assert!(v.anomalies.contains(&"int-poll-skip".to_string()), "{:?}", v.anomalies);
    }

    #[test]
    fn a_committed_offset_listed_below_an_acknowledged_commit_is_a_regression(
        seed in any::<u64>(), workers in 1usize..4, steps in 50usize..300,
    ) {
        let mut ops = simulate(seed, workers, 2, steps);
        // The first list invoked after some commit of a positive offset was acknowledged.
        let mut floor: BTreeMap<String, i64> = BTreeMap::new();
        let mut target = None;
        for (i, op) in ops.iter().enumerate() {
            if op.f == "commit_offsets" && op.kind == OpType::Ok {
                for (k, o) in op.value.as_object().unwrap() {
                    let f = floor.entry(k.clone()).or_insert(-1);
                    *f = (*f).max(o.as_i64().unwrap());
                }
            }
            if op.f == "list_committed_offsets" && op.kind == OpType::Invoke {
                let done = (i + 1..ops.len()).find(|&j| ops[j].process == op.process);
                if let (Some((k, f)), Some(done)) = (floor.iter().find(|(_, f)| **f > 0), done) {
                    target = Some((done, k.clone(), *f));
                    break;
                }
            }
        }
        prop_assume!(target.is_some());
        let (done, key, f) = target.unwrap();
        ops[done].value[key.as_str()] = json!(f - 1);
        let v = check(ops);
        prop_assert!(v.anomalies.contains(&"committed-offset-regression".to_string()), "{:?}", v.anomalies);
    }

    #[test]
    fn two_messages_acknowledged_at_one_offset_are_inconsistent(
        seed in any::<u64>(), workers in 1usize..4, steps in 30usize..300,
    ) {
        let mut ops = simulate(seed, workers, 1, steps);
        let sends: Vec<usize> = ops.iter().enumerate()
            .filter(|(_, o)| o.f == "send" && o.kind == OpType::Ok).map(|(i, _)| i).collect();
        prop_assume!(sends.len() >= 2);
        let offset = ops[sends[0]].value[0][2][0].clone();
        ops[sends[1]].value[0][2][0] = offset;
        let v = check(ops);
        prop_assert_eq!(v.valid, Validity::Invalid);
        prop_assert!(v.anomalies.contains(&"inconsistent-offsets".to_string()), "{:?}", v.anomalies);
    }
}
