//! rw-register's version-order inference options: for each, a history where it changes
//! the verdict (because the assumption adds an order that closes a cycle, or contradicts
//! another order) and one where it must not (a correct history stays valid).

mod elle_support;

use distest_checkers::elle::{ElleOptions, Inference, RwRegister};
use distest_checkers::{CheckContext, Checker, History, Validity, Verdict};
use elle_support::H;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

fn check(h: &History, model: &str, inference: Inference) -> Verdict {
    let options = ElleOptions::from_names("rw-register", &[model.into()], &[], inference).unwrap();
    RwRegister { options }.check(h, &CheckContext::default())
}

fn wfr() -> Inference {
    Inference {
        wfr_keys: true,
        ..Inference::default()
    }
}

fn sequential() -> Inference {
    Inference {
        sequential_keys: true,
        ..Inference::default()
    }
}

fn linearizable() -> Inference {
    Inference {
        linearizable_keys: true,
        ..Inference::default()
    }
}

fn order(pairs: &[(u64, i64)]) -> Inference {
    Inference {
        transaction_order: Some(Arc::new(pairs.iter().copied().collect::<BTreeMap<_, _>>())),
        ..Inference::default()
    }
}

/// A correct history: each transaction reads the latest value and writes the next, one
/// after another on two processes.
fn serial() -> History {
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1], ["w", "y", 1]]))
        .txn(1, json!([["r", "x", 1], ["w", "x", 2]]))
        .txn(0, json!([["r", "x", 2], ["r", "y", 1], ["w", "y", 2]]))
        .txn(1, json!([["r", "y", 2], ["r", "x", 2]]));
    h.history()
}

#[test]
fn no_option_flags_a_correct_history() {
    let everything = Inference {
        sequential_keys: true,
        linearizable_keys: true,
        wfr_keys: true,
        transaction_order: Some(Arc::new(
            [(1, 1), (3, 2), (5, 3), (7, 4)].into_iter().collect(),
        )),
    };
    for inference in [
        Inference::default(),
        wfr(),
        sequential(),
        linearizable(),
        everything,
    ] {
        let v = check(&serial(), "strict-serializable", inference.clone());
        assert_eq!(v.valid, Validity::Valid, "{inference:?}: {}", v.summary);
        let used = v.evidence["inference"].as_array().unwrap().len();
        assert_eq!(
            used,
            1 + inference.names().len(),
            "every source was accepted"
        );
    }
}

