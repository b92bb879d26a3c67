//! Every documented raft-kv bug caught end to end by `distest run` with the faults its
//! README names (network namespaces, root only): a fixed seed, exit code 1 and the
//! expected anomaly in `results.json`; then the correct build under the same options and
//! seed, exit code 0. `stale-read` and `ack-before-commit` live in `run_cluster.rs`;
//! `no-fsync` runs under `disk` (lazyfs), the only fault that loses unsynced data.
//! `lease-no-margin` and `commit-old-term` run their schedule files
//! (`examples/schedules/`), and the correct build stays valid under the membership
//! nemesis beside partitions and kills.
//!
//! The seed fixes the op mix and the fault schedule, not thread timing: each seed below
//! was chosen so that its schedule contains the fault shape the bug needs (e.g. a kill of
//! a majority), which makes the verdict hold under load rather than by luck; the schedule
//! files aim their faults at roles (the leader, each new leader) when they run.
//!
//! Each test has its own cluster id and /24 (clusters `bga`..`bgd`, 10.77.156-159.0/24;
//! `fa0`..`fa2`, 10.77.180-182.0/24) so they run in parallel; every test asserts that
//! nothing of its cluster is left.

mod common;
use common::*;

use serde_json::{json, Value};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// One local cluster a test owns: its id and its /24, held exclusively (see `claim`)
/// until dropped; dropping also removes its (by then empty) base directory.
struct Cluster {
    id: &'static str,
    subnet: u8,
    lock_path: PathBuf,
    _lock: File,
}

/// Attempts at taking a cluster's lock file before giving up (each waits for the holder;
/// a retry is needed only when the holder unlinked the file as we opened it).
const MAX_LOCK_ATTEMPTS: usize = 100;

impl Cluster {
    /// Takes cluster `id` for this process, waiting while another test process (another
    /// `cargo test` of this tree) runs on it: two runs sharing a cluster id share
    /// namespaces and data directories and silently corrupt each other's verdicts. The
    /// lock file is unlinked by its holder on drop, so a waiter checks that the file it
    /// locked is still the one at the path.
    fn claim(id: &'static str, subnet: u8) -> Cluster {
        let lock_path = PathBuf::from(format!("/tmp/dt-test-nodes-{id}.lock"));
        for _ in 0..MAX_LOCK_ATTEMPTS {
            let file = File::create(&lock_path).unwrap();
            file.lock().unwrap();
            let same = match std::fs::metadata(&lock_path) {
                Ok(at_path) => at_path.ino() == file.metadata().unwrap().ino(),
                Err(_) => false,
            };
            if same {
                return Cluster {
                    id,
                    subnet,
                    lock_path,
                    _lock: file,
                };
            }
        }
        panic!(
            "could not lock {} in {MAX_LOCK_ATTEMPTS} attempts",
            lock_path.display()
        );
    }

    /// `distest run --target kv` on this cluster, storing into `store`, with `args`.
    fn run(&self, store: &Path, args: &[&str]) -> Output {
        run_on_cluster(store, self.id, self.subnet)
            .args(["--target", "kv"])
            .args(args)
            .output()
            .unwrap()
    }

    fn base_dir(&self) -> String {
        format!("/tmp/dt-test-nodes-{}", self.id)
    }

