//! Property tests: histories produced by executing transactions serially against an
//! in-memory store, each at an instant between its invocation and completion, are
//! strictly serializable by construction, so the checkers must never flag them; and
//! corrupting one committed read of such a history must be caught.

mod elle_support;

use distest_checkers::elle::{ListAppend, RwRegister};
use distest_checkers::{CheckContext, Checker, History, Op, OpType, Process, Validity};
use elle_support::gen::{history_ops, Params, Workload};
use proptest::prelude::*;
use std::collections::HashMap;

fn checker(w: Workload) -> Box<dyn Checker> {
    match w {
        Workload::ListAppend => Box::new(ListAppend::new(None).unwrap()),
        Workload::RwRegister => Box::new(RwRegister::new(None).unwrap()),
    }
}

fn params(w: Workload, seed: u64, workers: usize, keys: u64, txns: usize) -> Params {
    Params {
        workers,
        active_keys: keys,
        txns,
        ..Params::small(w, seed)
    }
}

/// Never flagged: valid, except that a history in which no dependency could be inferred
/// (tiny generated cases: nothing committed, or one lone transaction) proves nothing
/// and is unknown, as in Elle (`empty-transaction-graph`).
fn assert_valid(w: Workload, ops: Vec<Op>) {
    let h = History::new(ops).unwrap();
    let v = checker(w).check(&h, &CheckContext::default());
    let expected = if v.evidence["stats"]["edges"] == 0 {
        assert_eq!(
            v.evidence["unknown"],
            serde_json::json!(["empty-transaction-graph"])
        );
        Validity::Unknown
    } else {
        Validity::Valid
    };
    assert_eq!(v.valid, expected, "{}\n{}", v.summary, v.explanation);
    assert!(v.anomalies.is_empty(), "{:?}", v.anomalies);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn serial_list_append_histories_are_strict_serializable(
        seed in any::<u64>(), workers in 1usize..6, keys in 1u64..5, txns in 1usize..150,
    ) {
        assert_valid(Workload::ListAppend, history_ops(&params(Workload::ListAppend, seed, workers, keys, txns)));
    }

    #[test]
    fn serial_rw_register_histories_are_strict_serializable(
        seed in any::<u64>(), workers in 1usize..6, keys in 1u64..5, txns in 1usize..150,
    ) {
        assert_valid(Workload::RwRegister, history_ops(&params(Workload::RwRegister, seed, workers, keys, txns)));
    }
}

/// Makes one committed read stale: cuts it just before an element whose appender
/// committed before the reading transaction was even invoked, while a longer read of the
/// key still shows that element. Under strict serializability that is always an anomaly.
fn make_one_read_stale(ops: &mut [Op]) -> bool {
    let mut invoke_time_of_process: HashMap<u64, u64> = HashMap::new();
    let mut invoke_time = vec![0u64; ops.len()];
    // (key, element) -> completion time of its committed appender
    let mut appended_at: HashMap<(u64, u64), u64> = HashMap::new();
    let mut longest: HashMap<u64, usize> = HashMap::new();
    for (pos, op) in ops.iter().enumerate() {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            invoke_time_of_process.insert(p, op.time);
            continue;
        }
        invoke_time[pos] = invoke_time_of_process[&p];
        if op.kind != OpType::Ok {
            continue;
        }
        for m in op.value.as_array().unwrap() {
            let k = m[1].as_u64().unwrap();
            match m[2].as_array() {
                Some(list) => {
                    let l = longest.entry(k).or_default();
                    *l = (*l).max(list.len());
                }
                None => {
                    appended_at.insert((k, m[2].as_u64().unwrap()), op.time);
                }
            }
        }
    }
    for pos in 0..ops.len() {
        if ops[pos].kind != OpType::Ok {
            continue;
        }
        let invoked = invoke_time[pos];
        let mops = ops[pos].value.as_array_mut().unwrap();
        for m in mops.iter_mut() {
            let k = m[1].as_u64().unwrap();
            let Some(list) = m[2].as_array_mut() else {
                continue;
            };
            let stale = list.iter().position(|e| {
                appended_at
                    .get(&(k, e.as_u64().unwrap()))
                    .is_some_and(|&t| t < invoked)
            });
            if let Some(cut) = stale {
                if longest[&k] > list.len() {
                    list.truncate(cut);
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn making_a_read_stale_in_a_valid_history_is_always_caught() {
    let mut caught = 0;
    for seed in 0..60u64 {
        let mut ops = history_ops(&params(Workload::ListAppend, seed, 3, 2, 80));
        if !make_one_read_stale(&mut ops) {
            continue;
        }
        let h = History::new(ops).unwrap();
        let v = checker(Workload::ListAppend).check(&h, &CheckContext::default());
        assert_eq!(v.valid, Validity::Invalid, "seed {seed}: {}", v.summary);
        caught += 1;
    }
    assert!(caught > 20, "only {caught} histories could be corrupted");
}

#[test]
fn info_and_unfinished_transactions_never_cause_false_alarms() {
    for seed in 0..20u64 {
        let p = Params {
            info_pct: 60,
            fail_pct: 20,
            ..params(Workload::ListAppend, seed, 5, 2, 100)
        };
        let mut ops = history_ops(&p);
        // Cut the history mid-flight: trailing invocations lose their completions.
        let cut = ops.len() * 9 / 10;
        ops.truncate(cut);
        assert_valid(Workload::ListAppend, ops);
        let p = Params {
            workload: Workload::RwRegister,
            ..p
        };
        assert_valid(Workload::RwRegister, history_ops(&p));
    }
}

#[test]
fn larger_concurrent_histories_are_strict_serializable() {
    for seed in 0..3u64 {
        for w in [Workload::ListAppend, Workload::RwRegister] {
            let p = Params {
                workers: 8,
                txns: 3_000,
                active_keys: 12,
                max_writes_per_key: 24,
                ..Params::small(w, seed)
            };
            assert_valid(w, history_ops(&p));
        }
    }
}

/// Makes one committed register read return nil although the value's writer committed
/// before the reader was invoked: a stale read strict serializability forbids.
fn make_one_register_read_nil(ops: &mut [Op]) -> bool {
    let mut invoked_at: HashMap<u64, u64> = HashMap::new();
    let mut written_at: HashMap<(u64, u64), u64> = HashMap::new();
    for op in ops.iter_mut() {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            invoked_at.insert(p, op.time);
            continue;
        }
        if op.kind != OpType::Ok {
            continue;
        }
        let invoked = invoked_at[&p];
        for m in op.value.as_array_mut().unwrap() {
            let k = m[1].as_u64().unwrap();
            if m[0] == "w" {
                written_at.insert((k, m[2].as_u64().unwrap()), op.time);
            } else if let Some(v) = m[2].as_u64() {
                if written_at.get(&(k, v)).is_some_and(|&t| t < invoked) {
                    m[2] = serde_json::Value::Null;
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn making_a_register_read_stale_is_always_caught() {
    let mut caught = 0;
    for seed in 0..40u64 {
        let mut ops = history_ops(&params(Workload::RwRegister, seed, 3, 2, 80));
        if !make_one_register_read_nil(&mut ops) {
            continue;
        }
        let h = History::new(ops).unwrap();
        let v = checker(Workload::RwRegister).check(&h, &CheckContext::default());
        assert_eq!(v.valid, Validity::Invalid, "seed {seed}: {}", v.summary);
        caught += 1;
    }
    assert!(caught > 20, "only {caught} histories could be corrupted");
}
