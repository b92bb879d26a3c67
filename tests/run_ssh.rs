//! `distest run` over the real SSH path, end to end (root only; skipped with a printed reason
//! otherwise): a local cluster brought up with `distest env up`, sshd started inside each of
//! its namespaces, and a `kv` run with partitions and kills that reaches the nodes only
//! through `--nodes-file`, `--known-hosts` and `--ssh-key`.
//!
//! The three SSH "hosts" are namespaces of this machine and so share one filesystem. A real
//! host has its own disk, so each sshd gets a private mount of its own directory over the
//! run's remote base dir: without that the three raft-kv daemons would share one pid file,
//! one data directory and one log, and the test would prove nothing about per-host state.
//!
//! The clock nemesis is never run here: on SSH nodes it sets the system clock, which here is
//! the clock of the machine running the tests. A test checks instead that the target refuses
//! clock faults on such hosts (they share this machine's kernel, hence its clock).

mod common;

use common::sshd::{self, Disk};
use common::{distest, latest_run, TempDir};
use distest::nodes::local::{ClusterSpec, LocalCluster};
use distest::nodes::ssh::{SshNode, SshTarget};
use distest::nodes::{DaemonSpec, Remote};
use distest::targets::managed::{ManagedDaemon, NodePaths};
use distest_nemeses::ClockSupport;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const CLUSTER_ID: &str = "ssh1";
const SUBNET: &str = "10.77.160.0/24";
const NODE_COUNT: usize = 3;
/// Base dir of the local cluster (namespaces' own data and logs).
const LOCAL_BASE_DIR: &str = "/tmp/dt-test-ssh1-nodes";
/// Base dir `distest run` is given for the SSH nodes; each sshd mounts its host's own
/// directory (under [`HOSTS_DIR`]) here.
const REMOTE_BASE_DIR: &str = "/tmp/dt-test-ssh1-remote";
/// The per-host disks behind [`REMOTE_BASE_DIR`], and sshd's keys and config.
const HOSTS_DIR: &str = "/tmp/dt-test-ssh1-hosts";
/// A non-default port, so the `host:port` form of the nodes file is exercised.
const SSHD_PORT: u16 = 2222;

/// [`common::text`] with the exit status, which `env up`/`env down` failures show nowhere else.
fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The cluster of `distest env up` and every directory of this test; `env down` and
/// removal on drop, also when the test panics. Taking it down also ends the sshds and any
/// daemon a failed run left, since `down` kills every process in the namespaces.
struct ClusterGuard;

impl ClusterGuard {
    fn up() -> ClusterGuard {
        // Leftovers of an earlier, SIGKILLed run of this test would make `up` refuse.
        let out = Self::tear_down();
        assert!(out.status.success(), "env down failed: {}", text(&out));
        let guard = ClusterGuard;
        let out = distest()
            .args(["env", "up", "--nodes", &NODE_COUNT.to_string()])
            .args(["--cluster", CLUSTER_ID, "--subnet", SUBNET])
            .args(["--base-dir", LOCAL_BASE_DIR])
            .output()
            .unwrap();
        assert!(out.status.success(), "env up failed: {}", text(&out));
        guard
    }