    /// Nothing of this cluster remains: namespaces, links, processes in them.
    fn assert_nothing_left(&self) {
        assert_cluster_gone(self.id);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `remove_dir` removes only an empty directory: what a failed run left stays for
        // a look. Unlinked while still locked, so no waiter can lock a stale file.
        // distest's own run lock (`<base>/<id>.run.lock`) is released with its process.
        let _ = std::fs::remove_file(format!("{}/{}.run.lock", self.base_dir(), self.id));
        let _ = std::fs::remove_dir(self.base_dir());
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// The values of the fault ops `f` the nemesis completed without error. The nemesis runs
/// one op at a time, so the ops of one `f` alternate invoke, completion.
fn faults_done(history: &str, f: &str) -> Vec<Value> {
    history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["process"] == "nemesis" && op["f"] == f)
        .skip(1)
        .step_by(2)
        .filter(|op| op.get("error").is_none())
        .map(|op| op["value"].clone())
        .collect()
}

/// Runs the correct build with `args` on `cluster` into a fresh store called `name`;
/// asserts exit 0 and `checker` valid. Returns the store for further checks.
fn correct_build_valid(cluster: &Cluster, name: &str, args: &[&str], checker: &str) -> PathBuf {
    let store = temp_store(name);
    let out = cluster.run(&store, args);
    assert_eq!(out.status.code(), Some(0), "correct build: {}", text(&out));
    let r = results(&store);
    assert_eq!(r["checkers"][checker]["valid"], true, "{r}");
    store
}

/// Runs the bug build then the correct build with the same `args` (and seed) on
/// `cluster`; asserts exit 1 with `anomaly` from `checker`, then exit 0 with that checker
/// valid. Returns the bug run's store for further checks of its history.
fn bug_caught_and_correct_build_valid(
    cluster: &Cluster,
    name: &str,
    bug: &str,
    args: &[&str],
    checker: &str,
    anomaly: &str,
) -> PathBuf {
    let store = temp_store(name);
    let mut bug_args = vec!["--bug", bug];
    bug_args.extend_from_slice(args);
    let out = cluster.run(&store, &bug_args);
    assert_eq!(out.status.code(), Some(1), "{bug}: {}", text(&out));
    let r = results(&store);
    let verdict = &r["checkers"][checker];
    assert_eq!(verdict["valid"], false, "{r}");
    assert!(
        verdict["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == anomaly),
        "{bug}: expected {anomaly} from {checker}: {verdict}"
    );
    cluster.assert_nothing_left();

    let correct = correct_build_valid(cluster, &format!("{name}-correct"), args, checker);
    cluster.assert_nothing_left();
    std::fs::remove_dir_all(&correct).unwrap();
    store
}

/// `no-fsync` is a real missing fsync (records reach the kernel, nothing is fsynced), so
/// SIGKILL alone loses nothing; `--nemesis disk` serves the data directories through
/// lazyfs and drops what was not fsynced, as a power failure does. Seed 1 draws
/// `lose-unsynced` on a majority at ~4 s and ~7 s: with nothing durable, those nodes come
/// back empty and acknowledged adds are `lost`. The correct build under the same
/// schedule loses nothing (it fsyncs before it acknowledges).
#[test]
fn no_fsync_bug_under_lost_unsynced_writes_loses_acknowledged_set_adds() {
    common::require_root!();
    let cluster = Cluster::claim("bga", 156);
    let args = [
        "--workload",
        "set",
        "--nemesis",
        "disk",
        "--time-limit",
        "15",
        "--nemesis-interval",
        "3",
        "--seed",
        "1",
    ];
    let store = bug_caught_and_correct_build_valid(
        &cluster,
        "bug-nofsync",
        "no-fsync",
        &args,
        "set",
        "lost",
    );
    let faults = faults_done(&history(&store), "lose-unsynced");
    assert!(
        faults.iter().any(|v| {
            v["nodes"].as_array().unwrap().len() >= 3
                && v["lost"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(|r| r["dropped_bytes"].as_u64().unwrap() > 0)
        }),
        "the schedule dropped unsynced data on a majority: {faults:?}"
    );
    std::fs::remove_dir_all(&store).unwrap();
}

/// The clock nemesis moves kv nodes' wall clocks (libfaketime), and the default
/// `read-index` mode, which never consults a clock, stays linearizable through clock steps
/// and strobes that land while the leader is isolated (seed 8 resets a skewed clock 1.6 s
/// into an isolate-the-leader partition). `lease-no-margin` is caught below, under the
/// schedule that lines the two faults up on purpose.
#[test]
fn read_index_reads_stay_linearizable_when_clocks_step_during_partitions() {
    common::require_root!();
    let cluster = Cluster::claim("bgb", 157);
    let store = correct_build_valid(
        &cluster,
        "bug-clock",
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition, clock",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "1",
            "--seed",
            "8",
        ],
        "linearizable",
    );
    let h = history(&store);
    let moved: usize = ["bump-clock", "strobe-clock", "skew-clock"]
        .iter()
        .map(|f| faults_done(&h, f).len())
        .sum();
    assert!(moved > 0, "the clock nemesis moved some node's clock");
    cluster.assert_nothing_left();
    std::fs::remove_dir_all(&store).unwrap();
}

/// The correct lease build (`--set read-mode=lease`, lease = election timeout − margin,
/// measured on the wall clock) stays linearizable while partitions isolate leaders and
/// no clock is moved: an isolated leader's lease ends before the majority can elect.
#[test]
fn wall_clock_lease_reads_stay_linearizable_under_partitions() {
    common::require_root!();
    let cluster = Cluster::claim("bgc", 158);
    let store = correct_build_valid(
        &cluster,
        "bug-lease",
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--set",
            "read-mode=lease",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "2",
            "--seed",
            "2",
        ],
        "linearizable",
    );
    let partitions = faults_done(&history(&store), "start-partition");
    assert!(!partitions.is_empty(), "a partition was in force");
    cluster.assert_nothing_left();
    std::fs::remove_dir_all(&store).unwrap();
}

/// The correct build under the leader churn `commit-old-term` needs (kills and partitions
/// every second) is strict-serializable for Elle's list-append, and transactions do
/// commit (raft-kv takes the workload's integer keys): the baseline that bug would break.
#[test]
fn list_append_under_kills_and_partitions_is_strict_serializable_on_the_correct_build() {
    common::require_root!();
    let cluster = Cluster::claim("bgd", 159);
    let store = correct_build_valid(
        &cluster,
        "bug-churn",
        &[
            "--workload",
            "list-append",
            "--nemesis",
            "kill, partition",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "1",
            "--seed",
            "1",
        ],
        "list-append",
    );
    let r = results(&store);
    let committed = history(&store)
        .lines()
        .filter(|l| l.contains("\"type\":\"ok\"") && l.contains("\"f\":\"txn\""))
        .count();
    assert!(committed > 0, "some transactions committed: {r}");
    assert!(
        !faults_done(&history(&store), "kill").is_empty(),
        "nodes were killed"
    );
    cluster.assert_nothing_left();
    std::fs::remove_dir_all(&store).unwrap();
}

/// A schedule file of `examples/schedules/`, as an absolute path.
fn schedule(name: &str) -> String {
    format!("{}/examples/schedules/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The nemesis ops of `history` in order: `(f, invoke value, completion value, error)`.
fn nemesis_steps(history: &str) -> Vec<(String, Value, Value, Option<Value>)> {
    let ops: Vec<Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["process"] == "nemesis")
        .collect();
    ops.chunks(2)
        .map(|pair| {
            let done = pair.get(1).cloned().unwrap_or(Value::Null);
            (
                pair[0]["f"].as_str().unwrap_or("").to_string(),
                pair[0]["value"].clone(),
                done["value"].clone(),
                done.get("error").cloned(),
            )
        })
        .collect()
}

/// `lease-no-margin`: "isolate the leader; 0.5 s later step its wall clock back 2 s;
/// after 5 s heal both", every 10 s. The cut-off leader keeps serving lease reads until
/// its stepped-back clock says the lease ended, while the majority has elected a new
/// leader and written past it. Clients give up after 500 ms, so those of the cut-off
/// leader come back to it soon after its lease should have ended. The default
/// `read-index` build under the same schedule is linearizable.
#[test]
fn lease_no_margin_serves_stale_reads_when_the_cut_off_leaders_clock_steps_back() {
    common::require_root!();
    let cluster = Cluster::claim("fa0", 180);
    let file = schedule("lease-clock-step.toml");
    let args = [
        "--workload",
        "register",
        "--nemesis-schedule",
        &file,
        "--op-timeout",
        "0.5",
        "--time-limit",
        "20",
        "--seed",
        "1",
    ];
    let store = bug_caught_and_correct_build_valid(
        &cluster,
        "bug-lease-step",
        "lease-no-margin",
        &args,
        "linearizable",
        "nonlinearizable",
    );
    // Every step is in the history, in the file's order, aimed where the file says.
    let steps = nemesis_steps(&history(&store));
    let fs: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        fs[..4],
        [
            "start-partition",
            "bump-clock",
            "stop-partition",
            "reset-clock"
        ],
        "{steps:?}"
    );
    let cut = steps[0].2["as"]["cut"].clone();
    assert_eq!(cut.as_array().map(Vec::len), Some(1), "{steps:?}");
    assert_eq!(steps[1].1["nodes"], json!(["@cut"]));
    let stepped = cut[0].as_str().unwrap();
    assert_eq!(steps[1].2["offsets_ms"][stepped], -2000, "{steps:?}");
    assert!(
        steps.iter().all(|s| s.3.is_none()),
        "no step failed: {steps:?}"
    );
    let run = latest_run(&store);
    assert!(run.join("nemesis-schedule.toml").is_file());
    std::fs::remove_dir_all(&store).unwrap();
}

/// `commit-old-term`: Raft's figure 8 on three nodes by partitions alone — isolate the
/// leader while it takes writes, then isolate each new leader as soon as it is elected.
/// The third leader counts the first one's entries committed and serves reads of them;
/// the fourth overwrites them: elements read from the set disappear (`lost`). The
/// correct build (its no-op) loses nothing under the same schedule.
#[test]
fn commit_old_term_loses_read_elements_under_the_figure_8_schedule() {
    common::require_root!();
    let cluster = Cluster::claim("fa1", 181);
    let file = schedule("figure-8.toml");
    let args = [
        "--nodes",
        "local:3",
        "--workload",
        "set",
        "--nemesis-schedule",
        &file,
        "--op-timeout",
        "0.5",
        // Rounds of 8 s plus elections, which take seconds on a loaded machine: 40 s
        // leave room for four rounds even then (two in 20 s hit no window once).
        "--time-limit",
        "40",
        "--seed",
        "1",
    ];
    let store = bug_caught_and_correct_build_valid(
        &cluster,
        "bug-figure-8",
        "commit-old-term",
        &args,
        "set",
        "lost",
    );
    // The schedule waited for each new leader and isolated it: four leaders in a round,
    // each a different node from the one before.
    let steps = nemesis_steps(&history(&store));
    let leaders: Vec<&str> = steps
        .iter()
        .filter(|s| s.0 == "await-leader" && s.3.is_none())
        .filter_map(|s| s.2["leader"].as_str())
        .collect();
    assert!(leaders.len() >= 4, "{steps:?}");
    assert!(leaders[..4].windows(2).all(|w| w[0] != w[1]), "{leaders:?}");
    std::fs::remove_dir_all(&store).unwrap();
}

/// The correct build under the membership nemesis on one timeline and partitions and
/// kills on another (`membership+partition,kill`): linearizable, nodes were removed and
/// added back while clients ran, and the run ended with every node a member again.
#[test]
fn the_correct_build_stays_linearizable_while_members_leave_and_rejoin() {
    common::require_root!();
    let cluster = Cluster::claim("fa2", 182);
    let store = correct_build_valid(
        &cluster,
        "faults-membership",
        &[
            "--workload",
            "register",
            "--nemesis",
            "membership+partition,kill",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "20",
            "--seed",
            "3",
        ],
        "linearizable",
    );
    let steps = nemesis_steps(&history(&store));
    let removed: usize = steps
        .iter()
        .filter(|s| s.0 == "remove-member" && s.3.is_none())
        .map(|s| s.2["nodes"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(removed > 0, "some node left the cluster: {steps:?}");
    let last = steps
        .iter()
        .rev()
        .find(|s| s.0.ends_with("-member"))
        .expect("membership steps");
    assert_eq!(last.0, "add-member", "{steps:?}");
    assert!(last.3.is_none(), "the cluster grew back: {last:?}");
    assert_eq!(last.2["out"], json!([]), "nobody left out: {last:?}");
    assert!(
        steps.iter().any(|s| s.0 == "kill") && steps.iter().any(|s| s.0 == "start-partition"),
        "the other timeline ran too: {steps:?}"
    );
    cluster.assert_nothing_left();
    std::fs::remove_dir_all(&store).unwrap();
}