#[test]
fn writes_follow_reads_reveals_a_g0() {
    // T1 wrote x = 1 and, after reading y = 2, y = 3; T2 read x = 1 and wrote x = 4, then
    // wrote y = 2. With writes following reads, x: 1 < 4 and y: 2 < 3, so T1 -ww-> T2
    // -ww-> T1. Without it, only the wr cycle (G1c) remains, which read uncommitted
    // allows; serializability implies writes-follow-reads, so there the verdict is
    // invalid either way.
    let t1 = json!([["w", "x", 1], ["r", "y", 2], ["w", "y", 3]]);
    let t2 = json!([["r", "x", 1], ["w", "x", 4], ["w", "y", 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    let h = h.history();
    let v = check(&h, "read-uncommitted", Inference::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G1c"]);
    let v = check(&h, "read-uncommitted", wfr());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    // Each edge is both wr and ww; Elle's rw-register explainer names wr first, so the
    // cycle it shows is G1c, and the ww cycle is proven by read uncommitted's subgraph.
    assert_eq!(v.anomalies, vec!["G1c", "PL-1-cycle-exists"]);
    assert!(v.explanation.contains("ww edges"), "{}", v.explanation);
    for inference in [Inference::default(), wfr()] {
        assert_eq!(
            check(&h, "serializable", inference).valid,
            Validity::Invalid
        );
    }
}

#[test]
fn writes_follow_reads_names_the_g_single_the_exact_search_only_proves() {
    // Elle's case, with the initial value of y written by T0: T1 reads y = 1 and writes
    // y = 2, T2 reads x from T1 yet still y = 1. With wfr, 1 < 2 and T2 -rw-> T1 -wr-> T2
    // is a G-single-item; without it, every order of y's versions closes a cycle.
    let mut h = H::new();
    h.txn(0, json!([["w", "y", 1]]))
        .txn(0, json!([["r", "y", 1], ["w", "x", 1], ["w", "y", 2]]))
        .txn(0, json!([["r", "x", 1], ["r", "y", 1]]));
    let h = h.history();
    let v = check(&h, "serializable", Inference::default());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["PL-2.99-cycle-forced"]);
    let v = check(&h, "serializable", wfr());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G-single-item"]);
}

#[test]
fn sequential_keys_reveal_a_g0() {
    // Elle's case: each process reads back, after both writes, the value the other wrote.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1], ["w", "y", 2]]))
        .txn(1, json!([["w", "x", 2], ["w", "y", 1]]))
        .txn(0, json!([["r", "x", 2]]))
        .txn(1, json!([["r", "y", 2]]));
    let h = h.history();
    let v = check(&h, "read-uncommitted", Inference::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    let v = check(&h, "read-uncommitted", sequential());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G0"]);
    assert!(
        v.explanation.contains("(sequential-keys)"),
        "{}",
        v.explanation
    );
}

#[test]
fn sequential_keys_contradicting_the_initial_state_are_cyclic_versions() {
    // One process sees 1, then nil: under sequential keys nil came after 1.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(0, json!([["r", "x", 1]]))
        .txn(0, json!([["r", "x", null]]));
    let h = h.history();
    let v = check(&h, "read-uncommitted", Inference::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    let v = check(&h, "read-uncommitted", sequential());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["cyclic-versions"]);
    let case = &v.evidence["anomalies"]["cyclic-versions"][0];
    assert_eq!(case["sources"], json!(["initial-state", "sequential-keys"]));
    assert_eq!(case["scc"], json!([1, null]));
    // The contradicting source is left out, as in Elle.
    assert_eq!(v.evidence["inference"], json!(["initial-state"]));
}

#[test]
fn linearizable_keys_order_writes_by_real_time() {
    // x = 1 and x = 2 written one after the other, then read as 1: per-key
    // linearizability says 1 < 2 < (what the read saw) = 1.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["w", "x", 2]]))
        .txn(2, json!([["r", "x", 1]]));
    let h = h.history();
    // Serializable allows it (order T2, T1, T3); with linearizable keys it is cyclic.
    let v = check(&h, "serializable", Inference::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    let v = check(&h, "serializable", linearizable());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["cyclic-versions"]);
    assert_eq!(
        v.evidence["anomalies"]["cyclic-versions"][0]["sources"],
        json!(["initial-state", "linearizable-keys"])
    );
}

#[test]
fn linearizable_keys_name_the_g2_item_the_exact_search_only_proves() {
    // Elle's G2-item case: after the initial writes, T2 and T3 each read the other key's
    // old value and advance theirs, concurrently. Linearizable keys place both writes
    // after the initial values, so each anti-depends on the other; without them, every
    // order of the versions closes a cycle repeatable read forbids.
    let t1 = json!([["w", "x", 1], ["w", "y", 1]]);
    let t2 = json!([["r", "x", 1], ["w", "y", 2]]);
    let t3 = json!([["r", "y", 1], ["w", "x", 2]]);
    let mut h = H::new();
    h.txn(0, t1).invoke(1, t2.clone()).txn(2, t3).ok(1, t2);
    let h = h.history();
    let v = check(&h, "repeatable-read", Inference::default());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["PL-2.99-cycle-forced"]);
    let v = check(&h, "repeatable-read", linearizable());
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G2-item"]);
    // Read committed allows G2-item either way.
    assert_eq!(
        check(&h, "read-committed", linearizable()).valid,
        Validity::Valid
    );
}

#[test]
fn transaction_order_reveals_what_reads_cannot() {
    // Elle's cases. T1 read x = nil and wrote y = 2, T2 wrote x = 3 and y = 4; the
    // database says T2 committed first, so y: 4 < 2 and T1 -rw-> T2 -ww-> T1.
    let mut h = H::new();
    h.txn(0, json!([["r", "x", null], ["w", "y", 2]]))
        .txn(1, json!([["w", "x", 3], ["w", "y", 4]]));
    let h = h.history();
    let v = check(&h, "serializable", Inference::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    let v = check(&h, "serializable", order(&[(1, 2), (3, 1)]));
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G-single-item"]);
    assert!(
        v.explanation.contains("(transaction-order)"),
        "{}",
        v.explanation
    );
    // The order consistent with the history changes nothing.
    let v = check(&h, "serializable", order(&[(1, 1), (3, 2)]));
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);

    // T1 -> T3 -> T4 -> T2 by commit order: G2-item.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1], ["w", "y", 2], ["w", "z", 3]]))
        .txn(1, json!([["r", "x", 1], ["w", "y", 5]]))
        .txn(2, json!([["r", "z", 3], ["w", "x", 4]]))
        .txn(3, json!([["w", "z", 7], ["w", "y", 8]]));
    let h = h.history();
    let v = check(&h, "serializable", Inference::default());
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    let v = check(&h, "serializable", order(&[(1, 1), (3, 4), (5, 2), (7, 3)]));
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G2-item"]);
}

#[test]
fn transaction_order_files_parse_as_json_or_edn() {
    use distest_checkers::elle::versions::parse_transaction_order;
    let want: BTreeMap<u64, i64> = [(12, 1), (15, 2)].into_iter().collect();
    assert_eq!(
        parse_transaction_order(r#"{"12": 1, "15": 2}"#).unwrap(),
        want
    );
    assert_eq!(parse_transaction_order("[[12, 1], [15, 2]]").unwrap(), want);
    assert_eq!(parse_transaction_order("{12 1, 15 2}").unwrap(), want);
    for bad in ["[1, 2]", "{\"x\": 1}", "{12 :a}", "nonsense ]", "{-1 2}"] {
        let err = parse_transaction_order(bad).unwrap_err();
        assert!(err.starts_with("the transaction order"), "{bad}: {err}");
    }
}
