//! Helpers shared by the end-to-end tests: temp stores, root checks, reading a run's
//! results. Each test binary uses a subset, hence the `dead_code` allowance.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod netns;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `distest` binary under test.
pub fn distest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_distest"))
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Returns from the test, saying why, unless it runs as root.
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root to build network namespaces (run the tests as root)");
            return;
        }
    };
}
pub(crate) use require_root;

/// A fresh store directory named after the test and this process; the test removes it
/// once it passed (a failed test leaves it for a look).
pub fn temp_store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dt-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A [`temp_store`] removed on drop, also when the test panics: for directories of node
/// state, keys and sshd files, which a failed test would only leave in the way of the next.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir(temp_store(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command's stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The newest run of `store` (`store/latest`, resolved).
pub fn latest_run(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).expect("store/latest points at the run")
}

/// The newest run's results.json.
pub fn results(store: &Path) -> serde_json::Value {
    let run = latest_run(store);
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

/// The newest run's history.jsonl, as text.
pub fn history(store: &Path) -> String {
    std::fs::read_to_string(latest_run(store).join("history.jsonl")).unwrap()
}

/// `distest run` on the local cluster `id` in 10.77.<subnet>.0/24 (base directory
/// /tmp/dt-test-nodes-<id>), storing into `store`; the caller adds the run's options.
pub fn run_on_cluster(store: &Path, id: &str, subnet: u8) -> Command {
    let mut cmd = distest();
    cmd.arg("run")
        .args(["--cluster", id, "--subnet", &format!("10.77.{subnet}.0/24")])
        .args(["--base-dir", &format!("/tmp/dt-test-nodes-{id}")])
        .arg("--store")
        .arg(store);
    cmd
}

/// Nothing of local cluster `id` remains: namespaces, links, processes in them, mounts
/// (lazyfs) under its directory.
pub fn assert_cluster_gone(id: &str) {
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.contains(&format!("dt-{id}-")),
        "namespaces left: {netns}"
    );
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&format!("dt{id}")), "links left: {links}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&format!("dt-test-nodes-{id}/")))
        .collect();
    assert!(left.is_empty(), "mounts left (lazyfs?): {left:?}");
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.contains(&format!("dt-test-nodes-{id}")),
        "processes left: {ps}"
    );
}
