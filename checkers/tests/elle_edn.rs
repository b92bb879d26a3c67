//! Histories in Jepsen's EDN form (`[:append 1 2]`, `:type :ok`, `nil`) must give the
//! Elle checkers exactly the verdict the same history gives as distest JSONL.

mod elle_support;

use distest_checkers::elle::{ListAppend, RwRegister};
use distest_checkers::format::{read_history, write_jsonl_line, Format};
use distest_checkers::{CheckContext, Checker, Op, Process, Verdict};
use elle_support::gen::{history_ops, Params, Workload};
use elle_support::H;
use serde_json::{json, Value};

/// EDN text of a JSON value; in micro-ops (`in_mop`) the leading name is a keyword.
fn edn(v: &Value, in_mop: bool) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Array(items) => {
            let is_mop = items.len() == 3 && items[0].is_string() && !in_mop;
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) if is_mop && i == 0 => format!(":{s}"),
                    other => edn(other, is_mop),
                })
                .collect();
            format!("[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// Jepsen's printer: one op map per line, keywords for type and f.
fn to_edn(ops: &[Op]) -> Vec<u8> {
    let mut out = String::new();
    for op in ops {
        let process = match op.process {
            Process::Client(p) => p.to_string(),
            Process::Nemesis => ":nemesis".into(),
        };
        out.push_str(&format!(
            "{{:type :{}, :f :{}, :value {}, :time {}, :process {}, :index {}}}\n",
            op.kind,
            op.f,
            edn(&op.value, false),
            op.time,
            process,
            op.index
        ));
    }
    out.into_bytes()
}

fn to_jsonl(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        write_jsonl_line(op, &mut out);
    }
    out
}

fn check(w: Workload, text: &[u8], format: Format) -> Verdict {
    let h = read_history(text, Some(format), "test").expect("history parses");
    let c: Box<dyn Checker> = match w {
        Workload::ListAppend => Box::new(ListAppend::new(None).unwrap()),
        Workload::RwRegister => Box::new(RwRegister::new(None).unwrap()),
    };
    c.check(&h, &CheckContext::default())
}

fn assert_same(w: Workload, ops: &[Op]) {
    let from_jsonl = check(w, &to_jsonl(ops), Format::Jsonl);
    let from_edn = check(w, &to_edn(ops), Format::Edn);
    assert_eq!(from_edn.valid, from_jsonl.valid, "{}", from_edn.summary);
    assert_eq!(from_edn.anomalies, from_jsonl.anomalies);
    assert_eq!(from_edn.summary, from_jsonl.summary);
    assert_eq!(from_edn.evidence, from_jsonl.evidence);
}

#[test]
fn edn_micro_ops_are_elle_keywords() {
    let op = Op::invoke(
        Process::Client(3),
        "txn",
        json!([["append", 1, 2], ["r", 1, null]]),
    );
    let text = String::from_utf8(to_edn(&[op])).unwrap();
    assert!(text.contains(":value [[:append 1 2] [:r 1 nil]]"), "{text}");
}

#[test]
fn generated_histories_give_the_same_verdict_in_edn_and_jsonl() {
    for seed in 0..6 {
        for w in [Workload::ListAppend, Workload::RwRegister] {
            assert_same(w, &history_ops(&Params::small(w, seed)));
        }
    }
}

#[test]
fn anomalous_histories_give_the_same_verdict_and_evidence_in_edn_and_jsonl() {
    // G-single (list-append) and lost update (rw-register), both concurrent.
    let t1 = json!([["append", 1, 1], ["append", 2, 1]]);
    let t2 = json!([["r", 1, []], ["r", 2, [1]]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2)
        .txn(2, json!([["r", 1, [1]]]));
    let v = check(Workload::ListAppend, &to_edn(&h.ops()), Format::Edn);
    assert_eq!(v.anomalies, vec!["G-single-item"]);
    assert_same(Workload::ListAppend, &h.ops());
    let t1 = json!([["r", 1, null], ["w", 1, 1]]);
    let t2 = json!([["r", 1, null], ["w", 1, 2]]);
    let mut h = H::new();
    h.invoke(0, t1.clone())
        .invoke(1, t2.clone())
        .ok(0, t1)
        .ok(1, t2);
    assert_same(Workload::RwRegister, &h.ops());
}

#[test]
fn streamed_jsonl_gives_the_same_verdict_as_a_history() {
    use distest_checkers::elle::check_txns;
    use distest_checkers::elle::txn::{Shape, Txns};
    for seed in 0..4 {
        let p = Params {
            stale_pct: 20,
            ..Params::small(Workload::ListAppend, seed)
        };
        let ops = history_ops(&p);
        let text = to_jsonl(&ops);
        let whole = check(Workload::ListAppend, &text, Format::Jsonl);
        let txns = Txns::read_jsonl(&text[..], Shape::ListAppend, "test").unwrap();
        let streamed = check_txns(&txns, &Default::default(), &CheckContext::default());
        assert_eq!(streamed, whole);
    }
    let mut ops = history_ops(&Params::small(Workload::ListAppend, 1));
    ops[1].index = 7;
    let err = Txns::read_jsonl(&to_jsonl(&ops)[..], Shape::ListAppend, "h.jsonl")
        .err()
        .unwrap();
    assert!(err.to_string().contains("dense"), "{err}");
}
