//! End-to-end runs of the bundled CRDT store (root only): the correct build converges
//! under partitions, kills and clock faults; planted bugs are caught with evidence that
//! names the replicas and values involved.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};

fn crdt_run(
    store: &Path,
    id: &str,
    subnet: u8,
    workload: &str,
    nemesis: &str,
    bug: Option<&str>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distest"));
    cmd.args([
        "run",
        "--target",
        "crdt",
        "--workload",
        workload,
        "--nemesis",
        nemesis,
    ])
    .args([
        "--nodes",
        "local:3",
        "--cluster",
        id,
        "--subnet",
        &format!("10.77.{subnet}.0/24"),
    ])
    .args(["--base-dir", &format!("/tmp/dt-test-nodes-{id}")])
    // 200 OR-set elements: each is added and removed a few times, not hundreds, so a
    // resurrected element is not hidden by a later legitimate add.
    .args(["--key-count", "50"])
    .args([
        "--time-limit",
        "10",
        "--nemesis-interval",
        "2",
        "--recovery-time",
        "3",
        "--seed",
        "11",
    ])
    .arg("--store")
    .arg(store);
    if let Some(bug) = bug {
        cmd.args(["--bug", bug]);
    }
    cmd.output().unwrap()
}

fn verdict(store: &Path) -> serde_json::Value {
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    r["checkers"]["crdt-convergence"].clone()
}

#[test]
fn crdt_store_converges_and_planted_bugs_are_caught() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root to build network namespaces (run the tests as root)");
        return;
    }
    let store = temp_store("crdt");

    // The correct build converges under partitions and kills, and under clock faults.
    let out = crdt_run(&store, "cra", 200, "or-set", "partition,kill", None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = crdt_run(&store, "cra", 200, "lww-register", "clock,partition", None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Removes that do not merge tombstones: replicas diverge and removed elements come back.
    let out = crdt_run(
        &store,
        "cra",
        200,
        "or-set",
        "partition",
        Some("or-set-no-tombstone-merge"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = verdict(&store);
    let anomalies = v["anomalies"].to_string();
    assert!(
        anomalies.contains("divergence") || anomalies.contains("resurrected"),
        "{v}"
    );
    assert!(
        v["summary"].as_str().unwrap().contains("n"),
        "the evidence names replicas: {v}"
    );

    // Last-writer-wins by raw wall clock: clock skew makes a later write lose.
    let out = crdt_run(
        &store,
        "cra",
        200,
        "lww-register",
        "clock",
        Some("lww-wall-clock"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = verdict(&store);
    let anomalies = v["anomalies"].to_string();
    assert!(
        anomalies.contains("lost") || anomalies.contains("non-monotonic-read"),
        "{v}"
    );
    assert!(v["summary"].as_str().unwrap().contains("write op"), "{v}");

    std::fs::remove_dir_all(&store).unwrap();
    let _ = std::fs::remove_dir_all("/tmp/dt-test-nodes-cra");
}
