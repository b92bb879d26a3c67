//! Faults on the real host: iptables partitions and loss between two network namespaces,
//! and libfaketime reading our offset file. (Latency needs the distest binary as its
//! delayer: its host test is the workspace's `tests/latency_host.rs`.)
//!
//! Namespace tests need root and skip with a printed reason otherwise. Everything they
//! create (namespaces `dtnm-*`, veths inside them, temp dirs `dt-nemeses-*`) is removed by
//! RAII guards, also when an assertion fails half-way.

use distest_nemeses::clock::{self, Clock};
use distest_nemeses::loss::{self, Loss};
use distest_nemeses::partition::{self, Partition};
use distest_nemeses::{
    ClockSupport, ExecOutput, FaultOp, Nemesis, NemesisContext, NodeError, NodeShell, TargetControl,
};
use serde_json::json;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Poll interval while waiting for a command to exit.
const POLL: Duration = Duration::from_millis(5);

/// Runs `argv` to completion or until `timeout`, then kills it.
fn run(argv: &[&str], timeout: Duration) -> Result<ExecOutput, String> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {}: {e}", argv[0]))?;
    // Read both pipes on their own threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{}` timed out after {timeout:?}", argv.join(" ")));
        }
        std::thread::sleep(POLL);
    };
    Ok(ExecOutput {
        status: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn sh(command: &str) -> ExecOutput {
    run(&["sh", "-c", command], Duration::from_secs(10)).expect("sh runs")
}

/// A node that is a network namespace on this host (or the host itself: `netns` None).
struct LocalShell {
    name: String,
    netns: Option<String>,
    address: IpAddr,
}

impl NodeShell for LocalShell {
    fn name(&self) -> &str {
        &self.name
    }
    fn address(&self) -> IpAddr {
        self.address
    }
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        let mut argv = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        argv.extend(["sh", "-c", command]);
        run(&argv, timeout).map_err(|message| NodeError::Unreachable {
            node: self.name.clone(),
            message,
        })
    }
    fn is_local(&self) -> bool {
        true
    }
}

/// A target with nothing but a clock: process faults are not what these tests exercise.
struct ClockOnly(ClockSupport);

impl TargetControl for ClockOnly {
    fn kill(&self, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "this test target has no process".into(),
        ))
    }
    fn start(&self, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "this test target has no process".into(),
        ))
    }
    fn pause(&self, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "this test target has no process".into(),
        ))
    }
    fn resume(&self, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "this test target has no process".into(),
        ))
    }
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn clock_support(&self, _: &str) -> ClockSupport {
        self.0.clone()
    }
}

fn is_root() -> bool {
    sh("id -u").stdout.trim() == "0"
}

fn have(tool: &str) -> bool {
    sh(&format!("command -v {tool}")).success()
}

/// Two namespaces joined by a veth pair; deleted on drop (which deletes the veths too).
struct NetnsPair {
    names: [String; 2],
    addresses: [IpAddr; 2],
}

impl NetnsPair {
    fn create(names: [&str; 2], hosts: [u8; 2]) -> NetnsPair {
        let pair = NetnsPair {
            names: names.map(str::to_string),
            addresses: hosts.map(|h| IpAddr::from([10, 77, 240, h])),
        };
        // Leftovers of an earlier run killed before its guard ran: ours by name.
        pair.delete();
        let [a, b] = &pair.names;
        let script = format!(
            "ip netns add {a} && ip netns add {b} && \
             ip link add {a}-v netns {a} type veth peer name {b}-v netns {b} && \
             ip -n {a} addr add {}/24 dev {a}-v && ip -n {b} addr add {}/24 dev {b}-v && \
             ip -n {a} link set {a}-v up && ip -n {b} link set {b}-v up && \
             ip -n {a} link set lo up && ip -n {b} link set lo up",
            pair.addresses[0], pair.addresses[1]
        );
        let out = sh(&script);
        assert!(out.success(), "could not set up namespaces: {}", out.stderr);
        pair
    }

    fn delete(&self) {
        for ns in &self.names {
            sh(&format!("ip netns del {ns} 2>/dev/null"));
        }
    }

    fn shells(&self) -> Vec<Arc<dyn NodeShell>> {
        (0..2)
            .map(|i| {
                Arc::new(LocalShell {
                    name: format!("n{}", i + 1),
                    netns: Some(self.names[i].clone()),
                    address: self.addresses[i],
                }) as Arc<dyn NodeShell>
            })
            .collect()
    }

