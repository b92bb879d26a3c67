//! Beyond Elle: histories whose version orders inference leaves open, yet no order is
//! acceptable. The exact search proves it and says so; where some order is acceptable
//! the verdict stays what inference gives.

mod elle_support;

use distest_checkers::elle::{ElleOptions, Inference, ListAppend, RwRegister};
use distest_checkers::format::{read_history, Format};
use distest_checkers::{CheckContext, Checker, History, Validity, Verdict};
use elle_support::H;
use serde_json::json;

fn register(h: &History, model: &str) -> Verdict {
    let options =
        ElleOptions::from_names("rw-register", &[model.into()], &[], Inference::default()).unwrap();
    RwRegister { options }.check(h, &CheckContext::default())
}

fn list(h: &History, model: &str) -> Verdict {
    let options =
        ElleOptions::from_names("list-append", &[model.into()], &[], Inference::default()).unwrap();
    ListAppend { options }.check(h, &CheckContext::default())
}

#[test]
fn two_writes_then_a_stale_read_have_no_strict_order() {
    // The issue's example: w x1 and w x2 complete one after the other, then r x reads 1.
    // Whichever order x took, strict serializability fails: 1 < 2 makes the read stale
    // (a realtime G-single), 2 < 1 puts T2 before T1 (a realtime G0).
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["w", "x", 2]]))
        .txn(2, json!([["r", "x", 1]]));
    let h = h.history();
    let v = register(&h, "strict-serializable");
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["PL-SS-cycle-forced"]);
    assert!(v.summary.contains("exact search"), "{}", v.summary);
    let case = &v.evidence["anomalies"]["PL-SS-cycle-forced"][0];
    assert!(case["placements"].as_u64().unwrap() >= 2, "{case}");
    assert_eq!(case["keys"][0]["versions"].as_array().unwrap().len(), 2);
    assert!(
        case["why"]
            .as_str()
            .unwrap()
            .contains("beyond what Elle checks"),
        "{case}"
    );
    assert_eq!(v.evidence["exact"]["forced"], json!(1));
    // Serializability allows it: T2, T1, T3.
    let v = register(&h, "serializable");
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    assert!(v.evidence["exact"]["acceptable"].as_u64().unwrap() >= 1);
    assert_eq!(v.evidence["exact"]["forced"], json!(0));
}

#[test]
fn crossed_blind_writes_read_from_both_writers_have_no_serial_order() {
    // T1 and T2 each write x and y; T3 reads x from T1 and y from T2. Every order of x
    // and of y closes a cycle, though no read ever tells the writes apart.
    let t1 = json!([["w", "x", 1], ["w", "y", 1]]);
    let t2 = json!([["w", "x", 2], ["w", "y", 2]]);
    let t3 = json!([["r", "x", 1], ["r", "y", 2]]);
    let mut h = H::new();
    h.invoke(1, t1.clone())
        .invoke(2, t2.clone())
        .invoke(3, t3.clone())
        .ok(1, t1)
        .ok(2, t2)
        .ok(3, t3);
    let h = h.history();
    let v = register(&h, "serializable");
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["PL-2.99-cycle-forced"]);
    assert_eq!(
        v.evidence["not"],
        json!(["repeatable-read"]),
        "{}",
        v.evidence
    );
    // Read committed has no quarrel with it.
    let v = register(&h, "read-committed");
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
}

#[test]
fn open_orders_with_an_acceptable_choice_stay_valid() {
    // Three blind writers of x, read back in an order consistent with real time.
    let mut h = H::new();
    h.txn(0, json!([["w", "x", 1]]))
        .txn(1, json!([["w", "x", 2]]))
        .txn(2, json!([["r", "x", 2], ["w", "y", 1]]))
        .txn(0, json!([["w", "x", 3]]))
        .txn(1, json!([["r", "x", 3], ["r", "y", 1]]));
    let v = register(&h.history(), "strict-serializable");
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    assert!(v.evidence["exact"]["open_keys"].as_u64().unwrap() >= 1);
}

