//! End-to-end runs against the in-process `noop` target: the whole pipeline (generator,
//! clients, recorder, checkers, store, report) without root or a cluster.

mod common;
use common::*;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn run_noop(store: &Path, workload: &str, extra: &[&str]) -> Output {
    distest()
        .args([
            "run",
            "--target",
            "noop",
            "--workload",
            workload,
            "--time-limit",
            "1.5",
        ])
        .args([
            "--concurrency",
            "4",
            "--seed",
            "42",
            "--recovery-time",
            "0.2",
            "--store",
        ])
        .arg(store)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn noop_runs_are_valid_for_every_workload_and_fill_the_run_directory() {
    let store = temp_store("noop-all");
    for workload in ["register", "list-append", "rw-register", "set"] {
        let out = run_noop(&store, workload, &[]);
        assert_eq!(out.status.code(), Some(0), "{workload}: {}", text(&out));
        let run = latest_run(&store);
        assert!(run.starts_with(
            store
                .canonicalize()
                .unwrap()
                .join(format!("noop-{workload}-none"))
        ));
        for file in [
            "test.json",
            "history.jsonl",
            "results.json",
            "distest.log",
            "index.html",
        ] {
            assert!(
                run.join(file).is_file(),
                "{workload}: {file} missing in {}",
                run.display()
            );
        }
        let test: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
        assert_eq!(test["seed"], 42);
        assert_eq!(test["workload"], workload);
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(results["valid"], true, "{workload}: {results}");
        assert!(
            results["checkers"]["stats"]["evidence"]["ok"]
                .as_u64()
                .unwrap()
                > 10
        );
    }
    // The store lists all four runs with their verdicts.
    let ls = distest()
        .args(["ls", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert_eq!(
        listing.lines().filter(|l| l.starts_with("valid")).count(),
        4,
        "{listing}"
    );
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn a_recorded_run_can_be_rechecked_from_its_directory() {
    let store = temp_store("noop-recheck");
    let out = run_noop(&store, "list-append", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = latest_run(&store);
    let check = distest()
        .arg("check")
        .arg(&run)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let doc: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(doc["checkers"].get("list-append").is_some(), "{doc}");
    // Elle checkers alone stream the transactions from the file: same verdict.
    let check = distest()
        .arg("check")
        .arg(run.join("history.jsonl"))
        .args([
            "--checker",
            "list-append",
            "--consistency-model",
            "serializable",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let streamed: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        streamed["checkers"]["list-append"]["valid"],
        doc["checkers"]["list-append"]["valid"]
    );
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn bad_options_exit_3_with_one_sentence() {
    let store = temp_store("noop-bad");
    let out = distest()
        .args(["run", "--target", "nosuchdb", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("valid targets are") && err.contains("kv"),
        "{err}"
    );
    let out = distest()
        .args(["run", "--target", "etcd", "--workload", "set", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not support workload"));
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn sigint_mid_run_still_checks_and_reports_what_was_recorded() {
    let store = temp_store("noop-sigint");
    let child = distest()
        .args([
            "run",
            "--target",
            "noop",
            "--workload",
            "register",
            "--time-limit",
            "60",
        ])
        .args([
            "--concurrency",
            "2",
            "--rate",
            "200",
            "--seed",
            "7",
            "--store",
        ])
        .arg(&store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the run stopped promptly"
    );
    // The test did not run its course: unknown (2), not a pass.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let run = latest_run(&store);
    let results = std::fs::read_to_string(run.join("results.json")).unwrap();
    assert!(results.contains("\"interrupted\": true"), "{results}");
    assert!(run.join("index.html").is_file());
    let log = std::fs::read_to_string(run.join("distest.log")).unwrap();
    assert!(log.contains("interrupted"), "{log}");
    std::fs::remove_dir_all(&store).unwrap();
}
