//! Bad input never panics, limits turn into `unknown` verdicts, and a cancelled check
//! never claims validity it did not establish.

mod elle_support;

use distest_checkers::elle::{ListAppend, RwRegister};
use distest_checkers::{CheckContext, Checker, History, Validity};
use elle_support::H;
use proptest::prelude::*;
use serde_json::{json, Value};

/// A random micro-op: appends/writes get unique values (`fresh`), reads return random,
/// often impossible, values: garbage, duplicates, other keys' elements, wrong orders.
fn mop(list: bool, key: u64, write: bool, fresh: u64, read: Vec<u64>) -> Value {
    match (list, write) {
        (true, true) => json!(["append", key, fresh]),
        (true, false) => json!(["r", key, read]),
        (false, true) => json!(["w", key, fresh]),
        (false, false) => json!(["r", key, read.first()]),
    }
}

fn random_history(list: bool) -> impl Strategy<Value = History> {
    let m = (
        0u64..3,
        any::<bool>(),
        prop::collection::vec(0u64..12, 0..5),
    );
    let txn = (0u64..4, 0u8..4, prop::collection::vec(m, 0..4));
    prop::collection::vec(txn, 0..25).prop_map(move |txns| {
        let mut h = H::new();
        let mut fresh = 0;
        let mut next_pid = 4;
        for (worker, outcome, mops) in txns {
            let value = Value::Array(
                mops.into_iter()
                    .map(|(k, w, r)| {
                        fresh += 1;
                        mop(list, k, w, fresh, r)
                    })
                    .collect(),
            );
            let pid = worker + next_pid * 10;
            match outcome {
                0 => h.invoke(pid, value.clone()).fail(pid, value),
                1 => {
                    next_pid += 1;
                    h.invoke(pid, value.clone()).info(pid, value)
                }
                _ => h.invoke(pid, value.clone()).ok(pid, value),
            };
        }
        h.history()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_list_append_histories_never_panic(h in random_history(true)) {
        let v = ListAppend::new(None).unwrap().check(&h, &CheckContext::default());
        // Whatever the verdict, it is explained when it is not valid.
        if v.valid == Validity::Invalid {
            prop_assert!(!v.explanation.is_empty());
        }
    }

    #[test]
    fn arbitrary_rw_register_histories_never_panic(h in random_history(false)) {
        let v = RwRegister::new(None).unwrap().check(&h, &CheckContext::default());
        if v.valid == Validity::Invalid {
            prop_assert!(!v.explanation.is_empty());
        }
    }
}

#[test]
fn a_cancelled_cycle_search_is_unknown_not_valid() {
    let t1 = json!([["append", "x", 1], ["append", "y", 1]]);
    let t2 = json!([["r", "x", []], ["r", "y", [1]]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2)
        .txn(2, json!([["r", "x", [1]]]));
    let ctx = CheckContext::default();
    ctx.cancel.cancel();
    let v = ListAppend::new(None).unwrap().check(&h.history(), &ctx);
    assert_eq!(v.valid, Validity::Unknown, "{}", v.summary);
    assert!(v.summary.contains("time limit"), "{}", v.summary);
}

#[test]
fn a_cancelled_check_still_reports_anomalies_found_without_search() {
    let mut h = H::new();
    h.invoke(0, json!([["append", 1, 1]]))
        .fail(0, json!([["append", 1, 1]]))
        .txn(1, json!([["r", 1, [1]]]));
    let ctx = CheckContext::default();
    ctx.cancel.cancel();
    let v = ListAppend::new(None).unwrap().check(&h.history(), &ctx);
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomalies, vec!["G1a"]);
}

#[test]
fn too_many_inferred_edges_under_the_memory_limit_is_unknown() {
    // 60 readers of nil and 60 blind writers of one key: 3,600 rw edges.
    let mut h = H::new();
    for i in 0..60u64 {
        h.txn(i, json!([["r", "x", null]]));
    }
    for i in 0..60u64 {
        h.txn(100 + i, json!([["w", "x", i]]));
    }
    let ctx = CheckContext {
        memory_limit_bytes: 40_000,
        ..CheckContext::default()
    };
    let v = RwRegister::new(None).unwrap().check(&h.history(), &ctx);
    assert_eq!(v.valid, Validity::Unknown, "{}", v.summary);
    assert!(v.summary.contains("memory limit"), "{}", v.summary);
    // With the default limit the same history is checked in full: every read of nil
    // completed before any write began, so it is valid.
    let v = RwRegister::new(None)
        .unwrap()
        .check(&h.history(), &CheckContext::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
}

#[test]
fn unknown_model_and_anomaly_names_are_refused_with_the_valid_ones() {
    use distest_checkers::elle::{ElleOptions, Inference};
    let err = ElleOptions::from_names(
        "list-append",
        &["serialisable".into()],
        &[],
        Inference::default(),
    )
    .expect_err("a typo is refused");
    let text = err.to_string();
    assert!(
        text.contains("\"serialisable\"") && text.contains("PL-2.99"),
        "{text}"
    );
    let err = ElleOptions::from_names(
        "list-append",
        &[],
        &["G-singel".into()],
        Inference::default(),
    )
    .expect_err("a typo is refused");
    assert!(err.to_string().contains("G-single-item"), "{err}");
    // Keywords as Elle users write them, comma-separated lists, aliases.
    let o = ElleOptions::from_names(
        "rw-register",
        &[":snapshot-isolation,PL-2".into()],
        &[":G0".into()],
        Inference::default(),
    )
    .unwrap();
    assert_eq!(o.models, vec!["PL-SI", "PL-2"]);
    assert_eq!(o.anomalies, vec!["G0"]);
}

#[test]
fn a_thousand_transaction_ring_is_decided_invalid() {
    let h = History::new(elle_support::ring(1000)).unwrap();
    let start = std::time::Instant::now();
    let v = ListAppend::new(None)
        .unwrap()
        .check(&h, &CheckContext::default());
    // The release build takes well under a second (see the benchmark); a debug build on a
    // loaded machine gets more room.
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G-single-item"]);
    let cycle = v.evidence["anomalies"]["G-single-item"][0]["cycle"]
        .as_array()
        .unwrap();
    assert_eq!(cycle.len(), 1000);
}

#[test]
fn when_the_cycle_search_cannot_run_a_cheaper_proof_still_decides() {
    // The ring again, with too little memory for the breadth-first search's tables: no
    // named cycle can be shown, yet one Tarjan pass per model proves a cycle exists.
    let h = History::new(elle_support::ring(200)).unwrap();
    let ctx = CheckContext {
        memory_limit_bytes: 20_000,
        ..CheckContext::default()
    };
    let v = ListAppend::new(Some("serializable"))
        .unwrap()
        .check(&h, &ctx);
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(
        v.anomalies,
        vec!["PL-2.99-cycle-exists", "PL-SI-cycle-exists"]
    );
    let case = &v.evidence["anomalies"]["PL-SI-cycle-exists"][0];
    assert_eq!(case["scc_size"], json!(200));
    assert_eq!(case["not"], json!("snapshot-isolation"));
    // A model whose cycles no subgraph characterises: the search could not rule
    // G-single out, so consistent view is unknown, with Elle's reason.
    let v = ListAppend::new(Some("consistent-view"))
        .unwrap()
        .check(&h, &ctx);
    assert_eq!(v.valid, Validity::Unknown, "{}", v.summary);
    assert_eq!(v.evidence["unknown"], json!(["cycle-search-timeout"]));
    assert!(v.summary.contains("cycle-search-timeout"), "{}", v.summary);
}

#[test]
fn a_ring_of_anti_dependencies_is_decided_under_every_model() {
    let h = History::new(elle_support::rw_ring(1000)).unwrap();
    let start = std::time::Instant::now();
    let v = ListAppend::new(None)
        .unwrap()
        .check(&h, &CheckContext::default());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G2-item"]);
    assert_eq!(
        v.evidence["anomalies"]["G2-item"][0]["cycle"]
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    // Snapshot isolation allows adjacent rw edges: proven, not guessed.
    let v = ListAppend::new(Some("snapshot-isolation"))
        .unwrap()
        .check(&h, &CheckContext::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
}
