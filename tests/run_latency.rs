//! `distest run --nemesis latency` end to end on this kernel (no netem needed): the kv
//! target on a local cluster, and the history itself shows the fault: client ops sent to
//! an affected node while a latency window is open are slower, in the median, by at least
//! the configured delay than ops outside every window.
//!
//! Root only (skips otherwise). Run under the machine's netns lock:
//! `cargo test --test run_latency --no-run && flock /work/locks/netns.lock cargo test --test run_latency`.

mod common;
use common::*;

use serde_json::Value;
use std::collections::HashMap;

/// One latency window from the history: from its start's completion to its stop's
/// invocation, on `nodes`, with `delay_ms`.
#[derive(Debug)]
struct Window {
    opened_ns: u64,
    closing_ns: u64,
    /// From the start's invocation to the stop's completion: the fault may be partly in
    /// effect anywhere in here, so baseline ops stay out of it.
    span: (u64, u64),
    nodes: Vec<String>,
    delay_ms: f64,
    /// The completion of the op that closed the window.
    closed_by: Option<Value>,
}

/// A completed client op: node, invocation and completion times, outcome.
struct ClientOp {
    node: String,
    invoked_ns: u64,
    completed_ns: u64,
    ok: bool,
}

fn time(op: &Value) -> u64 {
    op["time"].as_u64().expect("every op has a time")
}

fn windows(ops: &[Value]) -> Vec<Window> {
    let nemesis: Vec<&Value> = ops.iter().filter(|op| op["process"] == "nemesis").collect();
    let mut windows: Vec<Window> = Vec::new();
    // The nemesis runs one op at a time: invocations and completions alternate.
    for pair in nemesis.chunks(2) {
        let [invoke, done] = pair else { break };
        assert_eq!(invoke["f"], done["f"], "{invoke} / {done}");
        if let Some(open) = windows.last_mut().filter(|w| w.closing_ns == u64::MAX) {
            // Any op after a start ends its window (a new start replaces the old latency).
            open.closing_ns = time(invoke);
            open.span.1 = time(done);
            open.closed_by = Some((*done).clone());
        }
        if done["f"] == "start-latency" {
            assert!(
                done.get("error").is_none(),
                "start-latency works on this kernel: {done}"
            );
            windows.push(Window {
                opened_ns: time(done),
                closing_ns: u64::MAX,
                span: (time(invoke), u64::MAX),
                nodes: serde_json::from_value(done["value"]["nodes"].clone()).unwrap(),
                delay_ms: done["value"]["delay_ms"].as_f64().unwrap(),
                closed_by: None,
            });
        }
    }
    windows
}

fn client_ops(ops: &[Value]) -> Vec<ClientOp> {
    let mut open: HashMap<u64, &Value> = HashMap::new();
    let mut done = Vec::new();
    for op in ops {
        let Some(process) = op["process"].as_u64() else {
            continue;
        };
        if op["type"] == "invoke" {
            open.insert(process, op);
        } else if let Some(invoke) = open.remove(&process) {
            done.push(ClientOp {
                node: invoke["node"].as_str().unwrap_or_default().to_string(),
                invoked_ns: time(invoke),
                completed_ns: time(op),
                ok: op["type"] == "ok",
            });
        }
    }
    done
}

/// `distest run --target kv --nemesis latency` on a local cluster `id` of three nodes.
fn latency_run(store: &std::path::Path, id: &str, octet: u8) -> std::process::Command {
    let mut cmd = run_on_cluster(store, id, octet);
    cmd.args([
        "--target",
        "kv",
        "--nemesis",
        "latency",
        "--nodes",
        "local:3",
    ]);
    cmd
}

fn median(mut values: Vec<f64>) -> f64 {
    netns::quantile(&mut values, 0.5)
}