    /// `env down` of the cluster, then removal of every directory of this test.
    fn tear_down() -> Output {
        let out = distest()
            .args(["env", "down", "--cluster", CLUSTER_ID])
            .args(["--base-dir", LOCAL_BASE_DIR])
            .output()
            .expect("could not run distest env down");
        for dir in [LOCAL_BASE_DIR, REMOTE_BASE_DIR, HOSTS_DIR] {
            let _ = std::fs::remove_dir_all(dir);
        }
        out
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let out = Self::tear_down();
        if !out.status.success() {
            eprintln!("cleanup: env down failed: {}", text(&out));
        }
    }
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The iptables rules in the namespace of node `i` (from 0), as `iptables -S` lists them
/// for the filter table (partition, loss) and the mangle table (latency).
fn iptables_rules(i: usize) -> String {
    let ns = format!("dt-{CLUSTER_ID}-n{}", i + 1);
    stdout_of(Command::new("ip").args([
        "netns",
        "exec",
        &ns,
        "sh",
        "-c",
        "iptables -w 5 -S; iptables -w 5 -t mangle -S",
    ]))
}

/// Adds the flags that name the SSH nodes and how to reach them, as a user of real hosts
/// passes them. No agent: a command must authenticate with `--ssh-key` alone.
fn with_ssh_nodes(cmd: &mut Command) -> &mut Command {
    let hosts = Path::new(HOSTS_DIR);
    cmd.arg("--nodes-file")
        .arg(hosts.join("nodes"))
        .arg("--known-hosts")
        .arg(hosts.join("known_hosts"))
        .arg("--ssh-key")
        .arg(hosts.join("client_key"))
        .args(["--base-dir", REMOTE_BASE_DIR])
        .env_remove("SSH_AUTH_SOCK")
}

/// Every test here uses cluster `ssh1` (one cluster id and subnet for this file): they take
/// turns.
static CLUSTER_LOCK: Mutex<()> = Mutex::new(());

/// The cluster of `env up` with sshd on every node, and what `distest run` needs to reach
/// it over SSH. Field order is drop order: the adopted handle goes before `env down`.
struct SshCluster {
    _local: LocalCluster,
    _guard: ClusterGuard,
    /// Node names in the namespaces (n1..); each names its host's directory under HOSTS_DIR.
    namespaces: Vec<Arc<dyn Remote>>,
    /// The SSH nodes' names as `distest run` sees them (their addresses), in order.
    addresses: Vec<String>,
    _lock: MutexGuard<'static, ()>,
}

impl SshCluster {
    fn up() -> SshCluster {
        let lock = CLUSTER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let guard = ClusterGuard::up();
        // The namespaces `env up` made, adopted (not owned: dropping this leaves them up).
        let spec = ClusterSpec {
            cluster_id: CLUSTER_ID.into(),
            node_count: NODE_COUNT,
            subnet: SUBNET.parse().unwrap(),
            base_dir: LOCAL_BASE_DIR.into(),
        };
        let local = LocalCluster::up(spec).unwrap();
        assert!(
            !local.owns_cluster(),
            "env up must have created the cluster"
        );
        let namespaces: Vec<Arc<dyn Remote>> = local.nodes();

        let hosts = Path::new(HOSTS_DIR);
        std::fs::create_dir_all(hosts).unwrap();
        let client_pub = sshd::keygen(&hosts.join("client_key"));
        let mut known_hosts = String::new();
        let mut nodes_file = String::from("# the namespaces of cluster ssh1, reached over SSH\n");
        let mut addresses = Vec::new();
        for node in &namespaces {
            let host_dir = hosts.join(node.name());
            std::fs::create_dir_all(&host_dir).unwrap();
            let disk = Disk {
                own: &host_dir.join("disk"),
                mounted_at: Path::new(REMOTE_BASE_DIR),
            };
            let sshd = sshd::start(&**node, &host_dir, SSHD_PORT, &client_pub, Some(disk));
            let address = node.address();
            let host_entry = sshd::host_entry(address, SSHD_PORT);
            known_hosts.push_str(&format!("{host_entry} {}\n", sshd.host_pub));
            nodes_file.push_str(&format!("{}\n", sshd::login(address, SSHD_PORT)));
            addresses.push(address.to_string());
        }
        std::fs::write(hosts.join("known_hosts"), known_hosts).unwrap();
        std::fs::write(hosts.join("nodes"), nodes_file).unwrap();
        SshCluster {
            _local: local,
            _guard: guard,
            namespaces,
            addresses,
            _lock: lock,
        }
    }

    /// `distest run --target kv --workload register` on the SSH nodes, storing into `store`.
    fn run_kv(&self, store: &Path, args: &[&str]) -> Command {
        let mut cmd = distest();
        cmd.args(["run", "--target", "kv", "--workload", "register"]);
        with_ssh_nodes(&mut cmd)
            .arg("--store")
            .arg(store)
            .args(args)
            .env_remove("DISTEST_BIN");
        cmd
    }

    /// This host's own disk, mounted over REMOTE_BASE_DIR in its sshd's sessions.
    fn disk(&self, i: usize) -> PathBuf {
        Path::new(HOSTS_DIR)
            .join(self.namespaces[i].name())
            .join("disk")
    }

