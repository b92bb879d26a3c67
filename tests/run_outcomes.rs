//! Verdicts a run must not give (issue 15), without root: an interrupted run is marked
//! interrupted everywhere and exits 2; a second signal skips the waits; a fault that was
//! never applied fails the run (exit 3, one sentence) and is never drawn as active; usage
//! errors exit 3; a rejected invocation writes no run directory and creates no namespace.

mod common;
use common::*;

use async_trait::async_trait;
use clap::Parser;
use distest::run::{NodesGuard, Provisioned, StopFlag};
use distest::targets::noop::Noop;
use distest::targets::Target;
use distest_nemeses::{ClockSupport, ExecOutput, NodeError, NodeShell, TargetControl};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `distest run --target noop` into `store` with `extra`, stdout and stderr piped.
fn spawn_noop(store: &Path, extra: &[&str]) -> Child {
    distest()
        .args([
            "run",
            "--target",
            "noop",
            "--concurrency",
            "2",
            "--seed",
            "7",
        ])
        .arg("--store")
        .arg(store)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Waits (bounded) until the newest run's history holds at least `ops` lines.
fn wait_for_ops(store: &Path, ops: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let lines = std::fs::canonicalize(store.join("latest"))
            .ok()
            .and_then(|run| std::fs::read_to_string(run.join("history.jsonl")).ok())
            .map(|h| h.lines().count())
            .unwrap_or(0);
        if lines >= ops {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the run recorded fewer than {ops} ops within 60 s");
}

#[test]
fn sigterm_mid_run_exits_2_and_the_run_is_marked_interrupted_everywhere() {
    let store = TempDir::new("outcome-sigterm");
    let junit = store.0.join("junit.xml");
    let child = spawn_noop(
        &store.0,
        &[
            "--time-limit",
            "60",
            "--rate",
            "200",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    wait_for_ops(&store.0, 20);
    let started = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it stopped promptly"
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("verdict: unknown (interrupted)"),
        "{stdout}"
    );
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("SIGTERM")).collect();
    assert_eq!(said.len(), 1, "one line for the signal: {stderr}");
    assert!(
        said[0].contains("healed") && said[0].contains("interrupted"),
        "{stderr}"
    );

    let run = latest_run(&store.0);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["interrupted"], true, "{results}");
    assert_eq!(results["valid"], "unknown", "{results}");
    let page = std::fs::read_to_string(run.join("index.html")).unwrap();
    assert!(
        page.contains("Interrupted: the run was cut short"),
        "the report says so"
    );
    let ls = distest()
        .args(["ls", "--store"])
        .arg(&store.0)
        .output()
        .unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("unknown (interrupted)"), "{ls}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<error type=\"interrupted\""), "{xml}");
    // Re-checking the run directory does not make the run whole.
    let check = distest().arg("check").arg(&run).output().unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
}

#[test]
fn a_second_signal_skips_the_recovery_wait_and_final_reads() {
    let store = TempDir::new("outcome-hurry");
    // The set workload waits --recovery-time after the heal, then reads every node.
    let child = spawn_noop(
        &store.0,
        &[
            "--workload",
            "set",
            "--time-limit",
            "60",
            "--recovery-time",
            "600",
            "--rate",
            "100",
        ],
    );
    wait_for_ops(&store.0, 20);
    let started = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the second signal skipped the 600 s recovery wait"
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("second SIGINT: skipping"), "{stderr}");
    let history = std::fs::read_to_string(latest_run(&store.0).join("history.jsonl")).unwrap();
    assert!(!history.contains("\"final\""), "no final reads were made");
    let results = std::fs::read_to_string(latest_run(&store.0).join("results.json")).unwrap();
    assert!(results.contains("\"interrupted\": true"), "{results}");
}

#[test]
fn usage_errors_exit_3_and_help_and_version_exit_0() {
    for args in [
        &["run", "--no-such-flag"][..],
        &["run", "--time-limit", "-1"],
        &["run", "--concurrency", "many"],
        &["check"],
        &["check", "x.jsonl", "--time-limit", "-1"],
        &["no-such-command"],
        &[],
    ] {
        let out = distest().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
    }
    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        let out = distest().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
}

/// Namespaces of cluster `id` on this machine (none may exist without root, too).
fn namespaces_of(id: &str) -> usize {
    let out = Command::new("ip").args(["netns", "list"]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with(&format!("dt-{id}-")))
            .count()
    })
    .unwrap_or(0)
}

