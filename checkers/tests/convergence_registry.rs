//! The convergence checkers as `distest check` reaches them: built by name from the
//! registry, fed histories parsed from distest JSON Lines or Jepsen EDN text.

mod online_support;

use distest_checkers::format::{read_history, Format};
use distest_checkers::{build, CheckerOptions, History, Validity, Verdict};

fn check(name: &str, model: Option<&str>, history: &History) -> Verdict {
    let options = CheckerOptions {
        model: model.map(str::to_string),
        ..CheckerOptions::default()
    };
    let checker = build(name, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checker.name(), name);
    online_support::checked(checker, history)
}

fn edn(text: &str) -> History {
    read_history(text.as_bytes(), Some(Format::Edn), "test.edn").unwrap_or_else(|e| panic!("{e}"))
}

fn jsonl(text: &str) -> History {
    read_history(text.as_bytes(), Some(Format::Jsonl), "test.jsonl")
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_jepsen_set_history_with_a_lost_element_is_invalid() {
    let h = edn(r#"{:type :invoke, :f :add, :value 1, :process 0}
{:type :ok, :f :add, :value 1, :process 0}
{:type :invoke, :f :add, :value 2, :process 1}
{:type :ok, :f :add, :value 2, :process 1}
{:type :invoke, :f :read, :value nil, :process 2}
{:type :ok, :f :read, :value #{1 2}, :process 2}
{:type :invoke, :f :read, :value nil, :process 2}
{:type :ok, :f :read, :value [2], :process 2}
"#);
    let v = check("set", None, &h);
    assert_eq!(v.valid, Validity::Invalid, "{v:?}");
    assert_eq!(v.anomalies, vec!["lost"]);
    assert_eq!(v.evidence["lost"][0]["element"], 1);
}

#[test]
fn a_jepsen_counter_history_within_bounds_is_valid() {
    let h = edn(r#"{:type :invoke, :f :add, :value 1, :process 0}
{:type :invoke, :f :read, :value nil, :process 1}
{:type :ok, :f :add, :value 1, :process 0}
{:type :ok, :f :read, :value 1, :process 1}
{:type :invoke, :f :read, :value nil, :process 1}
{:type :ok, :f :read, :value 1, :process 1}
"#);
    assert_eq!(check("counter", None, &h).valid, Validity::Valid);
}

#[test]
fn jepsen_unique_ids_and_total_queue_histories_are_judged() {
    let ids = edn(r#"{:type :invoke, :f :generate, :value nil, :process 0}
{:type :ok, :f :generate, :value 7, :process 0}
{:type :invoke, :f :generate, :value nil, :process 1}
{:type :ok, :f :generate, :value 7, :process 1}
"#);
    assert_eq!(check("unique-ids", None, &ids).valid, Validity::Invalid);
    let queue = edn(r#"{:type :invoke, :f :enqueue, :value 1, :process 0}
{:type :ok, :f :enqueue, :value 1, :process 0}
{:type :invoke, :f :enqueue, :value 2, :process 0}
{:type :ok, :f :enqueue, :value 2, :process 0}
{:type :invoke, :f :drain, :value nil, :process 1}
{:type :ok, :f :drain, :value [2 1], :process 1}
"#);
    assert_eq!(check("total-queue", None, &queue).valid, Validity::Valid);
}

#[test]
fn crdt_convergence_reads_distest_jsonl_with_final_reads() {
    let text = r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"add","value":3,"node":"n1"}
{"index":1,"time":1,"process":0,"type":"ok","f":"add","value":3,"node":"n1"}
{"index":2,"time":2,"process":1,"type":"invoke","f":"add","value":-1,"node":"n2"}
{"index":3,"time":3,"process":1,"type":"ok","f":"add","value":-1,"node":"n2"}
{"index":4,"time":4,"process":"nemesis","type":"info","f":"stop-partition","value":null}
{"index":5,"time":5,"process":2,"type":"invoke","f":"read","value":{"final":true},"node":"n1"}
{"index":6,"time":6,"process":2,"type":"ok","f":"read","value":2,"node":"n1"}
{"index":7,"time":7,"process":3,"type":"invoke","f":"read","value":{"final":true},"node":"n2"}
{"index":8,"time":8,"process":3,"type":"ok","f":"read","value":3,"node":"n2"}
"#;
    let h = jsonl(text);
    let v = check("crdt-convergence", Some("pn-counter"), &h);
    assert_eq!(v.valid, Validity::Invalid, "{v:?}");
    assert_eq!(v.anomalies, vec!["divergence", "wrong-final-value"]);
    assert_eq!(v.evidence["final_reads"]["n2"]["index"], 8);
    let fixed = text.replace(r#""value":3,"node":"n2"}"#, r#""value":2,"node":"n2"}"#);
    let v = check("crdt-convergence", None, &jsonl(&fixed));
    assert_eq!(v.valid, Validity::Valid, "{v:?}");
    assert_eq!(v.evidence["model"], "pn-counter");
}

#[test]
fn crdt_convergence_refuses_an_unknown_model_by_name() {
    let err = build(
        "crdt-convergence",
        &CheckerOptions {
            model: Some("mv-register".into()),
            ..CheckerOptions::default()
        },
    )
    .err()
    .expect("unknown model is an error");
    let text = err.to_string();
    assert!(
        text.contains("mv-register") && text.contains("lww-register"),
        "{text}"
    );
}