    fn ctx(&self) -> NemesisContext {
        NemesisContext {
            nodes: self.shells(),
            target: Arc::new(ClockOnly(ClockSupport::Unsupported("no clock here".into()))),
            seed: 1,
        }
    }

    /// Whether the first namespace reaches the second with one ping (1 s deadline).
    fn ping_ok(&self) -> bool {
        sh(&format!(
            "ip netns exec {} ping -c 1 -W 1 {}",
            self.names[0], self.addresses[1]
        ))
        .success()
    }

    /// Our rules and chains in either namespace, as iptables-save prints them.
    fn our_rules(&self) -> Vec<String> {
        self.names
            .iter()
            .flat_map(|ns| {
                sh(&format!("ip netns exec {ns} iptables-save"))
                    .stdout
                    .lines()
                    .filter(|l| l.contains("DISTEST") || l.contains("distest"))
                    .map(|l| format!("{ns}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        self.delete();
    }
}

fn skip_unless_root_with(tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!("skipped: needs root to create network namespaces");
        return true;
    }
    if let Some(tool) = tools.iter().find(|t| !have(t)) {
        eprintln!("skipped: `{tool}` is not installed");
        return true;
    }
    false
}

#[test]
fn partition_between_namespaces_blocks_ping_until_heal_removes_every_rule() {
    if skip_unless_root_with(&["ip", "iptables", "iptables-save", "ping"]) {
        return;
    }
    let pair = NetnsPair::create(["dtnm-a", "dtnm-b"], [1, 2]);
    assert!(
        pair.ping_ok(),
        "namespaces must reach each other before the fault"
    );
    let mut nemesis = Partition::new(&pair.ctx());
    let done = nemesis
        .invoke(&FaultOp::new(partition::START, json!({"shape": "halves"})))
        .expect("partition starts");
    assert_eq!(done["grudge"], json!({"n1": ["n2"], "n2": ["n1"]}));
    assert!(!pair.ping_ok(), "ping must fail while partitioned");
    assert!(!pair.our_rules().is_empty());

    let healed = nemesis.heal();
    assert_eq!(healed.len(), 1);
    assert!(healed[0].1.is_ok(), "{:?}", healed[0].1);
    assert!(pair.ping_ok(), "ping must work again after heal");
    assert_eq!(pair.our_rules(), Vec::<String>::new());
    assert!(nemesis.heal().is_empty(), "a second heal does nothing");
}

#[test]
fn healing_a_partition_leaves_packet_loss_in_place_until_its_own_heal() {
    if skip_unless_root_with(&["ip", "iptables", "iptables-save", "ping"]) {
        return;
    }
    let pair = NetnsPair::create(["dtnm-c", "dtnm-d"], [3, 4]);
    let ctx = pair.ctx();
    let mut loss = Loss::new(&ctx);
    let mut partition = Partition::new(&ctx);
    loss.invoke(&FaultOp::new(
        loss::START,
        json!({"nodes": ["n2"], "probability": 1.0}),
    ))
    .expect("loss starts");
    partition
        .invoke(&FaultOp::new(
            partition::START,
            json!({"shape": "isolate-one"}),
        ))
        .expect("partition starts");
    assert!(partition.heal()[0].1.is_ok());
    assert!(!pair.ping_ok(), "100% loss must still drop the ping");
    assert!(loss.heal()[0].1.is_ok());
    assert!(pair.ping_ok());
    assert_eq!(pair.our_rules(), Vec::<String>::new());
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("dt-nemeses-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `date +%s.%N` under libfaketime reading `file` minus the real time around it, in ms,
/// and how uncertain that is (half the real time the measurement took, plus 50 ms), so a
/// loaded machine widens the tolerance instead of failing the test.
fn faked_minus_real_ms(file: &Path) -> (i64, i64) {
    let read = |preload: bool| -> f64 {
        let env = if preload {
            format!(
                "LD_PRELOAD={LIBFAKETIME} FAKETIME_TIMESTAMP_FILE={} FAKETIME_NO_CACHE=1 ",
                file.display()
            )
        } else {
            String::new()
        };
        let out = sh(&format!("{env}date +%s.%N"));
        out.stdout.trim().parse().expect("date prints seconds")
    };
    let real_before = read(false);
    let faked = read(true);
    let real_after = read(false);
    let diff_ms = ((faked - (real_before + real_after) / 2.0) * 1000.0).round() as i64;
    let uncertainty_ms = ((real_after - real_before) * 500.0).round() as i64 + 50;
    (diff_ms, uncertainty_ms)
}

/// Asserts the faked clock is `expected_ms` ahead of the real one.
fn assert_offset(file: &Path, expected_ms: i64, what: &str) {
    let (diff_ms, uncertainty_ms) = faked_minus_real_ms(file);
    assert!(
        (diff_ms - expected_ms).abs() <= uncertainty_ms,
        "{what}: date moved by {diff_ms} ms, expected {expected_ms} ± {uncertainty_ms}"
    );
}

#[test]
fn faketime_offset_file_moves_date_under_libfaketime() {
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!("skipped: libfaketime is not installed at {LIBFAKETIME}");
        return;
    }
    let dir = TempDir::new("faketime");
    let file = dir.0.join("faketime");
    let host = Arc::new(LocalShell {
        name: "n1".into(),
        netns: None,
        address: IpAddr::from([127, 0, 0, 1]),
    });
    let ctx = NemesisContext {
        nodes: vec![host],
        target: Arc::new(ClockOnly(ClockSupport::FaketimeFile(file.clone()))),
        seed: 1,
    };
    let mut nemesis = Clock::new(&ctx);
    let bump = |ms: i64| FaultOp::new(clock::BUMP, json!({"nodes": ["n1"], "delta_ms": ms}));
    nemesis.invoke(&bump(3_600_000)).expect("bump");
    assert_offset(&file, 3_600_000, "+1 h");
    nemesis
        .invoke(&bump(-3_601_500))
        .expect("bump back past zero");
    assert_offset(&file, -1_500, "-1.5 s");
    nemesis
        .invoke(&FaultOp::new(
            clock::SKEW,
            json!({"offsets_ms": {"n1": -7_200_000}}),
        ))
        .expect("skew");
    assert_offset(&file, -7_200_000, "-2 h");
    let healed = nemesis.heal();
    assert!(healed[0].1.is_ok(), "{:?}", healed[0].1);
    assert_offset(&file, 0, "after reset");
}

#[test]
fn a_running_process_under_libfaketime_sees_the_offset_change() {
    if !Path::new(LIBFAKETIME).exists() || !have("perl") {
        eprintln!("skipped: needs libfaketime at {LIBFAKETIME} and perl");
        return;
    }
    let dir = TempDir::new("faketime-live");
    let file = dir.0.join("faketime");
    std::fs::write(&file, format!("{}\n", clock::faketime_spec(0))).expect("write offset");
    // One process reads its clock, sleeps 1.5 s of real time, reads again; meanwhile the
    // offset jumps by a minute. With FAKETIME_NO_CACHE it sees the jump at once.
    let script = format!(
        "LD_PRELOAD={LIBFAKETIME} FAKETIME_TIMESTAMP_FILE={} FAKETIME_NO_CACHE=1 \
         perl -e 'print time(), \"\\n\"; select(undef, undef, undef, 1.5); print time(), \"\\n\"'",
        file.display()
    );
    let child = std::thread::spawn(move || sh(&script));
    std::thread::sleep(Duration::from_millis(500));
    let spec = clock::faketime_spec(60_000);
    let tmp = dir.0.join("faketime.tmp");
    std::fs::write(&tmp, format!("{spec}\n")).expect("write offset");
    std::fs::rename(&tmp, &file).expect("replace offset");
    let out = child.join().expect("perl ran");
    let times: Vec<i64> = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(
        times.len(),
        2,
        "perl printed {:?} / {:?}",
        out.stdout,
        out.stderr
    );
    let jump_s = times[1] - times[0];
    assert!(
        (60..=63).contains(&jump_s),
        "clock moved {jump_s} s, expected about 61"
    );
}

#[test]
fn strobe_flips_the_faketime_file_and_ends_on_the_base_offset() {
    let dir = TempDir::new("strobe");
    let file = dir.0.join("faketime");
    let host = Arc::new(LocalShell {
        name: "n1".into(),
        netns: None,
        address: IpAddr::from([127, 0, 0, 1]),
    });
    let ctx = NemesisContext {
        nodes: vec![host],
        target: Arc::new(ClockOnly(ClockSupport::FaketimeFile(file.clone()))),
        seed: 1,
    };
    let mut nemesis = Clock::new(&ctx);
    nemesis
        .invoke(&FaultOp::new(
            clock::SKEW,
            json!({"offsets_ms": {"n1": 2_000}}),
        ))
        .expect("skew");
    let started = Instant::now();
    let done = nemesis
        .invoke(&FaultOp::new(
            clock::STROBE,
            json!({"nodes": ["n1"], "delta_ms": 500, "period_ms": 5, "duration_ms": 400}),
        ))
        .expect("strobe runs");
    let took = started.elapsed();
    let flips = done["flips"]["n1"].as_i64().expect("flips reported");
    // 400 ms at 5 ms per half-flip allows 40 flips; process start-up makes it fewer.
    assert!((1..=40).contains(&flips), "{done}");
    assert!(
        took < Duration::from_secs(3),
        "strobe overran its duration: {took:?}"
    );
    let spec = std::fs::read_to_string(&file).expect("offset file");
    assert_eq!(spec.trim(), "+2.000", "strobe must end on the base offset");
    assert!(!dir.0.join("faketime.distest-tmp").exists());
    assert!(nemesis.heal()[0].1.is_ok());
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "+0.000");
}

#[test]
fn system_clock_bump_computes_the_new_time_from_the_nodes_clock() {
    // A stand-in `date` first on PATH: prints a fixed now, records what it is asked to set.
    let dir = TempDir::new("sysclock");
    let log = dir.0.join("set.log");
    let fake_date = format!(
        "#!/bin/sh\nif [ \"$1\" = \"+%s%N\" ]; then echo 1700000000123456789; else echo \"$@\" >> {}; fi\n",
        log.display()
    );
    let script = dir.0.join("date");
    std::fs::write(&script, fake_date).expect("write fake date");
    assert!(sh(&format!("chmod +x {}", script.display())).success());
    for (delta_ms, expected) in [
        (250, "-u -s @1700000000.373456789"),
        (-500, "-u -s @1699999999.623456789"),
        (86_400_000, "-u -s @1700086400.123456789"),
    ] {
        let _ = std::fs::remove_file(&log);
        let command = clock::system_bump_command(delta_ms);
        let out = sh(&format!("PATH={}:$PATH; {command}", dir.0.display()));
        assert!(out.success(), "{}", out.stderr);
        assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), expected);
    }
}

#[test]
fn a_strobe_that_cannot_write_its_file_fails_instead_of_counting_flips() {
    let dir = TempDir::new("strobe-fail");
    // A directory that does not exist: every write fails.
    let file = dir.0.join("missing").join("faketime");
    let host = Arc::new(LocalShell {
        name: "n1".into(),
        netns: None,
        address: IpAddr::from([127, 0, 0, 1]),
    });
    let ctx = NemesisContext {
        nodes: vec![host],
        target: Arc::new(ClockOnly(ClockSupport::FaketimeFile(file))),
        seed: 1,
    };
    let mut nemesis = Clock::new(&ctx);
    let err = nemesis
        .invoke(&FaultOp::new(
            clock::STROBE,
            json!({"nodes": ["n1"], "delta_ms": 500, "period_ms": 5, "duration_ms": 200}),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("strobe-clock"), "{err}");
}

#[test]
fn leftovers_of_a_run_that_never_healed_are_cleared() {
    if skip_unless_root_with(&["ip", "iptables", "iptables-save", "ping"]) {
        return;
    }
    let pair = NetnsPair::create(["dtnm-g", "dtnm-h"], [7, 8]);
    {
        // A run that dies mid-fault: its nemesis is dropped without a heal.
        let ctx = pair.ctx();
        let mut partition = Partition::new(&ctx);
        let mut loss = Loss::new(&ctx);
        partition
            .invoke(&FaultOp::new(partition::START, json!({"shape": "halves"})))
            .expect("partition starts");
        loss.invoke(&FaultOp::new(
            loss::START,
            json!({"nodes": ["n1"], "probability": 0.5}),
        ))
        .expect("loss starts");
    }
    assert!(!pair.ping_ok());
    for (node, outcome) in distest_nemeses::clear_leftovers(&pair.shells()) {
        assert!(outcome.is_ok(), "{node}: {outcome:?}");
    }
    assert!(pair.ping_ok());
    assert_eq!(pair.our_rules(), Vec::<String>::new());
}
