//! End-to-end runs on real local clusters (network namespaces, root only): the README's
//! main command, planted raft-kv bugs caught with a fixed seed, etcd, and Ctrl-C.
//!
//! Each test has its own cluster id and /24 so they run in parallel; every test asserts
//! that nothing carrying its cluster's prefix is left behind.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `distest run` on cluster `id` in 10.77.<subnet>.0/24 with `args`.
fn run(store: &Path, id: &str, subnet: u8, args: &[&str]) -> Command {
    let mut cmd = run_on_cluster(store, id, subnet);
    cmd.args(args);
    cmd
}

/// Nothing of cluster `id` remains; then its base directory goes too (only the run
/// lock file may remain in it).
fn assert_nothing_left(id: &str) {
    assert_cluster_gone(id);
    let base = format!("/tmp/dt-test-nodes-{id}");
    let _ = std::fs::remove_file(format!("{base}/{id}.run.lock"));
    let _ = std::fs::remove_dir(&base);
}

#[test]
fn readme_main_command_is_valid_on_the_correct_kv_build() {
    common::require_root!();
    let store = temp_store("kv-valid");
    let out = run(
        &store,
        "e2ea",
        150,
        &["--target", "kv", "--nemesis", "partition"],
    )
    .args([
        "--time-limit",
        "12",
        "--nemesis-interval",
        "3",
        "--seed",
        "1",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = results(&store);
    assert_eq!(r["checkers"]["linearizable"]["valid"], true, "{r}");
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(history.contains("\"start-partition\""), "the nemesis ran");
    assert!(history.contains("\"stop-partition\""), "the nemesis healed");
    for node in ["n1", "n5"] {
        assert!(run.join("nodes").join(node).join("raft-kv.log").is_file());
    }
    assert!(run.join("index.html").is_file());
    assert_nothing_left("e2ea");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn stale_read_bug_under_partitions_is_reported_as_a_nonlinearizable_read() {
    common::require_root!();
    let store = temp_store("kv-stale");
    let out = run(
        &store,
        "e2eb",
        151,
        &["--target", "kv", "--nemesis", "partition"],
    )
    .args([
        "--bug",
        "stale-read",
        "--time-limit",
        "15",
        "--nemesis-interval",
        "3",
    ])
    .args(["--seed", "2"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = results(&store);
    let lin = &r["checkers"]["linearizable"];
    assert_eq!(lin["valid"], false, "{r}");
    assert!(
        lin["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "nonlinearizable"),
        "{lin}"
    );
    // The counterexample names the op that cannot be placed: a read that returned a stale value.
    let explanation = lin["explanation"].as_str().unwrap();
    assert!(explanation.contains("read"), "{explanation}");
    assert_nothing_left("e2eb");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn ack_before_commit_bug_under_partitions_loses_acknowledged_writes() {
    common::require_root!();
    let store = temp_store("kv-ack");
    let out = run(
        &store,
        "e2ec",
        152,
        &["--target", "kv", "--nemesis", "partition"],
    )
    .args([
        "--bug",
        "ack-before-commit",
        "--time-limit",
        "15",
        "--nemesis-interval",
        "3",
    ])
    .args(["--seed", "3"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = results(&store);
    assert_eq!(r["checkers"]["linearizable"]["valid"], false, "{r}");
    assert_nothing_left("e2ec");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn etcd_register_run_under_partitions_and_kills_is_valid() {
    common::require_root!();
    if !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipped: etcd is not installed (scripts/setup.sh installs etcd-server)");
        return;
    }
    let store = temp_store("etcd");
    let out = run(
        &store,
        "e2ed",
        153,
        &["--target", "etcd", "--workload", "register"],
    )
    .args([
        "--nemesis",
        "partition,kill",
        "--time-limit",
        "15",
        "--nemesis-interval",
        "3",
    ])
    .args(["--nodes", "local:3", "--seed", "4"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(history.contains("\"nemesis\""), "faults were injected");
    assert_nothing_left("e2ed");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn sigint_mid_run_heals_faults_and_still_reports() {
    common::require_root!();
    let store = temp_store("kv-sigint");
    let child = run(
        &store,
        "e2ee",
        154,
        &["--target", "kv", "--nemesis", "partition"],
    )
    .args([
        "--time-limit",
        "300",
        "--nemesis-interval",
        "1",
        "--nodes",
        "local:3",
        "--seed",
        "5",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until a partition is in force, then interrupt.
    let history = || {
        std::fs::canonicalize(store.join("latest"))
            .ok()
            .and_then(|run| std::fs::read_to_string(run.join("history.jsonl")).ok())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !history().contains("\"start-partition\"") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        history().contains("\"start-partition\""),
        "a partition started within 60 s"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    // Interrupted: unknown (2) unless an anomaly was found, never a pass.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let h = history();
    let last_start = h.rfind("\"start-partition\"").unwrap();
    let last_stop = h
        .rfind("\"stop-partition\"")
        .expect("the partition was healed");
    assert!(
        last_stop > last_start,
        "the heal came after the last partition"
    );
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    assert!(run.join("index.html").is_file(), "the report was written");
    assert!(run.join("results.json").is_file());
    assert_nothing_left("e2ee");
    std::fs::remove_dir_all(&store).unwrap();
}
