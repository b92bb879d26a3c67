//! Nodes end to end, for real (root only; skipped with a printed reason otherwise): a local
//! cluster of network namespaces, and sshd started inside those namespaces so the SSH path
//! runs the very same `Remote` suite. Each test owns a cluster id and a /24 of 10.77.100-149
//! so tests run in parallel, and each asserts that nothing of its cluster is left behind.

mod common;

use common::sshd;
use common::TempDir;
use distest::nodes::cleanup::Leftovers;
use distest::nodes::local::{self, ClusterSpec, LocalCluster};
use distest::nodes::names::ClusterNames;
use distest::nodes::ssh::{SshNode, SshOptions, SshTarget};
use distest::nodes::{ensure_packages, DaemonSpec, NodeError, NodeShell, Remote, Signal};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_secs(10);
/// The test sshd listens on a non-default port so `[host]:port` known_hosts entries and
/// `--ssh-port` are exercised too.
const SSHD_PORT: u16 = 2222;

fn spec(id: &str, third_octet: u8, nodes: usize, base: &Path) -> ClusterSpec {
    ClusterSpec {
        cluster_id: id.to_string(),
        node_count: nodes,
        subnet: format!("10.77.{third_octet}.0/24").parse().unwrap(),
        base_dir: base.to_path_buf(),
    }
}

fn leftovers(id: &str) -> Leftovers {
    local::leftovers(&ClusterNames::new(id).unwrap()).unwrap()
}

fn assert_nothing_left(id: &str, base: &Path) {
    let left = leftovers(id);
    assert!(left.is_empty(), "cluster {id} left {left:?}");
    assert!(!base.join(id).exists(), "cluster {id} left its directory");
}

/// True while `pid` is a live, non-zombie process on this machine.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

fn proc_state(node: &dyn Remote, pid: u32) -> String {
    node.exec_ok(&format!("grep '^State:' /proc/{pid}/status"), SHORT)
        .unwrap()
        .stdout
}