#[test]
fn rejected_invocations_write_no_run_directory_and_create_no_namespace() {
    let dir = TempDir::new("outcome-rejected");
    let store = dir.0.join("store");
    let cases: [(&[&str], &str); 12] = [
        (&["--target", "nosuchdb"], "valid targets are"),
        (&["--workload", "nosuch"], "does not support workload"),
        (&["--nemesis", "nonsense"], "valid names are"),
        (&["--bug", "no-such-bug"], "its bugs are: stale-read"),
        (
            &["--target", "etcd", "--bug", "stale-read"],
            "has no bugs to switch on",
        ),
        (&["--set", "read-mode=fast"], "valid values are"),
        (&["--set", "nosuch=1"], "has no setting"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--time-limit=-1"], "is not a duration"),
        (&["--nemesis-interval", "0"], "--nemesis-interval"),
        (&["--nodes", "local:x"], "must be a number"),
        (
            &["--consistency-model", "nosuch", "--workload", "list-append"],
            "nosuch",
        ),
    ];
    for (args, says) in cases {
        let out = distest()
            .args(["run", "--cluster", "trz", "--subnet", "10.77.169.0/24"])
            .args([
                "--base-dir",
                dir.0.join("base").to_str().unwrap(),
                "--store",
            ])
            .arg(&store)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        assert!(!store.exists(), "{args:?} wrote {}", store.display());
        assert!(
            !dir.0.join("base").exists(),
            "{args:?} created the base directory"
        );
        assert_eq!(namespaces_of("trz"), 0, "{args:?} created a namespace");
    }
}

/// A node that accepts every command and does nothing: enough for a fault to be drawn
/// and performed against the target.
struct Quiet(String);

impl NodeShell for Quiet {
    fn name(&self) -> &str {
        &self.0
    }
    fn address(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
    fn exec(&self, _: &str, _: Duration) -> Result<ExecOutput, NodeError> {
        Ok(ExecOutput::default())
    }
    fn is_local(&self) -> bool {
        true
    }
}

/// The noop target, except that its processes cannot be killed: the kill fault passes
/// every check before the run and then fails each time it is tried.
struct Unkillable(Noop);

impl TargetControl for Unkillable {
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        Err(NodeError::Unreachable {
            node: node.to_string(),
            message: "the machine refused the signal".into(),
        })
    }
    fn start(&self, node: &str) -> Result<(), NodeError> {
        self.0.start(node)
    }
    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.0.pause(node)
    }
    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.0.resume(node)
    }
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn has_primaries(&self) -> bool {
        false
    }
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.0.clock_support(node)
    }
}

#[async_trait]
impl Target for Unkillable {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn node_names(&self) -> Vec<String> {
        self.0.node_names()
    }
    fn setup(&self) -> anyhow::Result<()> {
        self.0.setup()
    }
    fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
        self.0.teardown(wipe)
    }
    fn collect_logs(&self, node: usize, dest: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
        self.0.collect_logs(node, dest)
    }
    async fn client(
        &self,
        node: usize,
        workload: &str,
    ) -> anyhow::Result<Box<dyn distest_workloads::Client>> {
        self.0.client(node, workload).await
    }
}

#[derive(Parser)]
struct RunCli {
    #[command(flatten)]
    args: distest::commands::run::Args,
}

#[test]
fn a_fault_never_applied_fails_the_run_in_one_sentence_and_is_never_drawn() {
    let store = TempDir::new("outcome-unapplied");
    let cli = RunCli::try_parse_from([
        "distest",
        "--target",
        "noop",
        "--nemesis",
        "kill",
        "--nemesis-interval",
        "0.3",
        "--time-limit",
        "3",
        "--concurrency",
        "2",
        "--seed",
        "11",
        "--store",
        store.0.to_str().unwrap(),
    ])
    .unwrap();
    let cfg = cli.args.to_config().unwrap();
    let outcome = distest::run::execute(cfg, StopFlag::default(), |cfg, _log| {
        let names: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        cfg.test.nodes = names.clone();
        Ok(Provisioned {
            target: Arc::new(Unkillable(Noop::new(3))),
            shells: names
                .into_iter()
                .map(|n| Arc::new(Quiet(n)) as Arc<dyn NodeShell>)
                .collect(),
            guard: Box::new(()) as Box<dyn NodesGuard>,
        })
    })
    .unwrap();
    assert_eq!(outcome.exit_code, 3);
    let results = outcome.results.unwrap();
    let error = results.error.clone().unwrap();
    assert!(
        error.starts_with("the kill fault was requested but never applied (")
            && error.contains("the machine refused the signal")
            && error.ends_with("leave kill out of --nemesis"),
        "{error}"
    );
    assert!(!error.contains('\n'));
    assert_eq!(
        results.valid,
        distest_checkers::Validity::Unknown,
        "never valid"
    );

    let run = &outcome.run_dir;
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"f\":\"kill\"") && history.contains("the machine refused the signal"),
        "the failed starts are in the history"
    );
    let saved = std::fs::read_to_string(run.join("results.json")).unwrap();
    assert!(saved.contains("never applied"), "{saved}");
    let page = std::fs::read_to_string(run.join("index.html")).unwrap();
    assert!(
        !page.contains("class=\"band\" data-kind=\"kill\""),
        "no kill band"
    );
    assert!(
        !page.contains("class=\"node-fault\" data-kind=\"kill\""),
        "no kill lane"
    );
    assert!(page.contains("The run failed: the kill fault was requested but never applied"));
}
