//! Replay: the same seed gives the same client ops (with one client, whose ops are
//! drawn in order) on the in-process noop target, and the same fault schedule on a local
//! kv cluster (root only: faults are refused where they cannot be applied, and the noop
//! target has no network, process or clock to fault).

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;

/// The history of a noop run with `seed`: one client.
fn noop_history(store: &Path, seed: &str) -> Vec<Value> {
    let out = distest()
        .args(["run", "--target", "noop", "--workload", "list-append"])
        .args(["--concurrency", "1", "--rate", "300", "--time-limit", "2"])
        .args(["--recovery-time", "0", "--seed", seed, "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    read_history(store)
}

fn read_history(store: &Path) -> Vec<Value> {
    history(store)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The history of a kv run on a local cluster of three with `seed`: partitions, loss,
/// latency, kills and pauses composed, one fault step every 0.2 s on average.
fn kv_history(store: &Path, seed: &str) -> Vec<Value> {
    let out = run_on_cluster(store, "la7", 171)
        .args(["--target", "kv", "--nodes", "local:3", "--concurrency", "2"])
        .args(["--nemesis", "partition,loss,latency,kill,pause"])
        .args(["--nemesis-interval", "0.2", "--time-limit", "3"])
        .args(["--recovery-time", "0", "--seed", seed])
        .output()
        .unwrap();
    // A fault whose every start failed (pause aimed at the primaries while none was
    // elected, in a 3 s run) makes the run an error, but its history is whole: the
    // schedule drawn is what this test compares.
    let never_applied = String::from_utf8_lossy(&out.stderr).contains("never applied");
    assert!(
        matches!(out.status.code(), Some(0..=2)) || never_applied,
        "the run ended with a verdict: {}",
        text(&out)
    );
    read_history(store)
}

/// `(process, f, value)` of every client invocation.
fn client_invocations(history: &[Value]) -> Vec<(Value, Value, Value)> {
    history
        .iter()
        .filter(|op| op["type"] == "invoke" && op["process"] != "nemesis")
        .map(|op| (op["process"].clone(), op["f"].clone(), op["value"].clone()))
        .collect()
}

/// `(f, value)` of every scheduled fault op invoked. The nemesis performs one op at a
/// time, so its ops alternate invocation, completion: the invocations are every other
/// one. The run ends on the clock and then heals what is active, so the trailing stops
/// depend on where the clock cut the schedule: they are left out.
fn fault_steps(history: &[Value]) -> Vec<(Value, Value)> {
    let mut steps: Vec<(Value, Value)> = history
        .iter()
        .filter(|op| op["process"] == "nemesis")
        .step_by(2)
        .map(|op| (op["f"].clone(), op["value"].clone()))
        .collect();
    let heals = |f: &Value| {
        let f = f.as_str().unwrap_or("");
        f.starts_with("stop") || matches!(f, "start" | "resume" | "reset-clock" | "heal")
    };
    while steps.last().is_some_and(|(f, _)| heals(f)) {
        steps.pop();
    }
    steps
}

/// The shorter sequence is a prefix of the longer: runs end on the clock, so one may
/// have a few more ops than the other, never different ones.
fn same_prefix<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T], what: &str, at_least: usize) {
    let n = a.len().min(b.len());
    assert!(n >= at_least, "{what}: only {n} to compare");
    assert_eq!(a[..n], b[..n], "{what} differ");
}

#[test]
fn the_same_seed_replays_the_client_ops() {
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
    // Not vacuous: another seed draws other ops.
    let n = client_invocations(&a)
        .len()
        .min(client_invocations(&c).len());
    assert_ne!(client_invocations(&a)[..n], client_invocations(&c)[..n]);
}

#[test]
fn the_same_seed_replays_the_fault_schedule() {
    common::require_root!();
    let store = TempDir::new("replay-faults");
    let a = kv_history(&store.0.join("a"), "11");
    let b = kv_history(&store.0.join("b"), "11");
    let c = kv_history(&store.0.join("c"), "12");
    same_prefix(&fault_steps(&a), &fault_steps(&b), "fault schedules", 6);
    // Not vacuous: another seed draws another schedule.
    let n = fault_steps(&a).len().min(fault_steps(&c).len());
    assert_ne!(fault_steps(&a)[..n], fault_steps(&c)[..n]);
    assert_cluster_gone("la7");
    let _ = std::fs::remove_file("/tmp/dt-test-nodes-la7/la7.run.lock");
    let _ = std::fs::remove_dir("/tmp/dt-test-nodes-la7");
}
