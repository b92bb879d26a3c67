//! Replay: the same seed gives the same client ops (with one client, whose ops are
//! drawn in order) and the same fault schedule, on the in-process noop target.

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;

/// The history of a noop run with `seed`: one client, every fault composed, one fault
/// step every 0.1 s on average.
fn noop_history(store: &Path, seed: &str) -> Vec<Value> {
    let out = distest()
        .args(["run", "--target", "noop", "--workload", "list-append"])
        .args(["--concurrency", "1", "--rate", "300", "--time-limit", "2"])
        .args([
            "--nemesis",
            "all",
            "--nemesis-interval",
            "0.1",
            "--recovery-time",
            "0",
        ])
        .args(["--seed", seed, "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    history(store)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `(process, f, value)` of every client invocation.
fn client_invocations(history: &[Value]) -> Vec<(Value, Value, Value)> {
    history
        .iter()
        .filter(|op| op["type"] == "invoke" && op["process"] != "nemesis")
        .map(|op| (op["process"].clone(), op["f"].clone(), op["value"].clone()))
        .collect()
}

/// `(f, value)` of every fault op invoked. The nemesis performs one op at a time, so its
/// ops alternate invocation, completion: the invocations are every other one.
fn fault_steps(history: &[Value]) -> Vec<(Value, Value)> {
    history
        .iter()
        .filter(|op| op["process"] == "nemesis")
        .step_by(2)
        .map(|op| (op["f"].clone(), op["value"].clone()))
        .collect()
}

/// The shorter sequence is a prefix of the longer: runs end on the clock, so one may
/// have a few more ops than the other, never different ones.
fn same_prefix<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T], what: &str, at_least: usize) {
    let n = a.len().min(b.len());
    assert!(n >= at_least, "{what}: only {n} to compare");
    assert_eq!(a[..n], b[..n], "{what} differ");
}

#[test]
fn the_same_seed_replays_the_client_ops_and_the_fault_schedule() {
    let store = TempDir::new("replay");
    let a = noop_history(&store.0.join("a"), "11");
    let b = noop_history(&store.0.join("b"), "11");
    let c = noop_history(&store.0.join("c"), "12");
    same_prefix(
        &client_invocations(&a),
        &client_invocations(&b),
        "client ops",
        100,
    );
    same_prefix(&fault_steps(&a), &fault_steps(&b), "fault schedules", 6);
    // Not vacuous: another seed draws other ops and another schedule.
    let n = client_invocations(&a)
        .len()
        .min(client_invocations(&c).len());
    assert_ne!(client_invocations(&a)[..n], client_invocations(&c)[..n]);
    let n = fault_steps(&a).len().min(fault_steps(&c).len());
    assert_ne!(fault_steps(&a)[..n], fault_steps(&c)[..n]);
}