/// Elle's `histories/paper-example.edn` (the example of the Elle paper): invocations
/// carry neither `:process` nor `:f`, and each is directly followed by its completion.
const PAPER_EXAMPLE: &str = "\
{:index 0 :type :invoke  :value [[:append 253 1] [:append 253 3] [:append 253 4] [:append 255 2] [:append 255 3] [:append 255 4] [:append 255 5] [:append 256 1] [:append 256 2]]}
{:index 1 :type :ok      :value [[:append 253 1] [:append 253 3] [:append 253 4] [:append 255 2] [:append 255 3] [:append 255 4] [:append 255 5] [:append 256 1] [:append 256 2]]}
{:index 2 :type :invoke, :value [[:append 255 8] [:r 253 nil]]}
{:index 3 :type :ok,     :value [[:append 255 8] [:r 253 [1 3 4]]]}
{:index 4 :type :invoke, :value [[:append 256 4] [:r 255 nil] [:r 256 nil] [:r 253 nil]]}
{:index 5 :type :ok,     :value [[:append 256 4] [:r 255 [2 3 4 5 8]] [:r 256 [1 2 4]] [:r 253 [1 3 4]]]}
{:index 6 :type :invoke, :value [[:append 250 10] [:r 253 nil] [:r 255 nil] [:append 256 3]]}
{:index 7 :type :ok      :value [[:append 250 10] [:r 253 [1 3 4]] [:r 255 [2 3 4 5]] [:append 256 3]]}
";

#[test]
fn elles_paper_example_is_read_and_admits_no_serial_order() {
    let h = read_history(
        PAPER_EXAMPLE.as_bytes(),
        Some(Format::Edn),
        "paper-example.edn",
    )
    .expect("process-less invocations followed by their completions are read");
    assert_eq!(h.len(), 8);
    // T4 did not see T2's append of 8 to 255 (T4 -rw-> T2), T3 saw it (T2 -wr-> T3), and
    // T4's append of 3 to 256, which no read shows, came after T3's append of 4, which T3
    // read back (T3 -ww-> T4): one anti-dependency, a G-single-item.
    let v = list(&h, "serializable");
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    assert_eq!(v.anomalies, vec!["G-single-item"]);
    let steps = v.evidence["anomalies"]["G-single-item"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(steps, vec!["wr", "ww", "rw"]);
    assert_eq!(list(&h, "snapshot-isolation").valid, Validity::Invalid);
    assert_eq!(list(&h, "read-committed").valid, Validity::Valid);
}

#[test]
fn vector_keys_from_jepsen_edn_are_keys() {
    let text = "\
{:type :invoke, :f :txn, :value [[:append [:anti 1] 1] [:append {:k 2} 1]], :process 0}
{:type :ok, :f :txn, :value [[:append [:anti 1] 1] [:append {:k 2} 1]], :process 0}
{:type :invoke, :f :txn, :value [[:r [:anti 1] nil] [:r {:k 2} nil]], :process 1}
{:type :invoke, :f :txn, :value [[:r [:anti 1] nil] [:r {:k 2} nil]], :process 2}
{:type :ok, :f :txn, :value [[:r [:anti 1] [1]] [:r {:k 2} []]], :process 1}
{:type :ok, :f :txn, :value [[:r [:anti 1] []] [:r {:k 2} [1]]], :process 2}
";
    let h = read_history(text.as_bytes(), Some(Format::Edn), "keys.edn").unwrap();
    let v = list(&h, "serializable");
    assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    // Each reader saw one of T1's appends and missed the other: G-single-item twice.
    assert_eq!(v.anomalies, vec!["G-single-item"]);
    assert!(
        v.explanation.contains("key [\"anti\" 1]") && v.explanation.contains("key {\"k\" 2}"),
        "{}",
        v.explanation
    );
    let step_keys: Vec<&serde_json::Value> = v.evidence["anomalies"]["G-single-item"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["key"])
        .collect();
    assert!(step_keys.contains(&&json!(["anti", 1])), "{step_keys:?}");
}