#[test]
fn ops_on_nodes_under_latency_are_slower_by_at_least_the_delay() {
    common::require_root!();
    let store = temp_store("latency-run");
    let out = latency_run(&store, "la4", 172)
        .args([
            "--time-limit",
            "40",
            "--nemesis-interval",
            "4",
            "--seed",
            "3",
        ])
        .args(["--concurrency", "6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ops: Vec<Value> = history(&store)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let windows = windows(&ops);
    assert!(windows.len() >= 3, "latency windows opened: {windows:?}");
    // Every delayer of a window that lasted a while held the Raft traffic (heartbeats
    // flow every 100 ms), and its stop said so.
    for w in windows
        .iter()
        .filter(|w| w.closing_ns - w.opened_ns > 1_000_000_000)
    {
        let stop = w
            .closed_by
            .as_ref()
            .expect("every window is closed by heal at the latest");
        if stop["f"] != "stop-latency" {
            continue;
        }
        for node in &w.nodes {
            let stats = &stop["value"]["delayers"][node]["stats"];
            assert!(stats["delayed"].as_u64().unwrap_or(0) > 0, "{node}: {stop}");
        }
    }

    let ops = client_ops(&ops);
    let mut slowed = Vec::new();
    let mut baseline = Vec::new();
    for op in ops.iter().filter(|op| op.ok) {
        let latency_ms = (op.completed_ns - op.invoked_ns) as f64 / 1e6;
        if let Some(w) = windows.iter().find(|w| {
            op.invoked_ns >= w.opened_ns
                && op.completed_ns <= w.closing_ns
                && w.nodes.contains(&op.node)
        }) {
            slowed.push(latency_ms - w.delay_ms);
        } else if windows
            .iter()
            .all(|w| op.completed_ns < w.span.0 || op.invoked_ns > w.span.1)
        {
            baseline.push(latency_ms);
        }
    }
    assert!(
        slowed.len() >= 20,
        "ops on affected nodes inside windows: {}",
        slowed.len()
    );
    assert!(
        baseline.len() >= 20,
        "ops outside every window: {}",
        baseline.len()
    );
    let (slowed_len, baseline_len) = (slowed.len(), baseline.len());
    let excess = median(slowed);
    let base = median(baseline);
    eprintln!(
        "median of (latency − delay) under latency: {excess:.1} ms over {slowed_len} ops; median latency without: {base:.1} ms over {baseline_len} ops"
    );
    assert!(
        excess >= base,
        "ops under latency are slower by at least the delay: median(latency − delay) {excess:.1} ms < baseline median {base:.1} ms"
    );
    assert_cluster_gone("la4");
    let _ = std::fs::remove_file("/tmp/dt-test-nodes-la4/la4.run.lock");
    let _ = std::fs::remove_dir("/tmp/dt-test-nodes-la4");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn env_down_removes_the_delayers_and_rules_of_a_killed_run() {
    common::require_root!();
    let store = temp_store("latency-killed");
    let base = "/tmp/dt-test-nodes-la5";
    let mut child = latency_run(&store, "la5", 174)
        .args([
            "--time-limit",
            "120",
            "--nemesis-interval",
            "1",
            "--seed",
            "5",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until a latency is in effect, then kill the control node outright.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let started = loop {
        let history =
            std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap_or_default();
        if history
            .lines()
            .any(|l| l.contains("\"start-latency\"") && l.contains("\"queue\""))
        {
            break true;
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "a latency window opened before the deadline");
    let delayers = |ns_prefix: &str| -> usize {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for ns in $(ip netns list | cut -d' ' -f1 | grep '^{ns_prefix}'); do ip netns pids $ns; done | \
                 while read p; do tr '\\0' ' ' < /proc/$p/cmdline; echo; done | grep -c latency-delayer"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    assert!(
        delayers("dt-la5-") >= 1,
        "the killed run left a delayer behind"
    );
    let down = distest()
        .args(["env", "down", "--cluster", "la5", "--base-dir", base])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert_eq!(delayers("dt-la5-"), 0);
    assert_cluster_gone("la5");
    let _ = std::fs::remove_file(format!("{base}/la5.run.lock"));
    let _ = std::fs::remove_dir(base);
    std::fs::remove_dir_all(&store).unwrap();
}
