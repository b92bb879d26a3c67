//! A run never adopts state it did not create (issue 15), end to end as root (skipped with
//! a printed reason otherwise): after a control node killed with a partition in force, or
//! stopped with a double Ctrl-C, the next run on the same cluster starts from nothing of
//! the first and is valid; a third signal abandons the cluster and says how to remove it;
//! `distest env down` refuses a cluster a live run uses unless `--force`.
//! Clusters tr1..tr3 on 10.77.165-167.0/24, each removed on drop (also on panic).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A cluster id and subnet of this file's, its store, and cleanup on drop.
struct Cluster {
    id: &'static str,
    octet: u8,
    store: TempDir,
}

impl Cluster {
    fn new(id: &'static str, octet: u8) -> Cluster {
        Cluster {
            id,
            octet,
            store: TempDir::new(&format!("leftovers-{id}")),
        }
    }

    fn base(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/dt-test-nodes-{}", self.id))
    }

    /// `distest run --target kv --nemesis partition` on 3 nodes, into its own store.
    fn run(&self, store: &str, seed: u64, time_limit_s: u64) -> Command {
        let mut cmd = run_on_cluster(&self.store.0.join(store), self.id, self.octet);
        cmd.args([
            "--target",
            "kv",
            "--nemesis",
            "partition",
            "--nodes",
            "local:3",
        ])
        .args(["--nemesis-interval", "1", "--recovery-time", "1"])
        .args(["--seed", &seed.to_string()])
        .args(["--time-limit", &time_limit_s.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    }

    fn env(&self, action: &str, extra: &[&str]) -> std::process::Output {
        distest()
            .args(["env", action, "--cluster", self.id])
            .arg("--base-dir")
            .arg(self.base())
            .args(extra)
            .output()
            .unwrap()
    }

    fn namespace(&self, i: usize) -> String {
        format!("dt-{}-n{i}", self.id)
    }

    /// Node `i`'s iptables rules inside its namespace (empty when it does not exist).
    fn rules(&self, i: usize) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.namespace(i), "iptables", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn partition_in_force(&self) -> bool {
        (1..=3).any(|i| self.rules(i).contains("DISTEST-PARTITION"))
    }

    /// The raft-kv pids named by the nodes' pid files.
    fn daemon_pids(&self) -> Vec<u32> {
        (1..=3)
            .filter_map(|i| {
                std::fs::read_to_string(
                    self.base()
                        .join(self.id)
                        .join(format!("n{i}/data/raft-kv.pid")),
                )
                .ok()
                .and_then(|p| p.trim().parse().ok())
            })
            .collect()
    }

    /// The inode of node `i`'s namespace: a namespace built afresh has another one.
    fn namespace_inode(&self, i: usize) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", self.namespace(i)))
            .ok()
            .map(|m| m.ino())
    }

    /// Waits (bounded) for `ready`; panics with `what` when it never holds.
    fn wait(&self, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !ready() {
            assert!(Instant::now() < deadline, "{what} within {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The run lock's record: empty once a run ended cleanly.
    fn lock_record(&self) -> String {
        std::fs::read_to_string(self.base().join(format!("{}.run.lock", self.id)))
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.env("down", &["--force"]);
        let _ = std::fs::remove_dir_all(self.base());
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

fn send(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Lines of the newest run's history in `store` (0 before it exists).
fn ops_in(store: &Path) -> usize {
    std::fs::canonicalize(store.join("latest"))
        .ok()
        .and_then(|run| std::fs::read_to_string(run.join("history.jsonl")).ok())
        .map(|h| h.lines().count())
        .unwrap_or(0)
}

/// Starts the first run and returns once a partition is in force on some node.
fn first_run_with_a_partition(cluster: &Cluster) -> Child {
    let child = cluster.run("first", 5, 300).spawn().unwrap();
    cluster.wait(
        "a partition in force in the first run",
        Duration::from_secs(120),
        || cluster.partition_in_force(),
    );
    child
}

/// The second run: valid, and while it runs nothing of the first is there.
fn second_run_is_valid_on_nothing_of_the_first(
    cluster: &Cluster,
    old_pids: &[u32],
    old_namespace: Option<u64>,
    marker: &Path,
) -> String {
    let store = cluster.store.0.join("second");
    let child = cluster.run("second", 6, 12).spawn().unwrap();
    cluster.wait(
        "the second run's main phase",
        Duration::from_secs(120),
        || ops_in(&store) > 20,
    );
    for pid in old_pids {
        assert!(!alive(*pid), "the first run's raft-kv (pid {pid}) survived");
    }
    assert!(
        !marker.exists(),
        "the first run's data survived: {}",
        marker.display()
    );
    assert_ne!(
        cluster.namespace_inode(1),
        old_namespace,
        "the namespace (with the first run's rules) was reused"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: valid"));
    assert_cluster_gone(cluster.id);
    assert!(
        cluster.lock_record().is_empty(),
        "{}",
        cluster.lock_record()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file of the first run's in n1's raft-kv data directory.
fn mark_first_run_data(cluster: &Cluster) -> PathBuf {
    let marker = cluster
        .base()
        .join(cluster.id)
        .join("n1/data/raft-kv/written-by-the-first-run");
    std::fs::write(&marker, "first").unwrap();
    marker
}

#[test]
fn a_run_after_a_sigkilled_run_starts_from_nothing_of_it_and_is_valid() {
    require_root!();
    let cluster = Cluster::new("tr1", 165);
    let mut first = first_run_with_a_partition(&cluster);
    let pids = cluster.daemon_pids();
    assert_eq!(pids.len(), 3, "three raft-kv daemons");
    let namespace = cluster.namespace_inode(1);
    let marker = mark_first_run_data(&cluster);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(pids.iter().all(|p| alive(*p)), "SIGKILL left the daemons");
    assert!(cluster.partition_in_force(), "and the partition");

    let said = second_run_is_valid_on_nothing_of_the_first(&cluster, &pids, namespace, &marker);
    let line: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("removed what a run left"))
        .collect();
    assert_eq!(line.len(), 1, "one line says what was removed: {said}");
    assert!(
        line[0].contains(&format!("pid {}", first.id())) && line[0].contains("namespaces"),
        "{said}"
    );
}

#[test]
fn a_run_after_a_double_sigint_starts_from_nothing_of_it_and_is_valid() {
    require_root!();
    let cluster = Cluster::new("tr2", 166);
    let first = first_run_with_a_partition(&cluster);
    let pids = cluster.daemon_pids();
    let namespace = cluster.namespace_inode(1);
    let marker = mark_first_run_data(&cluster);
    send(&first, nix::sys::signal::Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(50));
    send(&first, nix::sys::signal::Signal::SIGINT);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "interrupted: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("distest: SIGINT: stopping"), "{stderr}");
    assert!(
        stderr.contains("distest: second SIGINT: skipping"),
        "{stderr}"
    );
    // The double Ctrl-C still healed and tore everything down.
    assert_cluster_gone(cluster.id);
    assert!(
        cluster.lock_record().is_empty(),
        "{}",
        cluster.lock_record()
    );
    let history =
        std::fs::read_to_string(latest_run(&cluster.store.0.join("first")).join("history.jsonl"))
            .unwrap();
    assert!(
        history.rfind("\"stop-partition\"") > history.rfind("\"start-partition\""),
        "healed after the last partition"
    );

    let said = second_run_is_valid_on_nothing_of_the_first(&cluster, &pids, namespace, &marker);
    assert!(
        !said.contains("removed what"),
        "nothing was left to remove: {said}"
    );
}

#[test]
fn a_third_signal_abandons_the_cluster_and_env_down_refuses_a_live_run_unless_forced() {
    require_root!();
    let cluster = Cluster::new("tr3", 167);
    let first = first_run_with_a_partition(&cluster);
    for _ in 0..3 {
        send(&first, nix::sys::signal::Signal::SIGINT);
        std::thread::sleep(Duration::from_millis(30));
    }
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let third: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("third SIGINT"))
        .collect();
    assert_eq!(third.len(), 1, "{stderr}");
    assert!(
        third[0].contains("left behind: local cluster tr3")
            && third[0].contains(&format!(
                "`distest env down --cluster tr3 --base-dir {}` removes it",
                cluster.base().display()
            )),
        "{stderr}"
    );
    assert!(
        !cluster.lock_record().is_empty(),
        "the abandoned run's record stays"
    );
    let down = cluster.env("down", &[]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(String::from_utf8_lossy(&down.stdout).contains("removed 3 namespaces"));
    assert_cluster_gone(cluster.id);
    assert!(
        cluster.lock_record().is_empty(),
        "env down clears the record"
    );

    // A live run: refused without --force, killed (and said so) with it.
    let second = cluster.run("second", 8, 300).spawn().unwrap();
    cluster.wait(
        "the second run's main phase",
        Duration::from_secs(120),
        || ops_in(&cluster.store.0.join("second")) > 20,
    );
    let refused = cluster.env("down", &[]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!(
            "in use by a live distest run (pid {}",
            second.id()
        )) && err.contains("--force"),
        "{err}"
    );
    assert!(!err.trim().contains('\n'), "one line: {err}");
    assert!(cluster.namespace_inode(1).is_some(), "left alone");
    let forced = cluster.env("down", &["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert!(
        String::from_utf8_lossy(&forced.stdout).contains(&format!(
            "killing the distest run using it (pid {}",
            second.id()
        )),
        "{}",
        text(&forced)
    );
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "killed by a signal");
    assert_cluster_gone(cluster.id);
}