    /// No raft-kv process, no iptables chain of ours, no raft-kv data on any host's disk.
    fn assert_target_gone(&self) {
        let processes = stdout_of(Command::new("pgrep").args(["-af", REMOTE_BASE_DIR]));
        assert!(processes.is_empty(), "processes left: {processes}");
        for i in 0..self.namespaces.len() {
            let rules = iptables_rules(i);
            assert!(
                !rules.to_lowercase().contains("distest"),
                "iptables rules left on {}:\n{rules}",
                self.addresses[i]
            );
            for gone in ["data/raft-kv", "data/bin", "data/raft-kv.pid"] {
                assert!(
                    !self.disk(i).join(gone).exists(),
                    "{gone} was not wiped on {}",
                    self.addresses[i]
                );
            }
        }
    }

    /// Takes the cluster down and checks its namespaces are gone.
    fn down(self) {
        drop(self);
        let netns = stdout_of(Command::new("ip").args(["netns", "list"]));
        assert!(
            !netns.contains(&format!("dt-{CLUSTER_ID}-")),
            "namespaces left: {netns}"
        );
    }
}

/// Watches the namespaces' iptables while a run goes and remembers which nodes ever had one
/// of our chains: evidence that a partition sent over SSH took effect in that node's network
/// namespace, not merely that the command returned 0. Stops on `finish` or drop.
struct ChainWatcher {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<BTreeSet<usize>>>,
}

/// How often, and for how long at most, the watcher looks.
const WATCH_EVERY: Duration = Duration::from_millis(250);
const WATCH_AT_MOST: Duration = Duration::from_secs(120);

impl ChainWatcher {
    fn start(node_count: usize) -> ChainWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let deadline = Instant::now() + WATCH_AT_MOST;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                for i in 0..node_count {
                    if iptables_rules(i).contains("DISTEST-PARTITION") {
                        seen.insert(i);
                    }
                }
                std::thread::sleep(WATCH_EVERY);
            }
            seen
        });
        ChainWatcher {
            stop,
            handle: Some(handle),
        }
    }

    /// Indices of the nodes that had a partition chain at some point.
    fn finish(mut self) -> BTreeSet<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for ChainWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("could not read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn kv_run_over_ssh_injects_partitions_and_kills_collects_logs_and_leaves_nothing() {
    if sshd::skip_unless_root_with_openssh(
        "kv_run_over_ssh_injects_partitions_and_kills_collects_logs_and_leaves_nothing",
    ) {
        return;
    }
    let started = Instant::now();
    let store = TempDir::new("ssh1-store");
    let cluster = SshCluster::up();
    let setup_s = started.elapsed().as_secs_f64();

    let watcher = ChainWatcher::start(NODE_COUNT);
    let out = cluster
        .run_kv(&store.0, &["--nemesis", "partition,kill"])
        .args(["--time-limit", "12", "--nemesis-interval", "3"])
        .args(["--concurrency", "6", "--seed", "9"])
        .output()
        .unwrap();
    let partitioned = watcher.finish();
    eprintln!(
        "sshd cluster ready after {setup_s:.1} s, distest run took {:.1} s",
        started.elapsed().as_secs_f64() - setup_s
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let run = latest_run(&store.0);
    let log = std::fs::read_to_string(run.join("distest.log")).unwrap_or_default();
    assert!(
        !log.contains("teardown failed") && !log.contains("could not collect"),
        "the run reported trouble after the main phase:\n{log}"
    );
    // SSH nodes are named after their hosts (`SshNode::name()`), here the addresses.
    let test_json = read_json(&run.join("test.json"));
    assert_eq!(
        test_json["nodes"],
        serde_json::json!(cluster.addresses),
        "{test_json}"
    );

    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let ops: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let faults: Vec<&serde_json::Value> =
        ops.iter().filter(|op| op["process"] == "nemesis").collect();
    let fs: Vec<&str> = faults.iter().filter_map(|op| op["f"].as_str()).collect();
    assert!(
        fs.iter().any(|f| *f == "start-partition" || *f == "kill"),
        "no fault was injected over SSH: {fs:?}"
    );
    // A fault whose iptables or kill command failed over SSH is recorded with an error.
    let failed: Vec<&&serde_json::Value> = faults
        .iter()
        .filter(|op| op.get("error").is_some())
        .collect();
    assert!(failed.is_empty(), "faults failed over SSH: {failed:?}");
    // The final heal undid what was done: every partition stopped, every killed node started.
    for (start, stop) in [("start-partition", "stop-partition"), ("kill", "start")] {
        let last = |f: &str| fs.iter().rposition(|x| *x == f);
        if let Some(started) = last(start) {
            assert!(
                last(stop).is_some_and(|stopped| stopped > started),
                "{start} was not followed by {stop}: {fs:?}"
            );
        }
    }
    // Faults took effect on the hosts they name, through SSH.
    let named = |f: &str, field: &str| -> BTreeSet<usize> {
        faults
            .iter()
            .filter(|op| op["f"] == f)
            .flat_map(|op| match &op["value"][field] {
                serde_json::Value::Array(nodes) => nodes.clone(),
                serde_json::Value::Object(grudge) => grudge
                    .iter()
                    .filter(|(_, dropped)| dropped.as_array().is_some_and(|d| !d.is_empty()))
                    .map(|(node, _)| serde_json::Value::String(node.clone()))
                    .collect(),
                _ => Vec::new(),
            })
            .filter_map(|node| cluster.addresses.iter().position(|a| node == a.as_str()))
            .collect()
    };
    assert_eq!(
        partitioned,
        named("start-partition", "grudge"),
        "nodes that had a DISTEST-PARTITION chain vs. nodes the partitions named (by index)"
    );
    let killed = named("kill", "nodes");
    assert!(
        !partitioned.is_empty() || !killed.is_empty(),
        "no fault could be traced to a host: {fs:?}"
    );
    let run = latest_run(&store.0);
    for &i in &killed {
        // raft-kv logs `listening: ...` once per start: a killed and restarted node twice.
        let node_log = run
            .join("nodes")
            .join(&cluster.addresses[i])
            .join("raft-kv.log");
        let starts = std::fs::read_to_string(&node_log)
            .unwrap_or_default()
            .matches(" listening: ")
            .count();
        assert!(
            starts >= 2,
            "{} was killed and restarted but its log shows {starts} start(s)",
            cluster.addresses[i]
        );
    }
    let oks = ops
        .iter()
        .filter(|op| op["type"] == "ok" && op["process"].is_u64())
        .count();
    assert!(oks > 0, "no client op succeeded against the SSH cluster");
    let results = read_json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");

    for (i, address) in cluster.addresses.iter().enumerate() {
        // Each host's log came back, and is that host's own: raft-kv writes
        // `<time> <node id> <message>`, so a log of another host (a shared disk, a mixed-up
        // download) would carry another id.
        let node_log = run.join("nodes").join(address).join("raft-kv.log");
        let content = std::fs::read_to_string(&node_log)
            .unwrap_or_else(|e| panic!("{} was not downloaded: {e}", node_log.display()));
        assert!(!content.is_empty(), "{} is empty", node_log.display());
        let foreign: Vec<&str> = content
            .lines()
            .filter(|l| l.split_whitespace().nth(1).is_some_and(|id| id != address))
            .take(3)
            .collect();
        assert!(
            foreign.is_empty(),
            "{} holds lines of another node: {foreign:?}",
            node_log.display()
        );
        assert!(
            cluster.disk(i).join("logs/raft-kv.log").is_file(),
            "raft-kv did not run on {address} with its own disk"
        );
    }
    // Every host wrote to its own disk: nothing went through to the shared directory.
    let shared: Vec<_> = std::fs::read_dir(REMOTE_BASE_DIR).unwrap().collect();
    assert!(
        shared.is_empty(),
        "{REMOTE_BASE_DIR} on the test machine got {shared:?}"
    );
    cluster.assert_target_gone();
    cluster.down();
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn latency_over_ssh_runs_the_uploaded_distest_as_delayer_and_leaves_nothing() {
    if sshd::skip_unless_root_with_openssh(
        "latency_over_ssh_runs_the_uploaded_distest_as_delayer_and_leaves_nothing",
    ) {
        return;
    }
    let store = TempDir::new("ssh1-latency-store");
    let cluster = SshCluster::up();
    let out = cluster
        .run_kv(&store.0, &["--nemesis", "latency"])
        .args(["--time-limit", "12", "--nemesis-interval", "2"])
        .args(["--concurrency", "4", "--seed", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let history = std::fs::read_to_string(latest_run(&store.0).join("history.jsonl")).unwrap();
    let faults: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|op: &serde_json::Value| op["process"] == "nemesis" && op["type"] == "info")
        .collect();
    let errors: Vec<&serde_json::Value> = faults
        .iter()
        .filter(|op| op.get("error").is_some())
        .collect();
    assert!(errors.is_empty(), "latency failed over SSH: {errors:?}");
    // Completions carry what was done: delayers that held packets on the hosts named.
    let delayed: u64 = faults
        .iter()
        .filter(|op| op["f"] == "stop-latency")
        .filter_map(|op| op["value"]["delayers"].as_object())
        .flat_map(|delayers| delayers.values())
        .filter_map(|report| report["stats"]["delayed"].as_u64())
        .sum();
    assert!(delayed > 0, "no packet was delayed over SSH: {faults:?}");
    for (i, address) in cluster.addresses.iter().enumerate() {
        // One copy of distest per host, uploaded once: raft-kv is a link to it.
        let link = std::fs::read_link(cluster.disk(i).join("bin/distest"));
        assert!(link.is_err(), "{address}: the helper is a file of its own");
        assert!(cluster.disk(i).join("bin/distest").is_file(), "{address}");
    }
    cluster.assert_target_gone();
    cluster.down();
}

#[test]
fn a_binary_that_cannot_run_on_an_ssh_host_fails_the_run_with_a_clear_error() {
    if sshd::skip_unless_root_with_openssh(
        "a_binary_that_cannot_run_on_an_ssh_host_fails_the_run_with_a_clear_error",
    ) {
        return;
    }
    let store = TempDir::new("ssh1-foreign-store");
    let cluster = SshCluster::up();
    // An ELF header for another CPU (aarch64): what a control node's build looks like to a
    // host of another architecture. The kernel refuses to execute it.
    let mut elf = std::fs::read(env!("CARGO_BIN_EXE_distest")).unwrap();
    elf.truncate(4096);
    let aarch64: u16 = 183;
    let other = if cfg!(target_arch = "aarch64") {
        62
    } else {
        aarch64
    };
    elf[18..20].copy_from_slice(&other.to_le_bytes());
    let foreign = store.0.join("distest-foreign");
    std::fs::write(&foreign, &elf).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o755)).unwrap();

    let started = Instant::now();
    let out = cluster
        .run_kv(&store.0, &["--time-limit", "5", "--seed", "9"])
        .env("DISTEST_BIN", &foreign)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not run there") && stderr.contains(&cluster.addresses[0]),
        "{}",
        text(&out)
    );
    // Refused at install, not after the health deadline (30 s) ran out.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the refusal took {:?}",
        started.elapsed()
    );
    cluster.assert_target_gone();
    cluster.down();
}

