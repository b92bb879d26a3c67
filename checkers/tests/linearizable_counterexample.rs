//! Counterexamples of the `linearizable` checker: the earliest failing op, the same bad
//! key whatever the thread timing, bounded and readable evidence.

mod linearizable_support;

use distest_checkers::Validity;
use linearizable_support::gen::{simulate, GenConfig};
use linearizable_support::{assert_validity, check, Hist};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::json;

#[test]
fn the_earliest_op_that_cannot_be_placed_is_reported_not_a_later_one() {
    let h = Hist::new()
        .call(0, "write", json!(1), json!(1))
        .call(0, "write", json!(2), json!(2))
        .call(1, "read", json!(null), json!(2))
        .call(1, "read", json!(null), json!(1)) // first bad read: #6
        .call(2, "read", json!(null), json!(5)) // also bad, later
        .build();
    let v = check(&h, "register");
    assert_validity(&v, Validity::Invalid);
    assert_eq!(
        v.evidence["failing_op"]["index"],
        json!(6),
        "{:#}",
        v.evidence
    );
    assert_eq!(v.evidence["minimized"], json!(true));
}

#[test]
fn the_bad_key_used_first_is_reported_on_every_run() {
    // 60 keys checked on several threads, two of them bad: key 50 goes wrong first, but
    // key 10 was used first, and the report follows the order of first use.
    let mut h = Hist::new();
    for round in 0..3 {
        for k in 0..60u64 {
            let p = k % 4;
            let seen = match (k, round) {
                (10, 2) | (50, 1) => json!(999),
                _ => json!(round),
            };
            h = h
                .invoke_key(p, json!(k), "write", json!(round))
                .ok(p, json!(round))
                .invoke_key(p, json!(k), "read", json!(null))
                .ok(p, seen);
        }
    }
    let h = h.build();
    let first = check(&h, "cas-register");
    assert_validity(&first, Validity::Invalid);
    assert_eq!(first.evidence["key"], json!(10), "{}", first.summary);
    for _ in 0..20 {
        let again = check(&h, "cas-register");
        assert_eq!(again, first, "same history, same verdict and evidence");
    }
}

#[test]
fn long_prefix_is_bounded_in_the_evidence_but_its_length_is_exact() {
    let mut h = Hist::new();
    for i in 0..500 {
        h = h.call(i % 3, "write", json!(i), json!(i));
    }
    let h = h.call(7, "read", json!(null), json!(3)).build();
    let v = check(&h, "register");
    assert_validity(&v, Validity::Invalid);
    let prefix = &v.evidence["linearizable_prefix"];
    assert_eq!(prefix["length"], json!(500));
    assert_eq!(prefix["shown_from"], json!(484));
    assert_eq!(prefix["steps"].as_array().unwrap().len(), 16);
    assert_eq!(prefix["steps"][15]["state_after"], json!(499));
    assert_eq!(v.evidence["possible_states"], json!([499]));
    assert!(v.explanation.contains("last 16 shown"), "{}", v.explanation);
}

#[test]
fn window_lists_the_ops_concurrent_with_the_failing_op() {
    let h = Hist::new()
        .call(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .invoke(2, "read", json!(null))
        .invoke(3, "write", json!(3))
        .ok(2, json!(4))
        .ok(1, json!(2))
        .ok(3, json!(3))
        .build();
    let v = check(&h, "register");
    assert_validity(&v, Validity::Invalid);
    let window: Vec<_> = v.evidence["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["index"].as_u64().unwrap())
        .collect();
    assert_eq!(window, vec![0, 2, 3, 4], "{:#}", v.evidence);
    assert_eq!(v.evidence["possible_states"], json!([1, 2, 3]));
}

#[test]
fn many_keys_are_checked_in_parallel_and_a_simulated_store_is_valid() {
    let cfg = GenConfig {
        processes: 8,
        ops: 4_000,
        values: 4,
        keys: 40,
        p_info: 0.05,
        kv: true,
    };
    let ops = simulate(&mut SmallRng::seed_from_u64(7), &cfg);
    let h = distest_checkers::History::new(ops).unwrap();
    let v = check(&h, "kv");
    assert_validity(&v, Validity::Valid);
    assert!(v.summary.contains("40 key(s)"), "{}", v.summary);
}

#[test]
fn a_stale_read_names_the_node_that_served_it() {
    // n1 takes the write; the read that returns the old value went to n3, a follower
    // that (in the run) was cut off: the counterexample must say so.
    let mut ops = Hist::new()
        .call(0, "write", json!(1), json!(1))
        .call(0, "write", json!(2), json!(2))
        .call(1, "read", json!(null), json!(1))
        .build()
        .into_ops();
    for op in &mut ops {
        op.node = Some(if op.process == distest_checkers::Process::Client(1) {
            "n3".to_string()
        } else {
            "n1".to_string()
        });
    }
    let h = distest_checkers::History::new(ops).unwrap();
    let v = check(&h, "register");
    assert_validity(&v, Validity::Invalid);
    assert_eq!(
        v.evidence["failing_op"]["node"],
        json!("n3"),
        "{:#}",
        v.evidence
    );
    let nodes: Vec<_> = v.evidence["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["node"].clone())
        .collect();
    assert!(nodes.contains(&json!("n1")), "{nodes:?}");
    assert!(
        v.explanation
            .contains("The first op that cannot be placed: p1@n3 read"),
        "{}",
        v.explanation
    );
    assert!(v.explanation.contains("p0@n1 write"), "{}", v.explanation);
}
