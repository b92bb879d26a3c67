//! Online checking in a real run (network namespaces, root only): raft-kv with its
//! `stale-read` bug under partitions. The first anomaly is reported while the run is
//! still going, `--stop-on-anomaly` ends the run there (healed, checked, reported), and
//! the run's verdict is the offline check of its history. Cluster `ona`, 10.77.242.0/24.

mod common;
use common::*;

use distest::nodes::local;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ID: &str = "ona";
const SUBNET: u8 = 242;

/// Tears the cluster down and removes its directory when the test ends, also when it
/// fails or panics (a run tears down its own cluster; this is for a run that crashed).
struct Cleanup {
    base: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = local::down(ID, &self.base);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

#[test]
fn a_stale_read_on_raft_kv_is_reported_while_the_run_goes_and_stop_on_anomaly_ends_it() {
    require_root!();
    let _cleanup = Cleanup {
        base: PathBuf::from(format!("/tmp/dt-test-nodes-{ID}")),
    };
    let store = TempDir::new("online-kv-stale");
    let time_limit_s = 300.0;
    let started = Instant::now();
    let out = run_on_cluster(&store.0, ID, SUBNET)
        .args([
            "--target",
            "kv",
            "--nemesis",
            "partition",
            "--bug",
            "stale-read",
        ])
        .args([
            "--time-limit",
            "5m",
            "--nemesis-interval",
            "3",
            "--seed",
            "2",
        ])
        .arg("--stop-on-anomaly")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        took < Duration::from_secs_f64(time_limit_s - 60.0),
        "the run went on for {took:?}: --stop-on-anomaly did not end it"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("first anomaly: "), "not printed: {stderr}");
    let doc = results(&store.0);
    let first = &doc["first_anomaly"];
    assert_eq!(first["checker"], "linearizable", "{doc}");
    let (time, reported) = (
        first["time"].as_u64().unwrap(),
        first["reported_time"].as_u64().unwrap(),
    );
    assert!(reported >= time);
    assert!(
        reported - time < 10_000_000_000,
        "reported {} s after the op",
        (reported - time) / 1_000_000_000
    );
    let run = latest_run(&store.0);
    let log = std::fs::read_to_string(run.join("distest.log")).unwrap();
    assert!(
        log.contains("--stop-on-anomaly: ending the main phase"),
        "{log}"
    );
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    // Every partition started was healed (the anomaly may come before the first one).
    assert_eq!(
        history.matches("\"start-partition\"").count(),
        history.matches("\"stop-partition\"").count(),
        "the nemesis healed"
    );
    assert!(run.join("index.html").is_file());
    // The verdict recorded is the offline check's of the same history.
    let check = distest()
        .arg("check")
        .arg(&run)
        .arg("--json")
        .output()
        .unwrap();
    let offline: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(doc["checkers"], offline["checkers"]);
    assert_cluster_gone(ID);
}