#[test]
fn clock_faults_are_refused_on_ssh_hosts_that_share_this_machines_kernel() {
    if sshd::skip_unless_root_with_openssh(
        "clock_faults_are_refused_on_ssh_hosts_that_share_this_machines_kernel",
    ) {
        return;
    }
    let cluster = SshCluster::up();
    let hosts = Path::new(HOSTS_DIR);
    let options = sshd::client_options(
        &hosts.join("client_key"),
        &hosts.join("known_hosts"),
        REMOTE_BASE_DIR.into(),
    );
    let nodes: Vec<Arc<dyn Remote>> = cluster
        .namespaces
        .iter()
        .map(|n| {
            let target: SshTarget = sshd::login(n.address(), SSHD_PORT).parse().unwrap();
            Arc::new(SshNode::connect(&target, &options).unwrap()) as Arc<dyn Remote>
        })
        .collect();
    let spec =
        |_: usize, p: &NodePaths| DaemonSpec::new("true", p.pid_file.clone(), p.log_file.clone());
    let daemon = ManagedDaemon::new(nodes, "raft-kv", Ok(()), Box::new(spec));
    // These hosts are namespaces of this machine: `date -s` on them would move this
    // machine's clock, so the clock nemesis must be told it cannot act, never SystemClock.
    for address in &cluster.addresses {
        match daemon.clock_support(address) {
            ClockSupport::Unsupported(why) => {
                assert!(why.contains("same boot id"), "{why}")
            }
            other => panic!("clock faults on {address} were offered as {other:?}"),
        }
    }
    drop(daemon);
    cluster.down();
}