/// What every `Remote` must do, identically in a namespace and over SSH.
fn remote_suite(node: &dyn Remote, scratch: &Path) {
    // exec: status, stdout and stderr are returned, non-zero is not an error.
    let out = node.exec("echo hi; echo err >&2; exit 7", SHORT).unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (7, "hi\n", "err\n")
    );
    assert_eq!(
        node.exec_ok("id -u", SHORT).unwrap().stdout.trim(),
        "0",
        "commands run as root"
    );
    match node.exec_ok("exit 3", SHORT) {
        Err(NodeError::Failed { status: 3, .. }) => {}
        other => panic!("exec_ok of a failing command gave {other:?}"),
    }
    let started = Instant::now();
    match node.exec("sleep 20", Duration::from_millis(300)) {
        Err(NodeError::Timeout { .. }) => {}
        other => panic!("a command past its timeout gave {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "timeout took {:?}",
        started.elapsed()
    );

    // Files go both ways unchanged, with their mode, into new directories.
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let local_in = scratch.join("in.bin");
    std::fs::write(&local_in, &payload).unwrap();
    std::fs::set_permissions(
        &local_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    let remote_file = node.data_dir().join("sub/dir/file.bin");
    node.upload(&local_in, &remote_file).unwrap();
    let check = format!("wc -c < {0} && stat -c %a {0}", remote_file.display());
    assert_eq!(node.exec_ok(&check, SHORT).unwrap().stdout, "70000\n750\n");
    let local_out = scratch.join("back/out.bin");
    node.download(&remote_file, &local_out).unwrap();
    assert_eq!(std::fs::read(&local_out).unwrap(), payload);
    assert!(node
        .download(&node.data_dir().join("missing"), &scratch.join("x"))
        .is_err());

    // A daemon: env reaches it, start is idempotent, pause/resume, graceful stop, log.
    let pid_file = node.data_dir().join("run/d.pid");
    let log_file = node.log_dir().join("d.log");
    let mut daemon = DaemonSpec::new("sh", pid_file.clone(), log_file.clone());
    daemon.args = vec![
        "-c".into(),
        "echo \"started $DT_MARK in $(pwd)\"; trap 'echo got-term; exit 0' TERM; while :; do sleep 0.05; done".into(),
    ];
    daemon.env = vec![("DT_MARK".into(), "x y'z".into())];
    daemon.cwd = Some(node.data_dir().to_path_buf());
    let pid = node.start_daemon(&daemon).unwrap();
    assert_eq!(
        node.start_daemon(&daemon).unwrap(),
        pid,
        "a running daemon is not started twice"
    );
    assert!(node.daemon_running(&pid_file).unwrap());
    assert!(node.signal_daemon(&pid_file, Signal::Stop).unwrap());
    assert!(proc_state(node, pid).contains("T"), "SIGSTOP must stop it");
    assert!(node.signal_daemon(&pid_file, Signal::Cont).unwrap());
    assert!(
        !proc_state(node, pid).contains("T"),
        "SIGCONT must resume it"
    );
    node.stop_daemon(&pid_file, Duration::from_secs(3)).unwrap();
    assert!(!node.daemon_running(&pid_file).unwrap());
    assert!(!node.signal_daemon(&pid_file, Signal::Term).unwrap());
    node.kill_daemon(&pid_file).unwrap();
    let log_copy = scratch.join("d.log");
    node.download(&log_file, &log_copy).unwrap();
    let log = std::fs::read_to_string(&log_copy).unwrap();
    let expected_start = format!("started x y'z in {}\n", node.data_dir().display());
    assert!(log.starts_with(&expected_start), "log: {log:?}");
    assert!(
        log.ends_with("got-term\n"),
        "SIGTERM must reach it first: {log:?}"
    );

    // SIGKILL: gone at once, restartable.
    let pid = node.start_daemon(&daemon).unwrap();
    node.kill_daemon(&pid_file).unwrap();
    assert!(!node.daemon_running(&pid_file).unwrap());
    let again = node.start_daemon(&daemon).unwrap();
    assert_ne!(again, pid);
    node.kill_daemon(&pid_file).unwrap();
}

#[test]
fn local_nodes_reach_each_other_by_name_run_daemons_and_down_leaves_nothing() {
    if sshd::skip_unless_root(
        "local_nodes_reach_each_other_by_name_run_daemons_and_down_leaves_nothing",
    ) {
        return;
    }
    let base = TempDir::new("local");
    let spec = spec("t100", 100, 3, &base.0);
    let ip_forward = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let forward_before = ip_forward();
    let cluster = LocalCluster::up(spec.clone()).unwrap();
    assert_eq!(
        ip_forward(),
        forward_before,
        "up must not change IP forwarding"
    );
    assert!(cluster.owns_cluster());
    let nodes = cluster.nodes();
    let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert_eq!(nodes[2].address().to_string(), "10.77.100.13");
    assert!(nodes.iter().all(|n| n.is_local()));

    let ping = nodes[0].exec("ping -c1 -W1 n3", SHORT).unwrap();
    assert!(ping.success(), "n1 cannot ping n3: {ping:?}");
    assert!(nodes[2].exec_ok("ping -c1 -W1 n1", SHORT).is_ok());
    // Only the subnet route: nothing inside can leave the machine.
    let routes = nodes[0].exec_ok("ip -4 route", SHORT).unwrap().stdout;
    let routes: Vec<&str> = routes.lines().collect();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert!(
        routes[0].starts_with("10.77.100.0/24 dev eth0"),
        "{routes:?}"
    );

    let scratch = TempDir::new("local-scratch");
    remote_suite(&*nodes[0], &scratch.0);
    // The real dpkg of this (Debian) machine, shared by all local nodes: present packages
    // need no install.
    ensure_packages(&*nodes[0], &["iptables", "iproute2"]).unwrap();

    // `up` again adopts the running cluster and leaves it up when dropped.
    let again = LocalCluster::up(spec.clone()).unwrap();
    assert!(!again.owns_cluster());
    drop(again);
    assert!(nodes[1].exec_ok("ping -c1 -W1 n2", SHORT).is_ok());

    // A daemon still running at `down` is killed with its namespace.
    let d = DaemonSpec::new(
        "sleep",
        nodes[1].data_dir().join("s.pid"),
        nodes[1].log_dir().join("s.log"),
    );
    let d = DaemonSpec {
        args: vec!["600".into()],
        ..d
    };
    let pid = nodes[1].start_daemon(&d).unwrap();
    assert!(process_alive(pid));
    drop(nodes);
    cluster.down().unwrap();
    assert!(
        !process_alive(pid),
        "down must kill processes in the namespaces"
    );
    assert_nothing_left("t100", &base.0);
}

#[test]
fn dropping_the_cluster_guard_removes_everything() {
    if sshd::skip_unless_root("dropping_the_cluster_guard_removes_everything") {
        return;
    }
    let base = TempDir::new("drop");
    let cluster = LocalCluster::up(spec("t101", 101, 2, &base.0)).unwrap();
    let n2 = cluster.nodes()[1].clone();
    let d = DaemonSpec {
        args: vec!["600".into()],
        ..DaemonSpec::new(
            "sleep",
            n2.data_dir().join("s.pid"),
            n2.log_dir().join("s.log"),
        )
    };
    let pid = n2.start_daemon(&d).unwrap();
    assert!(!leftovers("t101").is_empty());
    drop(cluster);
    assert!(!process_alive(pid));
    assert_nothing_left("t101", &base.0);
    // The node handle outlives the cluster; using it is an error, not a panic.
    match n2.exec("true", SHORT) {
        Err(NodeError::Unreachable { .. }) => {}
        other => panic!("exec on a removed node gave {other:?}"),
    }
}

#[test]
fn a_second_cluster_on_the_same_subnet_is_refused() {
    if sshd::skip_unless_root("a_second_cluster_on_the_same_subnet_is_refused") {
        return;
    }
    let base = TempDir::new("overlap");
    let first = LocalCluster::up(spec("t103", 103, 1, &base.0)).unwrap();
    let err = LocalCluster::up(spec("t104", 103, 1, &base.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlaps"), "{err}");
    assert!(
        leftovers("t104").is_empty(),
        "a refused up must create nothing"
    );
    let err = LocalCluster::up(spec("t103", 103, 2, &base.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already up"), "{err}");
    let other_base = TempDir::new("overlap-other");
    let err = LocalCluster::up(spec("t103", 103, 1, &other_base.0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already up with a layout not recorded"),
        "{err}"
    );
    drop(first);
    assert_nothing_left("t103", &base.0);
}

/// An ssh-agent holding one key, killed on drop.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent { child, socket };
        // The socket file appears at bind(), a moment before the agent listens: retry.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let added = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.socket)
                .output()
                .unwrap();
            if added.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "ssh-add kept failing: {added:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One local node running sshd, with a client key, a known_hosts file naming its host key
/// and options to reach it. Tears its cluster down on drop (also on panic).
struct SshFixture {
    // Field order is drop order: the cluster goes before the key directory it uses.
    cluster: Option<LocalCluster>,
    n1: Arc<dyn Remote>,
    keys: TempDir,
    base: TempDir,
    id: &'static str,
    client_key: PathBuf,
    known_hosts: PathBuf,
    /// `[address]:port`, as OpenSSH names a host on a non-default port in known_hosts.
    host_entry: String,
    sshd_pid_file: PathBuf,
    target: SshTarget,
    options: SshOptions,
}

impl SshFixture {
    fn new(id: &'static str, third_octet: u8) -> SshFixture {
        let base = TempDir::new(&format!("ssh-{id}"));
        let cluster = LocalCluster::up(spec(id, third_octet, 1, &base.0)).unwrap();
        let n1 = cluster.nodes()[0].clone();
        let keys = TempDir::new(&format!("ssh-keys-{id}"));
        let client_key = keys.0.join("client_key");
        let client_pub = sshd::keygen(&client_key);
        let sshd = sshd::start(&*n1, &keys.0, SSHD_PORT, &client_pub, None);
        let known_hosts = keys.0.join("known_hosts");
        let host_entry = sshd::host_entry(n1.address(), SSHD_PORT);
        std::fs::write(&known_hosts, format!("{host_entry} {}\n", sshd.host_pub)).unwrap();
        let options = sshd::client_options(&client_key, &known_hosts, keys.0.join("remote-base"));
        let target = sshd::login(n1.address(), SSHD_PORT).parse().unwrap();
        SshFixture {
            cluster: Some(cluster),
            n1,
            keys,
            base,
            id,
            client_key,
            known_hosts,
            host_entry,
            sshd_pid_file: sshd.pid_file,
            target,
            options,
        }
    }

    /// Runs `distest env status` against the node with `args` added.
    fn cli_status(
        &self,
        node: &str,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &Path)],
    ) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_distest"));
        cmd.args(["env", "status", "--node", node])
            .arg("--known-hosts")
            .arg(&self.known_hosts)
            .arg("--base-dir")
            .arg(self.keys.0.join("remote-base-cli"))
            .args(args)
            .env_remove("SSH_AUTH_SOCK");
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.output().unwrap()
    }

    /// Tears the cluster down and checks nothing of it is left.
    fn finish(mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.down().unwrap();
        }
        assert_nothing_left(self.id, &self.base.0);
    }
}

#[test]
fn ssh_nodes_pass_the_same_remote_suite_and_reconnect() {
    if sshd::skip_unless_root("ssh_nodes_pass_the_same_remote_suite_and_reconnect") {
        return;
    }
    let f = SshFixture::new("t102", 102);
    let node = Arc::new(SshNode::connect(&f.target, &f.options).unwrap());
    assert!(!node.is_local());
    assert_eq!(node.address(), f.n1.address());
    let scratch = TempDir::new("ssh-scratch");
    remote_suite(&*node, &scratch.0);

    // A dropped connection: kill sshd's per-connection processes (not the listener); the
    // next command reconnects by itself.
    let listener = f.n1.daemon_pid(&f.sshd_pid_file).unwrap().unwrap();
    let out = Command::new("ip")
        .args(["netns", "pids", "dt-t102-n1"])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
    {
        if pid as u32 != listener {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    assert_eq!(node.exec_ok("echo back", SHORT).unwrap().stdout, "back\n");

    // Concurrent commands on one node each get a session: they overlap, not queue.
    let started = Instant::now();
    let outs = distest::nodes::par_map(&[1, 2, 3, 4], |i| {
        node.exec_ok(&format!("sleep 1; echo {i}"), SHORT)
            .map(|o| o.stdout)
    });
    let outs: Vec<String> = outs.into_iter().map(Result::unwrap).collect();
    assert_eq!(outs, ["1\n", "2\n", "3\n", "4\n"]);
    assert!(
        // Queued one after another they would need at least 4 s.
        started.elapsed() < Duration::from_secs(4),
        "4 concurrent 1 s commands took {:?}",
        started.elapsed()
    );
    drop(node);
    f.finish();
}

#[test]
fn ssh_host_keys_and_authentication_are_checked() {
    if sshd::skip_unless_root("ssh_host_keys_and_authentication_are_checked") {
        return;
    }
    let f = SshFixture::new("t105", 105);
    let (target, options) = (&f.target, &f.options);
    let address = f.n1.address();

    // The CLI reaches SSH nodes with the flags `distest run` takes (port in the node name).
    let key_args = [
        std::ffi::OsStr::new("--json"),
        std::ffi::OsStr::new("--ssh-key"),
        f.client_key.as_os_str(),
    ];
    let status = f.cli_status(&sshd::login(address, SSHD_PORT), &key_args, &[]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["reachable"], true, "{rows}");

    // ssh-agent authentication (port from --ssh-port): no --ssh-key, no default keys in HOME.
    let empty_home = f.keys.0.join("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let port = SSHD_PORT.to_string();
    let port_args = [
        std::ffi::OsStr::new("--ssh-port"),
        std::ffi::OsStr::new(&port),
    ];
    let node = format!("root@{address}");
    let without = f.cli_status(&node, &port_args, &[("HOME", &empty_home)]);
    assert_eq!(without.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&without.stdout);
    assert!(
        stdout.contains("authentication as root") && stdout.contains("tried ssh-agent"),
        "{stdout}"
    );
    let agent = Agent::start(&f.keys.0, &f.client_key);
    let with = f.cli_status(
        &node,
        &port_args,
        &[("HOME", &empty_home), ("SSH_AUTH_SOCK", &agent.socket)],
    );
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stdout)
    );
    drop(agent);

    // Hashed known_hosts entries (`ssh-keygen -H`, HashKnownHosts) are understood.
    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&f.known_hosts)
        .output()
        .unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    assert!(std::fs::read_to_string(&f.known_hosts)
        .unwrap()
        .starts_with("|1|"));
    assert!(SshNode::connect(target, options).is_ok());

    // A changed host key is refused; so is an unknown one, unless asked otherwise.
    let other_pub = sshd::keygen(&f.keys.0.join("other_host_key"));
    std::fs::write(&f.known_hosts, format!("{} {other_pub}\n", f.host_entry)).unwrap();
    let err = SshNode::connect(target, options).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    std::fs::write(&f.known_hosts, "").unwrap();
    let err = SshNode::connect(target, options).unwrap_err().to_string();
    assert!(
        err.contains("is not in") && err.contains("SHA256:"),
        "{err}"
    );
    let insecure = SshOptions {
        accept_any_host_key: true,
        ..options.clone()
    };
    assert!(SshNode::connect(target, &insecure).is_ok());
    // A key sshd does not know is refused.
    let stranger = SshOptions {
        key_file: Some(f.keys.0.join("other_host_key")),
        ..insecure
    };
    let err = SshNode::connect(target, &stranger).unwrap_err().to_string();
    assert!(err.contains("authentication"), "{err}");
    f.finish();
}
