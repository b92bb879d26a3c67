//! Table-driven proof of the Elle checkers: one minimal hand-built history per anomaly,
//! each checked against every consistency model with the verdict that model must give.

mod elle_support;

use distest_checkers::elle::{ListAppend, RwRegister, CONSISTENCY_MODELS};
use distest_checkers::{CheckContext, Checker, History, Validity};
use elle_support::H;
use serde_json::json;

// Model abbreviations for the expected-verdict table.
const RU: &str = "read-uncommitted";
const RC: &str = "read-committed";
const RR: &str = "repeatable-read";
const SI: &str = "snapshot-isolation";
const SER: &str = "serializable";
const SS: &str = "strict-serializable";
const SSRU: &str = "strong-session-read-uncommitted";
const SSRC: &str = "strong-session-read-committed";
const SSSI: &str = "strong-session-snapshot-isolation";
const SSSER: &str = "strong-session-serializable";
const SRU: &str = "strong-read-uncommitted";
const SRC: &str = "strong-read-committed";
const SSI: &str = "strong-snapshot-isolation";

/// Every model: what read-uncommitted violations rule out.
const ALL: &[&str] = &[
    RU, RC, RR, SI, SER, SS, SSRU, SSRC, SSSI, SSSER, SRU, SRC, SSI,
];
/// Models that proscribe G1 (read committed and everything stronger).
const G1: &[&str] = &[RC, RR, SI, SER, SS, SSRC, SSSI, SSSER, SRC, SSI];
/// Models that proscribe G-single / G-nonadjacent / lost update.
const GSINGLE: &[&str] = &[RR, SI, SER, SS, SSSI, SSSER, SSI];
/// Models that proscribe G2-item but allow G-single-free write skew (not SI).
const G2ITEM: &[&str] = &[RR, SER, SS, SSSER];
/// Snapshot isolation and stronger (internal inconsistency).
const SI_UP: &[&str] = &[SI, SER, SS, SSSI, SSSER, SSI];

#[derive(Clone, Copy)]
enum Kind {
    List,
    Register,
}

struct Case {
    name: &'static str,
    kind: Kind,
    history: History,
    /// The anomaly types the checker must report, exactly.
    anomalies: &'static [&'static str],
    /// The models under which the verdict must be invalid; valid under all others.
    invalid_under: &'static [&'static str],
}

fn case(
    name: &'static str,
    kind: Kind,
    h: &H,
    anomalies: &'static [&'static str],
    invalid_under: &'static [&'static str],
) -> Case {
    Case {
        name,
        kind,
        history: h.history(),
        anomalies,
        invalid_under,
    }
}