#[test]
fn env_down_cleans_ssh_nodes_after_the_control_node_was_sigkilled_mid_run() {
    if sshd::skip_unless_root_with_openssh(
        "env_down_cleans_ssh_nodes_after_the_control_node_was_sigkilled_mid_run",
    ) {
        return;
    }
    let store = TempDir::new("ssh1-kill9-store");
    let cluster = SshCluster::up();
    let mut child = cluster
        .run_kv(&store.0, &["--nemesis", "partition,latency"])
        .args([
            "--time-limit",
            "120",
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a partition and a latency (rules and delayers) are in force together,
    // then kill the control node outright.
    let in_force = |chain: &str| (0..NODE_COUNT).any(|i| iptables_rules(i).contains(chain));
    let both = || in_force("DISTEST-PARTITION") && in_force("DISTEST-LATENCY");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && !both() {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        both(),
        "a partition and a latency were in force within 90 s"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let left = stdout_of(Command::new("pgrep").args(["-af", REMOTE_BASE_DIR]));
    assert!(
        !left.is_empty(),
        "the killed run left raft-kv running, as expected"
    );
    assert!(
        left.contains("latency-delayer"),
        "and a latency delayer: {left}"
    );

    let out = with_ssh_nodes(distest().args(["env", "down"]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    cluster.assert_target_gone();
    cluster.down();
}

#[test]
fn a_target_file_runs_over_ssh_from_its_uploaded_folder_and_is_wiped() {
    if sshd::skip_unless_root_with_openssh(
        "a_target_file_runs_over_ssh_from_its_uploaded_folder_and_is_wiped",
    ) {
        return;
    }
    let store = TempDir::new("ssh1-file");
    let cluster = SshCluster::up();
    let target = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/targets/tiny-register/target.toml");
    let mut cmd = distest();
    cmd.args(["run", "--workload", "register", "--target"])
        .arg(&target);
    let out = with_ssh_nodes(&mut cmd)
        .arg("--store")
        .arg(&store.0)
        .args([
            "--nemesis",
            "pause",
            "--time-limit",
            "10",
            "--nemesis-interval",
            "3",
        ])
        .args(["--concurrency", "4", "--seed", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = latest_run(&store.0);
    for address in &cluster.addresses {
        let node = run.join("nodes").join(address);
        assert!(node.join("server.log").is_file(), "daemon log of {address}");
        let extra = std::fs::read_to_string(node.join("server-extra.log"))
            .unwrap_or_else(|e| panic!("log_files of {address}: {e}"));
        // The server ran from the copy of the folder uploaded to the host, not from ours.
        let uploaded = format!("{REMOTE_BASE_DIR}/data/tiny-register-files/server.py");
        assert!(extra.contains(&uploaded), "{address}: {extra}");
    }
    for i in 0..NODE_COUNT {
        for gone in [
            "data/tiny-register",
            "data/tiny-register-files",
            "data/server.pid",
        ] {
            assert!(
                !cluster.disk(i).join(gone).exists(),
                "{gone} was not removed on {}",
                cluster.addresses[i]
            );
        }
    }
    cluster.down();
}

#[test]
fn a_run_after_a_sigkilled_ssh_run_cleans_the_nodes_first_and_is_valid() {
    if sshd::skip_unless_root_with_openssh(
        "a_run_after_a_sigkilled_ssh_run_cleans_the_nodes_first_and_is_valid",
    ) {
        return;
    }
    let store = TempDir::new("ssh1-rerun-store");
    let cluster = SshCluster::up();
    let mut first = cluster
        .run_kv(&store.0.join("first"), &["--nemesis", "partition"])
        .args([
            "--time-limit",
            "120",
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline
        && !(0..NODE_COUNT).any(|i| iptables_rules(i).contains("DISTEST-PARTITION"))
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        (0..NODE_COUNT).any(|i| iptables_rules(i).contains("DISTEST-PARTITION")),
        "a partition was in force within 90 s"
    );
    let old_pids: Vec<u32> = (0..NODE_COUNT)
        .filter_map(|i| {
            std::fs::read_to_string(cluster.disk(i).join("data/raft-kv.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
        })
        .collect();
    assert_eq!(old_pids.len(), NODE_COUNT);
    let marker = cluster
        .disk(0)
        .join("data/raft-kv/written-by-the-first-run");
    std::fs::write(&marker, "first").unwrap();
    first.kill().unwrap();
    first.wait().unwrap();

    // Same nodes, no `env down`: the second run cleans them before it starts.
    let out = cluster
        .run_kv(&store.0.join("second"), &["--nemesis", "partition"])
        .args([
            "--time-limit",
            "10",
            "--nemesis-interval",
            "1",
            "--seed",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("removed what an earlier run left on the SSH nodes"))
        .collect();
    assert_eq!(said.len(), 1, "one line: {stderr}");
    for pid in &old_pids {
        assert!(
            said[0].contains(&format!("raft-kv (pid {pid})")),
            "{stderr}"
        );
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))),
            "the first run's raft-kv {pid} survived"
        );
    }
    assert!(said[0].contains("fault rule chains"), "{stderr}");
    assert!(!marker.exists(), "the first run's data survived");
    cluster.assert_target_gone();
    for i in 0..NODE_COUNT {
        assert!(
            !cluster.disk(i).join("distest-run.json").exists(),
            "the second run removed its record on {}",
            cluster.addresses[i]
        );
    }
    cluster.down();
}

/// `--nemesis disk` on a target file over SSH: each host serves the daemon's `{data_dir}`
/// through lazyfs, started over SSH with the uploaded distest. mykv writing without fsync
/// loses acknowledged writes at a power failure (exit 1); fsyncing, nothing is lost (exit
/// 0). No lazyfs process, mount or data is left on any host.
#[test]
fn disk_faults_on_a_target_file_over_ssh_lose_exactly_what_was_not_fsynced() {
    if sshd::skip_unless_root_with_openssh(
        "disk_faults_on_a_target_file_over_ssh_lose_exactly_what_was_not_fsynced",
    ) {
        return;
    }
    let store = TempDir::new("ssh1-disk");
    let cluster = SshCluster::up();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/targets/mykv/my.toml");
    let run = |durable: &str| {
        let mut cmd = distest();
        cmd.args(["run", "--target"]).arg(&target);
        with_ssh_nodes(&mut cmd)
            .arg("--store")
            .arg(&store.0)
            .args(["--nemesis", "disk", "--nemesis-interval", "3"])
            .args(["--time-limit", "20", "--seed", "1", "--set"])
            .arg(format!("durable={durable}"))
            .output()
            .unwrap()
    };
    let unsynced = run("unsynced");
    assert_eq!(unsynced.status.code(), Some(1), "{}", text(&unsynced));
    let history = std::fs::read_to_string(latest_run(&store.0).join("history.jsonl")).unwrap();
    assert!(
        history
            .lines()
            .any(|l| l.contains(r#""f":"lose-unsynced""#) && l.contains("state.json")),
        "lazyfs on an SSH host dropped mykv's unsynced state"
    );
    let durable = run("1");
    assert_eq!(durable.status.code(), Some(0), "{}", text(&durable));
    let processes = stdout_of(Command::new("pgrep").args(["-af", "lazyfs"]));
    assert!(
        !processes.contains(REMOTE_BASE_DIR),
        "lazyfs left: {processes}"
    );
    for i in 0..NODE_COUNT {
        let left: Vec<String> = std::fs::read_dir(cluster.disk(i).join("data"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("mykv") || name.contains("lazyfs"))
            .collect();
        assert!(
            left.is_empty(),
            "left on {}: {left:?}",
            cluster.addresses[i]
        );
    }
    cluster.down();
}
