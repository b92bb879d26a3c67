//! The page draws the evidence of distest's own checkers (not hand-written evidence):
//! a linearizability counterexample and an Elle cycle found by `linearizable` and
//! `list-append` on small buggy histories.

mod common;

use common::*;
use distest_checkers::{
    build, check_all, CheckContext, CheckerOptions, History, Op, OpType, Process,
};
use serde_json::{json, Value};

fn check(dir: &std::path::Path, ops: Vec<Op>, checker: &str, options: CheckerOptions) -> String {
    write_history(dir, &ops);
    let history = History::new(ops).unwrap();
    let c = build(checker, &options).unwrap();
    let results = check_all(&history, &[c], &CheckContext::default());
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string(&results).unwrap(),
    )
    .unwrap();
    let page = distest_reports::render_run(dir).unwrap();
    std::fs::read_to_string(page).unwrap()
}

fn indexed(mut ops: Vec<Op>) -> Vec<Op> {
    for (i, op) in ops.iter_mut().enumerate() {
        op.index = i as u64;
        op.time = i as u64 * 1_000_000;
    }
    ops
}

#[test]
fn a_stale_read_found_by_the_linearizable_checker_is_drawn_as_a_counterexample() {
    let tmp = TempDir::new("real-lin");
    let w = Op::invoke(Process::Client(0), "write", json!(1));
    let r = Op::invoke(Process::Client(1), "read", Value::Null);
    let mut ops = indexed(vec![
        w.clone(),
        w.complete(OpType::Ok, json!(1)),
        r.clone(),
        // Reads 0 after the write of 1 completed: no order explains it.
        r.complete(OpType::Ok, json!(0)),
    ]);
    // The write went to n1, the stale read to n3 (a follower cut off from the others).
    for (op, node) in ops.iter_mut().zip(["n1", "n1", "n3", "n3"]) {
        op.node = Some(node.to_string());
    }
    let html = check(
        tmp.path(),
        ops,
        "linearizable",
        CheckerOptions {
            model: Some("register".into()),
            ..CheckerOptions::default()
        },
    );
    assert!(
        html.contains("class=\"verdict invalid\""),
        "the checker did not find the stale read"
    );
    assert!(html.contains("Linearizability counterexample"));
    assert!(
        html.contains("It returned <code>0</code>"),
        "observed value not shown"
    );
    assert!(
        html.contains("#2 p1 invoke read null node=n3"),
        "failing op not shown from the history with its node"
    );
    assert!(
        html.contains("p1@n3 read"),
        "the ops involved do not name the node each went to"
    );
    assert!(
        html.contains("class=\"op focus\""),
        "timeline does not outline the failing op"
    );
}

#[test]
fn a_g1c_cycle_found_by_the_list_append_checker_is_drawn_as_a_graph() {
    let tmp = TempDir::new("real-elle");
    // T1 appends to x and reads y's append by T2; T2 appends to y and reads T1's append
    // to x: each read the other's write, a G1c cycle.
    let t1 = Op::invoke(
        Process::Client(0),
        "txn",
        json!([["append", "x", 1], ["r", "y", null]]),
    );
    let t2 = Op::invoke(
        Process::Client(1),
        "txn",
        json!([["append", "y", 1], ["r", "x", null]]),
    );
    let ops = indexed(vec![
        t1.clone(),
        t2.clone(),
        t1.complete(OpType::Ok, json!([["append", "x", 1], ["r", "y", [1]]])),
        t2.complete(OpType::Ok, json!([["append", "y", 1], ["r", "x", [1]]])),
    ]);
    let html = check(
        tmp.path(),
        ops,
        "list-append",
        CheckerOptions {
            consistency_model: Some("serializable".into()),
            ..CheckerOptions::default()
        },
    );
    assert!(
        html.contains("class=\"verdict invalid\""),
        "the checker did not find the cycle"
    );
    assert!(html.contains("G1c"));
    assert!(html.contains("<svg class=\"cycle\""), "no cycle graph");
    assert_eq!(
        html.matches("<g class=\"txn\">").count(),
        2,
        "two transactions in the cycle"
    );
    assert!(
        html.contains(">wr</text>"),
        "edges not labelled with their type"
    );
    assert!(
        html.contains("class=\"members\""),
        "the cycle's transactions are not listed"
    );
}