fn list_append_cases() -> Vec<Case> {
    use Kind::List;
    let mut v = Vec::new();
    // Two writers order their appends differently on two keys.
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .invoke(1, json!([["append", "x", 2], ["append", "y", 2]]))
        .ok(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .ok(1, json!([["append", "x", 2], ["append", "y", 2]]))
        .txn(2, json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]]));
    v.push(case("G0", List, &h, &["G0"], ALL));
    let mut h = H::new();
    h.invoke(0, json!([["append", 1, 1]]))
        .fail(0, json!([["append", 1, 1]]))
        .txn(1, json!([["r", 1, [1]]]));
    v.push(case("G1a", List, &h, &["G1a"], G1));
    let mut h = H::new();
    h.txn(0, json!([["append", 1, 1], ["append", 1, 2]]))
        .txn(1, json!([["r", 1, [1]]]))
        .txn(2, json!([["r", 1, [1, 2]]]));
    v.push(case("G1b", List, &h, &["G1b"], G1));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1], ["r", "y", [1]]]))
        .invoke(1, json!([["append", "y", 1], ["r", "x", [1]]]))
        .ok(0, json!([["append", "x", 1], ["r", "y", [1]]]))
        .ok(1, json!([["append", "y", 1], ["r", "x", [1]]]));
    v.push(case("G1c", List, &h, &["G1c"], G1));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .invoke(1, json!([["r", "x", []], ["r", "y", [1]]]))
        .ok(0, json!([["append", "x", 1], ["append", "y", 1]]))
        .ok(1, json!([["r", "x", []], ["r", "y", [1]]]))
        .txn(2, json!([["r", "x", [1]]]));
    v.push(case("G-single", List, &h, &["G-single"], GSINGLE));
    // T1 -rw-> T2 -wr-> T3 -rw-> T4 -wr-> T1
    let t1 = json!([["r", "x", []], ["r", "w", [1]]]);
    let t2 = json!([["append", "x", 1], ["append", "y", 1]]);
    let t3 = json!([["r", "y", [1]], ["r", "z", []]]);
    let t4 = json!([["append", "z", 1], ["append", "w", 1]]);
    let mut h = H::new();
    h.invoke(1, t1.clone())
        .invoke(2, t2.clone())
        .invoke(3, t3.clone())
        .invoke(4, t4.clone())
        .ok(1, t1)
        .ok(2, t2)
        .ok(3, t3)
        .ok(4, t4)
        .txn(5, json!([["r", "x", [1]], ["r", "z", [1]]]));
    v.push(case("G-nonadjacent", List, &h, &["G-nonadjacent"], GSINGLE));
    let t1 = json!([["r", "x", []], ["r", "y", []], ["append", "x", 1]]);
    let t2 = json!([["r", "x", []], ["r", "y", []], ["append", "y", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2)
        .txn(2, json!([["r", "x", [1]], ["r", "y", [1]]]));
    v.push(case("G2-item (write skew)", List, &h, &["G2-item"], G2ITEM));
    let t1 = json!([["r", "x", []], ["append", "x", 1]]);
    let t2 = json!([["r", "x", []], ["append", "x", 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "lost-update",
        List,
        &h,
        &["G2-item", "lost-update"],
        GSINGLE,
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["r", "x", []]]));
    v.push(case("internal", List, &h, &["internal"], SI_UP));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1]]))
        .fail(0, json!([["append", "x", 1]]))
        .txn(1, json!([["append", "x", 2]]))
        .txn(2, json!([["r", "x", [1, 2]]]));
    v.push(case("dirty-update", List, &h, &["G1a", "dirty-update"], G1));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [1]], ["append", "x", 1]]));
    v.push(case("future-read", List, &h, &["future-read"], G1));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["r", "x", [1, 1]]]));
    v.push(case(
        "duplicate-elements",
        List,
        &h,
        &["duplicate-elements"],
        ALL,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [9]]]));
    v.push(case("garbage-read", List, &h, &["garbage-read"], ALL));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["append", "x", 2]]))
        .txn(2, json!([["r", "x", [1, 2]]]))
        .txn(3, json!([["r", "x", [2, 1]]]));
    v.push(case(
        "incompatible-order",
        List,
        &h,
        &["incompatible-order"],
        G1,
    ));
    // A stale read: T2 starts after T1 finished yet misses T1's append.
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["r", "x", []]]))
        .txn(2, json!([["r", "x", [1]]]));
    v.push(case(
        "G-single-realtime",
        List,
        &h,
        &["G-single-realtime"],
        &[SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(0, json!([["r", "x", []]]))
        .txn(1, json!([["r", "x", [1]]]));
    v.push(case(
        "G-single-process",
        List,
        &h,
        &["G-single-process"],
        &[SSSI, SSSER, SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", [1]]]))
        .txn(1, json!([["append", "x", 1]]));
    v.push(case(
        "G1c-realtime",
        List,
        &h,
        &["G1c-realtime"],
        &[SRC, SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1]]))
        .txn(1, json!([["append", "x", 2]]))
        .txn(2, json!([["r", "x", [2, 1]]]));
    v.push(case(
        "G0-realtime",
        List,
        &h,
        &["G0-realtime"],
        &[SRU, SRC, SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["append", "x", 1], ["r", "x", [1]]]))
        .txn(
            1,
            json!([["r", "x", [1]], ["append", "x", 2], ["r", "y", []]]),
        )
        .txn(0, json!([["r", "x", [1, 2]]]));
    v.push(case("serial history", List, &h, &[], &[]));
    let mut h = H::new();
    h.invoke(0, json!([["append", "x", 1]]))
        .info(0, json!([["append", "x", 1]]))
        .txn(1, json!([["r", "x", [1]]]));
    v.push(case("info append explains a read", List, &h, &[], &[]));
    v
}

fn rw_register_cases() -> Vec<Case> {
    use Kind::Register;
    let mut v = Vec::new();
    let t1 = json!([["w", "x", 1], ["r", "y", 2], ["w", "y", 3]]);
    let t2 = json!([["r", "x", 1], ["w", "x", 4], ["w", "y", 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case("G0", Register, &h, &["G0"], ALL));
    let mut h = H::new();
    h.invoke(0, json!([["w", 1, 1]]))
        .fail(0, json!([["w", 1, 1]]))
        .txn(1, json!([["r", 1, 1]]));
    v.push(case("G1a", Register, &h, &["G1a"], G1));
    let mut h = H::new();
    h.txn(0, json!([["w", 1, 1], ["w", 1, 2]]))
        .txn(1, json!([["r", 1, 1]]));
    v.push(case("G1b", Register, &h, &["G1b"], G1));
    let t1 = json!([["w", "x", 1], ["r", "y", 1]]);
    let t2 = json!([["w", "y", 1], ["r", "x", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case("G1c", Register, &h, &["G1c"], G1));
    let t1 = json!([["w", "x", 1], ["w", "y", 1]]);
    let t2 = json!([["r", "x", null], ["r", "y", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case("G-single", Register, &h, &["G-single"], GSINGLE));
    let t1 = json!([["r", "x", null], ["r", "y", null], ["w", "x", 1]]);
    let t2 = json!([["r", "x", null], ["r", "y", null], ["w", "y", 1]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "G2-item (write skew)",
        Register,
        &h,
        &["G2-item"],
        G2ITEM,
    ));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1], ["r", "x", null]]));
    v.push(case("internal", Register, &h, &["internal"], SI_UP));
    let t1 = json!([["r", "x", null], ["w", "x", 1]]);
    let t2 = json!([["r", "x", null], ["w", "x", 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    v.push(case(
        "lost-update",
        Register,
        &h,
        &["G2-item", "lost-update"],
        GSINGLE,
    ));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", 1], ["w", "x", 1]]));
    v.push(case("future-read", Register, &h, &["future-read"], G1));
    let mut h = H::new();
    h.txn(0, json!([["r", "x", 7]]));
    v.push(case("garbage-read", Register, &h, &["garbage-read"], ALL));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["r", "x", null]]));
    v.push(case(
        "G-single-realtime",
        Register,
        &h,
        &["G-single-realtime"],
        &[SSI, SS],
    ));
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["r", "x", 1], ["w", "x", 2]]))
        .txn(0, json!([["r", "x", 2], ["r", "y", null]]));
    v.push(case("serial history", Register, &h, &[], &[]));
    v
}

fn run(kind: Kind, model: &str, history: &History) -> distest_checkers::Verdict {
    let ctx = CheckContext::default();
    match kind {
        Kind::List => ListAppend::new(Some(model)).unwrap().check(history, &ctx),
        Kind::Register => RwRegister::new(Some(model)).unwrap().check(history, &ctx),
    }
}

fn check_table(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        for &model in CONSISTENCY_MODELS {
            let v = run(c.kind, model, &c.history);
            let expected = if c.invalid_under.contains(&model) {
                Validity::Invalid
            } else {
                Validity::Valid
            };
            if v.valid != expected {
                failures.push(format!(
                    "{}: under {model} expected {expected}, got {}: {}\n{}",
                    c.name, v.valid, v.summary, v.explanation
                ));
            }
            let mut want: Vec<&str> = c.anomalies.to_vec();
            want.sort_unstable();
            if v.anomalies != want {
                failures.push(format!(
                    "{}: expected anomalies {want:?}, got {:?}\n{}",
                    c.name, v.anomalies, v.explanation
                ));
                break;
            }
            if !c.anomalies.is_empty() {
                for a in c.anomalies {
                    let cases = &v.evidence["anomalies"][a];
                    let listed = cases.as_array().map(Vec::len).unwrap_or(0);
                    if listed == 0 {
                        failures.push(format!("{}: no evidence case for {a}", c.name));
                    }
                }
                if v.explanation.is_empty() {
                    failures.push(format!("{}: empty explanation", c.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_list_append_anomaly_gets_the_right_verdict_under_every_model() {
    check_table(list_append_cases());
}

#[test]
fn every_rw_register_anomaly_gets_the_right_verdict_under_every_model() {
    check_table(rw_register_cases());
}

#[test]
fn g_single_evidence_walks_the_cycle_step_by_step() {
    let cases = list_append_cases();
    let c = cases.iter().find(|c| c.name == "G-single").unwrap();
    let v = run(Kind::List, SS, &c.history);
    let case = &v.evidence["anomalies"]["G-single"][0];
    let cycle = case["cycle"].as_array().unwrap();
    let steps = case["steps"].as_array().unwrap();
    assert_eq!(cycle.len(), 2);
    assert_eq!(steps.len(), 2);
    let types: Vec<&str> = steps.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"rw") && types.contains(&"wr"), "{types:?}");
    for s in steps {
        assert!(s["why"].as_str().unwrap().ends_with(")."), "{s}");
        assert!(!s["key"].is_null(), "{s}");
    }
    assert_eq!(
        v.evidence["not"],
        json!(["repeatable-read", "snapshot-isolation"])
    );
    assert!(
        v.explanation.contains("appended 1 to key \"y\""),
        "{}",
        v.explanation
    );
    assert!(v.explanation.contains("without 1"), "{}", v.explanation);
}

#[test]
fn unknown_consistency_model_lists_the_valid_ones() {
    let err = distest_checkers::build(
        "list-append",
        &distest_checkers::CheckerOptions {
            consistency_model: Some("serialisable".into()),
            ..Default::default()
        },
    )
    .err()
    .expect("a typo is refused");
    let text = err.to_string();
    assert!(
        text.contains("strict-serializable") && text.contains("read-committed"),
        "{text}"
    );
    let default = distest_checkers::build("rw-register", &Default::default()).unwrap();
    assert_eq!(default.name(), "rw-register");
}

#[test]
fn malformed_or_empty_histories_are_unknown_not_a_panic() {
    let mut h = H::new();
    h.txn(0, json!([["append", "x"]]));
    let v = run(Kind::List, SS, &h.history());
    assert_eq!(v.valid, Validity::Unknown);
    assert!(v.summary.contains("3-element"), "{}", v.summary);
    let v = run(Kind::Register, SS, &H::new().history());
    assert_eq!(v.valid, Validity::Unknown);
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["w", "x", 1]]));
    let v = run(Kind::Register, SS, &h.history());
    assert_eq!(v.valid, Validity::Unknown);
    assert!(v.summary.contains("unique"), "{}", v.summary);
}

#[test]
fn explanation_text_reads_as_a_story() {
    let cases = list_append_cases();
    let c = cases.iter().find(|c| c.name == "G-nonadjacent").unwrap();
    let v = run(Kind::List, SS, &c.history);
    assert!(
        v.explanation
            .starts_with("G-nonadjacent: a cycle of 4 transactions, T1 -> T2 -> T3 -> T4 -> T1"),
        "{}",
        v.explanation
    );
    // T1 is the earliest transaction of the cycle, and each step is one numbered sentence.
    assert!(v.explanation.contains("T1 = #4 p1 ok"), "{}", v.explanation);
    for i in 1..=4 {
        assert!(
            v.explanation.contains(&format!("  {i}. T{i} ")),
            "{}",
            v.explanation
        );
    }
    assert!(
        v.summary.contains("repeatable-read, snapshot-isolation"),
        "{}",
        v.summary
    );
}
