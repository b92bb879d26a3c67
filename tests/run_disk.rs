//! `--nemesis disk` end to end on the daemon targets other than raft-kv (root only): their
//! data directories are served through lazyfs, each `lose-unsynced` kills a node, drops
//! what it had not fsynced and restarts it, and the correct builds stay valid. (raft-kv:
//! `run_bugs.rs`, where `no-fsync` is caught by the same fault.) Also: `corrupt-file` on
//! raft-kv, and what a SIGKILLed disk run leaves (lazyfs mounts) removed by the next run.
//!
//! Clusters `lza`, `lzb`, `lzc`, `lzk`, `lzf` in 10.77.176-179.0/24 and 10.77.175.0/24
//! (disk_toy.rs uses 175 too: test binaries run one after another); each test asserts that
//! nothing of its cluster is left, lazyfs mounts included. Run under the shared lock:
//! `cargo test --test run_disk --no-run && flock -o /work/locks/netns.lock cargo test --test run_disk`.

mod common;
use common::*;

use distest::nodes::lazyfs::lazyfs_mounts;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Tears the cluster down and removes the store and node directories when dropped, also
/// when the test panics.
struct Cluster {
    id: &'static str,
    store: TempDir,
}

impl Cluster {
    fn new(id: &'static str) -> Cluster {
        Cluster {
            id,
            store: TempDir::new(&format!("disk-{id}")),
        }
    }

