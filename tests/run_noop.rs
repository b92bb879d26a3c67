//! End-to-end runs against the in-process `noop` target: the whole pipeline (generator,
//! clients, recorder, checkers, store, report) without root or a cluster.

mod common;
use common::*;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn run_noop(store: &Path, workload: &str, extra: &[&str]) -> Output {
    run_noop_for(store, workload, "1.5", "4", extra)
}

/// [`run_noop`] for `seconds` with `concurrency` clients.
fn run_noop_for(
    store: &Path,
    workload: &str,
    seconds: &str,
    concurrency: &str,
    extra: &[&str],
) -> Output {
    distest()
        .args([
            "run",
            "--target",
            "noop",
            "--workload",
            workload,
            "--time-limit",
            seconds,
        ])
        .args([
            "--concurrency",
            concurrency,
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

/// The `checkers` part of a results document.
fn checkers_of(doc: &serde_json::Value) -> serde_json::Value {
    doc["checkers"].clone()
}

/// `distest check RUN --json`: the offline check of the run's history.jsonl.
fn offline_check(run: &Path) -> serde_json::Value {
    let out = distest()
        .arg("check")
        .arg(run)
        .arg("--json")
        .output()
        .unwrap();
    assert!(!out.stdout.is_empty(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_online_verdict_is_the_offline_check_of_the_recorded_history_for_every_workload() {
    let store = temp_store("noop-online-offline");
    for workload in ["register", "list-append", "rw-register", "set"] {
        let out = run_noop(&store, workload, &[]);
        assert_eq!(out.status.code(), Some(0), "{workload}: {}", text(&out));
        let run = latest_run(&store);
        let log = std::fs::read_to_string(run.join("distest.log")).unwrap();
        assert!(
            log.contains("online as they were recorded"),
            "{workload}: {log}"
        );
        let online = results(&store);
        // `distest check` rewrites results.json: read it first.
        let offline = offline_check(&run);
        assert_eq!(checkers_of(&online), checkers_of(&offline), "{workload}");
        assert_eq!(online["valid"], offline["valid"], "{workload}");
    }
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn a_stale_read_is_reported_while_the_run_goes_and_stop_on_anomaly_ends_it_early() {
    let store = temp_store("noop-first-anomaly");
    // Without --stop-on-anomaly the run goes its full length; the anomaly is reported
    // long before the end.
    let started = std::time::Instant::now();
    let out = run_noop_for(&store, "register", "8", "8", &["--bug", "stale-read"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(started.elapsed() >= Duration::from_secs(8));
    let doc = results(&store);
    let first = &doc["first_anomaly"];
    assert_eq!(first["checker"], "linearizable", "{doc}");
    let (time, reported) = (
        first["time"].as_u64().unwrap(),
        first["reported_time"].as_u64().unwrap(),
    );
    assert!(reported >= time);
    assert!(
        reported - time < 5_000_000_000,
        "reported {} ms after its op",
        (reported - time) / 1_000_000
    );
    // Reported while the run went on: ops were recorded after the report.
    let last_time = history(&store)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|op| op["time"].as_u64())
        .max()
        .unwrap();
    assert!(
        reported < last_time,
        "reported at {reported} ns, the last op at {last_time} ns"
    );
    assert!(first["text"].as_str().unwrap().contains("not linearizable"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("first anomaly: "), "printed: {stderr}");
    let offline = offline_check(&latest_run(&store));
    assert_eq!(checkers_of(&doc), checkers_of(&offline));
    // The anomaly's op is the failing op of the offline counterexample's key, or another
    // key's: either way the offline check is invalid too.
    assert_eq!(offline["valid"], false);

    // With it, the run ends at the first anomaly, healed, checked and reported as usual.
    let started = std::time::Instant::now();
    let out = run_noop_for(
        &store,
        "register",
        "120",
        "8",
        &["--bug", "stale-read", "--stop-on-anomaly"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "took {:?}",
        started.elapsed()
    );
    let run = latest_run(&store);
    let log = std::fs::read_to_string(run.join("distest.log")).unwrap();
    assert!(
        log.contains("--stop-on-anomaly: ending the main phase"),
        "{log}"
    );
    let doc = results(&store);
    assert!(doc["first_anomaly"]["index"].is_u64(), "{doc}");
    assert!(run.join("index.html").is_file());
    let offline = offline_check(&run);
    assert_eq!(checkers_of(&doc), checkers_of(&offline));
    std::fs::remove_dir_all(&store).unwrap();
}
