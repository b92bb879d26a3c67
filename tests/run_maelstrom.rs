//! `distest run --target maelstrom`: the example nodes of `examples/maelstrom/` on local
//! namespaces (root), and the router as a process (no root).
//!
//! The example matrix: every correct node is valid under `--nemesis partition`, and under
//! `--nemesis kill` where its workload survives restarts (state outside the node, or none);
//! every broken node is invalid within 3 seeded runs. Runs are short (8 s) and one at a
//! time (the namespaces of this file: clusters `ml1`-`ml3`, subnets 10.77.190-192.0/24).

mod common;

use common::{assert_cluster_gone, latest_run, require_root, run_on_cluster, text, TempDir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One namespace run at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/maelstrom")
        .join(name)
}

struct Outcome {
    code: i32,
    results: Value,
    run: PathBuf,
    output: String,
}

/// One short run of `bin` under `workload` and `nemesis` on three local nodes.
fn run_example(
    store: &Path,
    id: &str,
    octet: u8,
    bin: &str,
    workload: &str,
    nemesis: &str,
    seed: u64,
) -> Outcome {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run_on_cluster(store, id, octet)
        .args(["--target", "maelstrom", "--nodes", "local:3"])
        .arg("--bin")
        .arg(example(bin))
        .args(["--workload", workload, "--nemesis", nemesis])
        .args(["--seed", &seed.to_string()])
        .args([
            "--time-limit",
            "8",
            "--nemesis-interval",
            "2",
            "--recovery-time",
            "3",
        ])
        .args(["--concurrency", "6", "--op-timeout", "3"])
        .output()
        .unwrap();
    assert_cluster_gone(id);
    let run = latest_run(store);
    let results = std::fs::read_to_string(run.join("results.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    Outcome {
        code: out.status.code().unwrap_or(-1),
        results,
        run,
        output: text(&out),
    }
}

fn summary(o: &Outcome) -> String {
    let checkers = o.results["checkers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(n, v)| format!("{n}: {} {} {}", v["valid"], v["anomalies"], v["summary"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    format!(
        "exit {} in {}\n{checkers}\n{}",
        o.code,
        o.run.display(),
        o.output
    )
}

/// A run (seed 1) that must be valid, and in which the fault op `fault_f` happened.
fn run_valid(
    store: &Path,
    (id, octet): (&str, u8),
    bin: &str,
    workload: &str,
    nemesis: &str,
    fault_f: &str,
) -> Outcome {
    let o = run_example(store, id, octet, bin, workload, nemesis, 1);
    assert_eq!(o.code, 0, "{bin}: {}", summary(&o));
    let history = std::fs::read_to_string(o.run.join("history.jsonl")).unwrap();
    assert!(
        history.contains(&format!("\"f\":\"{fault_f}\"")),
        "{bin}: no {fault_f} happened"
    );
    o
}

#[test]
fn correct_examples_are_valid_under_partition() {
    require_root!();
    let store = TempDir::new("ml-partition");
    for (bin, workload) in [
        ("broadcast.py", "broadcast"),
        ("unique_ids.py", "unique-ids"),
        ("g_counter.py", "g-counter"),
        ("lin_kv_proxy.py", "lin-kv"),
    ] {
        let o = run_valid(
            &store.0,
            ("ml1", 190),
            bin,
            workload,
            "partition",
            "start-partition",
        );
        if bin == "broadcast.py" {
            // The run's messages: journal, statistics in the results, diagram in the report.
            assert!(o.run.join("messages.jsonl").is_file());
            let net = &o.results["checkers"]["net"]["evidence"];
            assert!(
                net["servers"]["msgs-per-op"].as_f64().unwrap() > 0.0,
                "{net}"
            );
            assert!(
                net["drops-by-reason"]["network"].as_u64().unwrap() > 0,
                "the partition dropped gossip: {net}"
            );
            assert!(o.run.join("messages.svg").is_file());
            let page = std::fs::read_to_string(o.run.join("index.html")).unwrap();
            assert!(page.contains("id=\"messages\""));
        }
    }
}

#[test]
fn correct_examples_that_survive_restarts_are_valid_under_kill() {
    require_root!();
    let store = TempDir::new("ml-kill");
    for (bin, workload) in [
        ("unique_ids.py", "unique-ids"),
        ("g_counter.py", "g-counter"),
        ("lin_kv_proxy.py", "lin-kv"),
    ] {
        let o = run_valid(&store.0, ("ml2", 191), bin, workload, "kill", "kill");
        let logs: String = ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                std::fs::read_to_string(o.run.join("nodes").join(n).join("maelstrom-router.log"))
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            logs.contains("killed on purpose"),
            "{bin}: the logs say nothing of the kill"
        );
        assert!(
            logs.contains("start #2"),
            "{bin}: no node was started again"
        );
    }
}

