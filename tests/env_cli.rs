//! `distest env` through the built binary (root only; skipped with a printed reason
//! otherwise): idempotent up and down, cleanup after a SIGKILLed control process, cleanup on
//! SIGTERM, and the message for a user without root. Each test owns a cluster id and a /24.

use distest::nodes::cleanup::Leftovers;
use distest::nodes::local;
use distest::nodes::names::ClusterNames;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_distest");

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: it creates network namespaces, which needs root (CAP_NET_ADMIN); run `cargo test` as root to include it");
    true
}

/// A cluster id, subnet and base dir for one test; on drop (also on panic) removes the
/// cluster and the base dir.
struct TestCluster {
    id: &'static str,
    subnet: String,
    base: PathBuf,
}

impl TestCluster {
    fn new(id: &'static str, third_octet: u8) -> TestCluster {
        let base = std::env::temp_dir().join(format!("dt-test-env-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        TestCluster {
            id,
            subnet: format!("10.77.{third_octet}.0/24"),
            base,
        }
    }

    fn args(&self, action: &str) -> Vec<String> {
        let mut args: Vec<String> = vec!["env".into(), action.into()];
        args.extend(["--cluster", self.id, "--subnet", &self.subnet].map(String::from));
        args.push("--base-dir".into());
        args.push(self.base.display().to_string());
        args
    }

    fn run(&self, action: &str, extra: &[&str]) -> Output {
        Command::new(BIN)
            .args(self.args(action))
            .args(extra)
            .output()
            .unwrap()
    }

    fn spawn_up(&self, nodes: usize) -> std::process::Child {
        Command::new(BIN)
            .args(self.args("up"))
            .args(["--nodes", &nodes.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn leftovers(&self) -> Leftovers {
        local::leftovers(&ClusterNames::new(self.id).unwrap()).unwrap()
    }

    fn assert_nothing_left(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "cluster {} left {left:?}", self.id);
        assert!(
            !self.base.join(self.id).exists(),
            "cluster {} left its directory",
            self.id
        );
    }

    /// Waits until the cluster's first namespace exists, i.e. `up` is mid-setup.
    fn wait_for_first_namespace(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.leftovers().namespaces.is_empty() {
            assert!(
                Instant::now() < deadline,
                "env up created no namespace within 10 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = local::down(self.id, &self.base);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn env_up_twice_status_and_down_twice_leave_nothing() {
    if skip_unless_root("env_up_twice_status_and_down_twice_leave_nothing") {
        return;
    }
    let c = TestCluster::new("t110", 110);
    let first = c.run("up", &["--nodes", "2"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("cluster t110 created: 2 nodes in 10.77.110.0/24"));
    let second = c.run("up", &["--nodes", "2"]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("already up"),
        "{}",
        text(&second.stdout)
    );

    let status = c.run("status", &["--json"]);
    assert!(status.status.success());
    let clusters: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let ours = clusters
        .as_array()
        .unwrap()
        .iter()
        .find(|cl| cl["cluster_id"] == "t110")
        .expect("status lists the cluster");
    assert_eq!(ours["nodes"][1]["address"], "10.77.110.12/24");
    assert_eq!(ours["spec"]["subnet"], "10.77.110.0/24");

    let down = c.run("down", &[]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    c.assert_nothing_left();
    let again = c.run("down", &[]);
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("nothing to remove"));
}

#[test]
fn env_down_cleans_up_after_env_up_was_sigkilled_mid_setup() {
    if skip_unless_root("env_down_cleans_up_after_env_up_was_sigkilled_mid_setup") {
        return;
    }
    let c = TestCluster::new("t111", 111);
    let mut child = c.spawn_up(25);
    c.wait_for_first_namespace();
    child.kill().unwrap(); // SIGKILL: no handler, no guard runs
    child.wait().unwrap();
    let left = c.leftovers();
    assert!(
        !left.namespaces.is_empty() && !left.links.is_empty(),
        "{left:?}"
    );
    let down = c.run("down", &[]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    c.assert_nothing_left();
}

#[test]
fn sigterm_during_env_up_removes_the_half_built_cluster() {
    if skip_unless_root("sigterm_during_env_up_removes_the_half_built_cluster") {
        return;
    }
    let c = TestCluster::new("t112", 112);
    let mut child = c.spawn_up(25);
    c.wait_for_first_namespace();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_deadline(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(143), "exit code 128 + SIGTERM");
    c.assert_nothing_left();
}

#[test]
fn env_up_without_root_says_it_needs_root() {
    if skip_unless_root("env_up_without_root_says_it_needs_root") {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED env_up_without_root_says_it_needs_root: setpriv (util-linux) is not installed"
        );
        return;
    }
    let c = TestCluster::new("t113", 113);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
        ])
        .args(c.args("up"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo distest env up"),
        "{stderr}"
    );
    c.assert_nothing_left();
}

#[test]
fn env_rejects_a_bad_cluster_id_in_one_sentence() {
    let out = Command::new(BIN)
        .args(["env", "down", "--cluster", "Bad-Id", "--base-dir"])
        .arg(Path::new("/nonexistent/dt-base"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cluster id \"Bad-Id\" is invalid"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn concurrent_env_ups_of_one_cluster_build_it_once() {
    if skip_unless_root("concurrent_env_ups_of_one_cluster_build_it_once") {
        return;
    }
    let c = TestCluster::new("t114", 114);
    // All three start together; the base-dir lock makes one build and the others adopt.
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(BIN)
                .args(c.args("up"))
                .args(["--nodes", "3"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let created = outputs
        .iter()
        .filter(|o| text(&o.stdout).contains("created"))
        .count();
    assert_eq!(created, 1, "exactly one process builds the cluster");
    assert_eq!(c.leftovers().namespaces.len(), 3);
    let down = c.run("down", &[]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    c.assert_nothing_left();
}