    /// `distest run` under `--nemesis disk` with `args` after the common ones.
    fn run(&self, subnet: u8, args: &[&str]) -> std::process::Output {
        run_on_cluster(&self.store.0, self.id, subnet)
            .args(["--nemesis", "disk", "--nemesis-interval", "3"])
            .args(["--recovery-time", "3", "--seed", "3"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = distest()
            .args(["env", "down", "--cluster", self.id, "--base-dir"])
            .arg(format!("/tmp/dt-test-nodes-{}", self.id))
            .output();
        let _ = std::fs::remove_dir_all(format!("/tmp/dt-test-nodes-{}", self.id));
    }
}

/// The completions of the run's `lose-unsynced` ops; asserts that at least one happened
/// and none failed, and that each names what lazyfs dropped on every node it hit. An op
/// aimed at the primaries while none was elected (a leader just lost its data) does
/// nothing and says so: that is no failure.
fn lost_unsynced(store: &Path) -> Vec<Value> {
    let done: Vec<Value> = history(store)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["f"] == "lose-unsynced" && op["value"].get("lost").is_some())
        .collect();
    let failed: Vec<String> = history(store)
        .lines()
        .filter(|l| l.contains("\"lose-unsynced\"") && l.contains("\"error\""))
        .filter(|l| !l.contains("reports none right now") || !l.contains("nothing was done"))
        .map(str::to_string)
        .collect();
    assert!(failed.is_empty(), "failed lose-unsynced ops: {failed:?}");
    assert!(!done.is_empty(), "no lose-unsynced op completed");
    for op in &done {
        let nodes = op["value"]["nodes"].as_array().unwrap();
        let lost = op["value"]["lost"].as_object().unwrap();
        assert_eq!(nodes.len(), lost.len(), "{op}");
        assert!(lost.values().all(|r| r["dropped_bytes"].is_u64()), "{op}");
    }
    done
}

fn dropped_bytes(done: &[Value]) -> u64 {
    done.iter()
        .flat_map(|op| op["value"]["lost"].as_object().unwrap().values())
        .map(|r| r["dropped_bytes"].as_u64().unwrap())
        .sum()
}

#[test]
fn crdt_store_converges_when_nodes_lose_unsynced_writes() {
    require_root!();
    let cluster = Cluster::new("lza");
    let out = cluster.run(
        176,
        &[
            "--target",
            "crdt",
            "--workload",
            "or-set",
            "--nodes",
            "local:3",
            "--time-limit",
            "15",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    lost_unsynced(&cluster.store.0);
    assert_cluster_gone(cluster.id);
}

#[test]
fn etcd_stays_linearizable_when_nodes_lose_unsynced_writes() {
    require_root!();
    let cluster = Cluster::new("lzb");
    let out = cluster.run(
        177,
        &[
            "--target",
            "etcd",
            "--workload",
            "register",
            "--nodes",
            "local:3",
            "--time-limit",
            "20",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    lost_unsynced(&cluster.store.0);
    assert_cluster_gone(cluster.id);
}

/// PostgreSQL keeps its Unix socket in its data directory (a socket node on lazyfs) and
/// fsyncs table files only at checkpoints: each fault drops table pages it wrote, and
/// crash recovery replays them from the fsynced WAL.
#[test]
fn postgres_recovers_what_it_acknowledged_when_it_loses_unsynced_writes() {
    require_root!();
    if !Path::new("/usr/lib/postgresql").exists() {
        eprintln!("skipped: PostgreSQL is not installed");
        return;
    }
    let cluster = Cluster::new("lzc");
    let out = cluster.run(
        178,
        &[
            "--target",
            "postgres",
            "--workload",
            "list-append",
            "--nodes",
            "local:1",
            "--concurrency",
            "10",
            "--key-count",
            "3",
            "--time-limit",
            "20",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let done = lost_unsynced(&cluster.store.0);
    assert!(
        dropped_bytes(&done) > 0,
        "nothing unsynced was dropped: {done:?}"
    );
    assert_cluster_gone(cluster.id);
}

/// The lazyfs mounts under cluster `id`'s directory, and the lazyfs processes serving them.
fn lazyfs_left(id: &str) -> (Vec<PathBuf>, Vec<String>) {
    let dir = format!("/tmp/dt-test-nodes-{id}/");
    let mounts = lazyfs_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .filter(|m| m.starts_with(&dir))
        .collect();
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let processes = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(" mount --backing ") && l.contains(&dir))
        .map(str::to_string)
        .collect();
    (mounts, processes)
}

/// SIGKILLs the run on drop if the test did not get to it (a failed assertion).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A run SIGKILLed while lazyfs serves its data directories cannot clean up: its mounts
/// and lazyfs processes stay. The next run on the cluster removes them before it
/// provisions (it starts from nothing of the dead run), is valid, and leaves nothing.
#[test]
fn a_sigkilled_disk_run_leaves_mounts_that_the_next_run_removes() {
    require_root!();
    let cluster = Cluster::new("lzk");
    let killed = TempDir::new("disk-lzk-killed");
    let child = run_on_cluster(&killed.0, cluster.id, 179)
        .args(["--target", "kv", "--nodes", "local:3", "--nemesis", "disk"])
        .args(["--nemesis-interval", "30", "--time-limit", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // Generous: provisioning on a loaded machine; the history is created after setup.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (mounts, _) = lazyfs_left(cluster.id);
        // Ops recorded: the run is in its main phase, the daemons on the mounts.
        let recording = std::fs::metadata(killed.0.join("latest").join("history.jsonl"))
            .is_ok_and(|m| m.len() > 0);
        if mounts.len() == 3 && recording {
            break;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the run to be killed ended by itself: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "lazyfs never served 3 data dirs: {mounts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (mounts, processes) = lazyfs_left(cluster.id);
    assert_eq!(mounts.len(), 3, "the killed run's mounts: {mounts:?}");
    assert_eq!(processes.len(), 3, "the killed run's lazyfs: {processes:?}");

    let out = cluster.run(
        179,
        &["--target", "kv", "--nodes", "local:3", "--time-limit", "5"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(lazyfs_left(cluster.id), (Vec::new(), Vec::new()));
    assert_cluster_gone(cluster.id);
}

/// `--nemesis corrupt-file` on raft-kv: every op changes a file of the chosen nodes'
/// data; where raft-kv refuses to start on it (its snapshot is unreadable), the node
/// stays down until the next op puts the bytes back and starts it, so at most a minority
/// is ever down; at the end nothing is left down or behind. (Whether the run is valid is
/// raft-kv's business: a flipped bit that still parses is silently believed.)
#[test]
fn corrupt_file_changes_data_and_brings_refusing_nodes_back() {
    require_root!();
    let cluster = Cluster::new("lzf");
    let out = run_on_cluster(&cluster.store.0, cluster.id, 175)
        .args([
            "--target",
            "kv",
            "--nodes",
            "local:3",
            "--nemesis",
            "corrupt-file",
        ])
        .args([
            "--nemesis-interval",
            "3",
            "--time-limit",
            "20",
            "--seed",
            "1",
        ])
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "{}", text(&out));
    let ops: Vec<Value> = history(&cluster.store.0)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["process"] == "nemesis")
        .collect();
    let completions: Vec<&Value> = ops.iter().skip(1).step_by(2).collect();
    let failed: Vec<&&Value> = completions
        .iter()
        .filter(|op| op.get("error").is_some())
        .collect();
    assert!(failed.is_empty(), "failed nemesis ops: {failed:?}");
    let mut down: Vec<String> = Vec::new();
    let mut changed = 0;
    for op in &completions {
        let value = &op["value"];
        let back: Vec<String> = value["brought_back"]["nodes"]
            .as_array()
            .or(value["nodes"]
                .as_array()
                .filter(|_| op["f"] == "restart-corrupt"))
            .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        assert_eq!(
            back, down,
            "exactly the nodes left down come back first: {op}"
        );
        down.clear();
        for (node, result) in value["changed"].as_object().into_iter().flatten() {
            changed += 1;
            assert!(result["size"].as_u64().unwrap() > 0, "{op}");
            assert!(
                result.get("flips").is_some() || result.get("truncated_to").is_some(),
                "{op}"
            );
            if result["restarted"] == false {
                assert!(result["start_error"].is_string(), "{op}");
                down.push(node.clone());
            }
        }
        assert!(down.len() <= 1, "a majority of 3 down: {op}");
    }
    assert!(down.is_empty(), "nodes left down at the end: {down:?}");
    assert!(changed >= 3, "too few files changed: {completions:?}");
    assert_cluster_gone(cluster.id);
}