#[test]
fn broken_examples_are_invalid_within_three_seeded_runs() {
    require_root!();
    let store = TempDir::new("ml-broken");
    for (bin, workload) in [
        ("unique_ids_broken.py", "unique-ids"),
        ("broadcast_broken.py", "broadcast"),
        ("lin_kv_proxy_cached.py", "lin-kv"),
    ] {
        let mut last = None;
        for seed in 1..=3 {
            let o = run_example(&store.0, "ml3", 192, bin, workload, "partition", seed);
            let invalid = o.code == 1;
            last = Some(o);
            if invalid {
                break;
            }
        }
        let o = last.unwrap();
        assert_eq!(o.code, 1, "{bin} was never found invalid: {}", summary(&o));
        assert_eq!(o.results["valid"], false);
    }
}

#[test]
fn a_maelstrom_run_without_a_node_program_is_refused_before_provisioning() {
    let store = TempDir::new("ml-nobin");
    let out = common::distest()
        .args([
            "run",
            "--target",
            "maelstrom",
            "--workload",
            "echo",
            "--store",
        ])
        .arg(&store.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass --bin PATH"),
        "{}",
        text(&out)
    );
    let out = common::distest()
        .args([
            "run",
            "--target",
            "maelstrom",
            "--workload",
            "echo",
            "--bin",
            "/nonexistent/node",
            "--store",
        ])
        .arg(&store.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/node cannot be used"),
        "{}",
        text(&out)
    );
}

/// Kills the router process it holds if the test did not stop it.
struct RouterProcess(std::process::Child);

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_router_process_stops_on_sigterm_and_takes_its_node_program_with_it() {
    let dir = TempDir::new("ml-router-proc");
    let router = dir.0.join("maelstrom-router");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_distest"), &router).unwrap();
    let (peer, client) = (free_port(), free_port());
    let cfg = distest_maelstrom::router::Config {
        node: "n1".into(),
        node_ids: vec!["n1".into()],
        peers: Default::default(),
        services_at: None,
        peer_listen: format!("127.0.0.1:{peer}").parse().unwrap(),
        client_listen: format!("127.0.0.1:{client}").parse().unwrap(),
        journal: Some(dir.0.join("journal.jsonl")),
        log: dir.0.join("n1.log"),
        seed: 0,
        topology: None,
        program: example("echo.py"),
        args: vec![],
        env: vec![],
        init_timeout: Duration::from_secs(10),
    };
    let mut proc = RouterProcess(
        Command::new(&router)
            .args(distest_maelstrom::router::args::render(&cfg))
            .spawn()
            .unwrap(),
    );
    let addr = cfg.client_listen;
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        match distest_maelstrom::router::control::request(addr, "start", Duration::from_secs(10)) {
            Ok(answer) => break answer,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the router never answered: {e}"),
        }
    };
    let node_pid = started["pid"].as_i64().unwrap() as i32;
    let alive = |pid: i32| {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    assert!(alive(node_pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(proc.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = proc.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !alive(node_pid)
    });
    assert!(gone, "the node program outlived its router");
    let journal = std::fs::read_to_string(dir.0.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"type\":\"init_ok\""),
        "the journal was flushed: {journal}"
    );
    let log = std::fs::read_to_string(dir.0.join("n1.log")).unwrap();
    assert!(log.contains("stopping on signal 15"), "{log}");
}
