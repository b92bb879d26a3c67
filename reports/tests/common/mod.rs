//! Test fixtures: temporary run directories written by hand (test.json, history.jsonl,
//! results.json, node logs), so report tests need no cluster.
#![allow(dead_code)]

use distest_checkers::format::write_jsonl_line;
use distest_checkers::{Op, OpType, Process};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop (also when a test panics).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "dt-reports-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Strings that break HTML, attributes, SVG or CDATA when not escaped.
pub const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "</svg><script>alert(2)</script>",
    "]]><script>alert(3)</script>",
];

/// A small deterministic generator (xorshift), so fixtures need no seed plumbing.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the generated history looks like.
pub struct HistorySpec {
    pub pairs: usize,
    pub concurrency: u64,
    /// Client values include the hostile strings.
    pub hostile_values: bool,
    /// Nemesis: a partition from 20% to 40% of the run, kill n2 from 50% to 60%,
    /// a clock bump on n3 at 70% that is never reset.
    pub faults: bool,
    pub seed: u64,
}

impl Default for HistorySpec {
    fn default() -> Self {
        HistorySpec {
            pairs: 600,
            concurrency: 5,
            hostile_values: false,
            faults: true,
            seed: 7,
        }
    }
}

/// Ops of a register workload (read/write/cas) in time order, with dense indices.
pub fn generate(spec: &HistorySpec) -> Vec<Op> {
    let mut rng = Rng::new(spec.seed);
    let mut ops: Vec<(u64, u64, Op)> = Vec::with_capacity(spec.pairs * 2 + 16);
    let mut seq = 0u64;
    let mut free_at = vec![0u64; spec.concurrency as usize];
    let mut process_of: Vec<u64> = (0..spec.concurrency).collect();
    let mut next_process = spec.concurrency;
    let per_op_ns = 2_000_000u64; // 500 ops/s per process before latency
    let end_guess = spec.pairs as u64 * per_op_ns / spec.concurrency.max(1);
    let in_partition = |t: u64| t > end_guess / 5 && t < end_guess * 2 / 5;
    for i in 0..spec.pairs {
        let slot = (0..free_at.len())
            .min_by_key(|&s| free_at[s])
            .expect("concurrency > 0");
        let t = free_at[slot] + rng.below(per_op_ns);
        let f = ["read", "write", "cas"][rng.below(3) as usize];
        let value = match f {
            "read" => Value::Null,
            "write" => json!(rng.below(5)),
            _ => json!([rng.below(5), rng.below(5)]),
        };
        let value = if spec.hostile_values && i % 50 == 3 {
            json!(HOSTILE[i / 50 % HOSTILE.len()])
        } else {
            value
        };
        let mut latency = 200_000 + rng.below(3_000_000);
        if spec.faults && in_partition(t) {
            latency += rng.below(40_000_000);
        }
        let roll = rng.below(100);
        let kind = match (f, roll) {
            (_, 0..=1) => OpType::Info,
            ("cas", 2..=30) => OpType::Fail,
            (_, 2..=3) => OpType::Fail,
            _ => OpType::Ok,
        };
        let p = Process::Client(process_of[slot]);
        let mut inv = Op::invoke(p, f, value.clone()).with_time(t);
        inv.node = Some(format!("n{}", slot % 3 + 1));
        let done_value = if f == "read" && kind == OpType::Ok {
            json!(rng.below(5))
        } else {
            value
        };
        let mut done = inv.complete(kind, done_value).with_time(t + latency);
        if kind == OpType::Fail {
            done.error = Some(json!("not-leader"));
        }
        ops.push((t, seq, inv));
        ops.push((t + latency, seq + 1, done));
        seq += 2;
        free_at[slot] = t + latency;
        if kind == OpType::Info {
            process_of[slot] = next_process;
            next_process += 1;
        }
    }
    if spec.faults {
        let mut nem = |t: u64, f: &str, value: Value| {
            let mut inv = Op::invoke(Process::Nemesis, f, Value::Null).with_time(t);
            inv.kind = OpType::Info;
            let done = Op {
                value,
                time: t + 1_000_000,
                ..inv.clone()
            };
            ops.push((t, seq, inv));
            ops.push((t + 1_000_000, seq + 1, done));
            seq += 2;
        };
        // Completion values shaped as distest-nemeses writes them.
        nem(
            end_guess / 5,
            "start-partition",
            json!({"shape": "isolate-one", "grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}}),
        );
        nem(
            end_guess * 2 / 5,
            "stop-partition",
            json!({"healed": ["n1", "n2", "n3"]}),
        );
        nem(
            end_guess / 2,
            "kill",
            json!({"targets": "one", "nodes": ["n2"]}),
        );
        nem(end_guess * 3 / 5, "start", json!({"nodes": ["n2"]}));
        nem(
            end_guess * 7 / 10,
            "bump-clock",
            json!({"offsets_ms": {"n3": 250}}),
        );
    }
    ops.sort_by_key(|(t, s, _)| (*t, *s));
    ops.into_iter()
        .enumerate()
        .map(|(i, (_, _, mut op))| {
            op.index = i as u64;
            op
        })
        .collect()
}

pub fn write_history(dir: &Path, ops: &[Op]) {
    let mut buf = Vec::with_capacity(ops.len() * 100);
    for op in ops {
        write_jsonl_line(op, &mut buf);
    }
    std::fs::write(dir.join("history.jsonl"), buf).expect("write history");
}

pub const STARTED_AT: &str = "2026-11-25T08:00:00Z";

pub fn test_json(nemesis: &str, seed: u64) -> Value {
    json!({
        "target": "kv", "workload": "register", "nemesis": [nemesis],
        "nodes": ["n1", "n2", "n3"], "concurrency": 5, "rate": 0, "time_limit_s": 60,
        "nemesis_interval_s": 5, "seed": seed, "bug": null,
        "checkers": [{"name": "linearizable", "model": "cas-register"}, {"name": "stats"}],
        "started_at": STARTED_AT, "distest_version": "0.1.0",
        "command": "distest run --target kv --nemesis partition --seed 42"
    })
}

/// Invalid results pointing at real ops of `ops`: a linearizability counterexample and
/// an Elle cycle, plus a valid stats verdict.
pub fn invalid_results(ops: &[Op]) -> Value {
    let oks: Vec<u64> = ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.is_client())
        .map(|o| o.index)
        .collect();
    let mid = oks.len() / 2;
    let (a, b, c) = (oks[mid], oks[mid + 1], oks[mid + 3]);
    json!({
        "valid": false,
        "checkers": {
            "linearizable": {
                "valid": false, "anomalies": ["nonlinearizable"],
                "summary": "No linearization of 212 ops on key 0 exists: a read saw 4 after 3 was written.",
                "explanation": format!("op {c} read a value no linearization allows"),
                "evidence": {"failing_op": c, "ops": [a, b, c], "key": 0,
                             "configs": [{"model": {"value": 3}, "pending": [b]}, {"model": {"value": 1}, "pending": []}]}
            },
            "list-append": {
                "valid": false, "anomalies": ["G1c"],
                "summary": "One G1c cycle.",
                "explanation": "T1 wrote x, T2 read it; T2 wrote y, T1 read it.",
                "evidence": {"cycles": [{"anomaly": "G1c", "cycle": [a, b], "steps": [
                    {"from": a, "to": b, "type": "wr", "why": format!("T2 (op {b}) read [1] of key x, appended by T1 (op {a})")},
                    {"from": b, "to": a, "type": "wr", "why": format!("T1 read [2] of key y, appended by T2")}
                ]}]}
            },
            "stats": {"valid": true, "anomalies": [], "summary": "ok", "explanation": "", "evidence": null}
        }
    })
}

pub fn valid_results() -> Value {
    json!({"valid": true, "checkers": {
        "linearizable": {"valid": true, "anomalies": [], "summary": "linearizable", "explanation": "", "evidence": null},
        "stats": {"valid": true, "anomalies": [], "summary": "ok", "explanation": "", "evidence": null}}})
}

/// Node logs stamped from STARTED_AT over `end_ns`, one line per 250 ms.
pub fn write_logs(dir: &Path, end_ns: u64, hostile: bool) {
    let start = chrono::DateTime::parse_from_rfc3339(STARTED_AT).unwrap();
    for node in ["n1", "n2", "n3"] {
        let d = dir.join("nodes").join(node);
        std::fs::create_dir_all(&d).unwrap();
        let mut text = String::new();
        let mut t = 0u64;
        let mut i = 0;
        while t <= end_ns + 1_000_000_000 {
            let ts = start + chrono::Duration::nanoseconds(t as i64);
            let msg = if hostile && i % 7 == 0 {
                HOSTILE[i % HOSTILE.len()]
            } else {
                "applied entry"
            };
            text.push_str(&format!(
                "{} INFO raft: {node} {msg} {i}\n",
                ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ));
            t += 250_000_000;
            i += 1;
        }
        std::fs::write(d.join("raft-kv.log"), text).unwrap();
    }
}

/// A complete invalid run directory in `dir`.
pub fn invalid_run(dir: &Path, spec: &HistorySpec) -> Vec<Op> {
    let ops = generate(spec);
    write_history(dir, &ops);
    std::fs::write(
        dir.join("test.json"),
        test_json("partition", spec.seed).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("results.json"), invalid_results(&ops).to_string()).unwrap();
    write_logs(
        dir,
        ops.last().map(|o| o.time).unwrap_or(0),
        spec.hostile_values,
    );
    ops
}

/// A complete valid run directory in `dir`.
pub fn valid_run(dir: &Path, spec: &HistorySpec) -> Vec<Op> {
    let ops = generate(spec);
    write_history(dir, &ops);
    std::fs::write(
        dir.join("test.json"),
        test_json("kill", spec.seed).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("results.json"), valid_results().to_string()).unwrap();
    ops
}

/// The trimmed contents of every `<text>` element of an SVG (plotters puts newlines
/// around them), for asserting on labels.
pub fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

pub fn has_text(svg: &str, text: &str) -> bool {
    svg_texts(svg).iter().any(|t| t == text)
}
