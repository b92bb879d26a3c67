//! Parse throughput of the history readers: `cargo bench -p distest-checkers --bench parse`.
//!
//! Writes a ~150 MB history (register ops and list-append transactions, like a real run)
//! in each format to a temp file, reads it back through `read_history` a few times and
//! prints MB/s (wall clock, and per CPU-second, which a busy machine disturbs less) and
//! peak RSS (`VmHWM`, reset between formats). The targets are >= 200 MB/s
//! for JSONL and >= 100 MB/s for EDN. `DT_BENCH_MB` changes the size, `DT_BENCH_FORMAT`
//! (`jsonl` or `edn`) runs one format only.

use distest_checkers::format::{read_history, write_jsonl_line, Format};
use distest_checkers::{Op, OpType, Process};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Runs per format; the best is reported too, since the machine is shared.
const RUNS: usize = 3;

/// Removes the temp file even when the benchmark panics.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One invocation/completion pair: a register op or a list-append transaction.
fn pair(rng: &mut SmallRng, process: u64) -> (Op, Op) {
    let key = rng.gen_range(0..64u64);
    let (f, invoke_value, ok_value) = match rng.gen_range(0..4) {
        0 => ("read", Value::Null, json!(rng.gen_range(0..5))),
        1 => {
            let v = json!(rng.gen_range(0..5));
            ("write", v.clone(), v)
        }
        2 => {
            let v = json!([rng.gen_range(0..5), rng.gen_range(0..5)]);
            ("cas", v.clone(), v)
        }
        _ => {
            let n = rng.gen_range(0..12u64);
            let read: Vec<u64> = (0..n).map(|i| i * 7 + key).collect();
            let append = rng.gen_range(0..1_000_000u64);
            (
                "txn",
                json!([["append", key, append], ["r", key + 1, null]]),
                json!([["append", key, append], ["r", key + 1, read]]),
            )
        }
    };
    let invoke = Op::invoke(Process::Client(process), f, invoke_value);
    let kind = if rng.gen_bool(0.9) {
        OpType::Ok
    } else {
        OpType::Fail
    };
    let done = invoke.complete(
        kind,
        if kind == OpType::Ok {
            ok_value
        } else {
            invoke.value.clone()
        },
    );
    (invoke, done)
}

/// Jepsen's printed form of a JSON value (keywords for the micro-op names).
fn edn_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::String(s) => {
            out.push(':');
            out.push_str(s);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                edn_value(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn edn_line(op: &Op, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{{:index {}, :time {}, :type :{}, :process {}, :f :{}, :value ",
        op.index, op.time, op.kind, op.process, op.f
    );
    edn_value(&op.value, out);
    out.push_str("}\n");
}

/// Writes a history of about `target_bytes` in `format`; returns its size and op count.
fn generate(path: &PathBuf, format: Format, target_bytes: u64) -> (u64, u64) {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut w = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).expect("create temp file"),
    );
    let (mut written, mut index, mut time) = (0u64, 0u64, 0u64);
    let mut bytes = Vec::new();
    let mut text = String::new();
    let mut process = 0u64;
    while written < target_bytes {
        process = (process + 1) % 16;
        let (mut invoke, mut done) = pair(&mut rng, process);
        for op in [&mut invoke, &mut done] {
            op.index = index;
            op.time = time;
            index += 1;
            time += rng.gen_range(1_000..50_000);
            bytes.clear();
            text.clear();
            if format == Format::Edn {
                edn_line(op, &mut text);
                bytes.extend_from_slice(text.as_bytes());
            } else {
                write_jsonl_line(op, &mut bytes);
            }
            w.write_all(&bytes).expect("write temp file");
            written += bytes.len() as u64;
        }
    }
    w.flush().expect("flush temp file");
    (written, index)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system, all threads) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are the 12th and 13th, in clock ticks
    // (USER_HZ, 100 on Linux).
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let target_mb: u64 = std::env::var("DT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let only = std::env::var("DT_BENCH_FORMAT")
        .ok()
        .and_then(|n| Format::from_name(&n));
    for (format, target_mb_per_s) in [(Format::Jsonl, 200.0), (Format::Edn, 100.0)] {
        if only.is_some_and(|o| o != format) {
            continue;
        }
        let file = TempFile(std::env::temp_dir().join(format!(
            "dt-bench-parse-{}.{}",
            std::process::id(),
            format.name()
        )));
        let (size_bytes, op_count) = generate(&file.0, format, target_mb << 20);
        let size_mb = size_bytes as f64 / (1 << 20) as f64;
        // Reset the peak RSS so each format's figure is its own (Linux >= 4.0).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let mut rates = Vec::new();
        let mut cpu_rates = Vec::new();
        for _ in 0..RUNS {
            let input = std::fs::File::open(&file.0).expect("open temp file");
            let (started, cpu_started) = (Instant::now(), cpu_seconds());
            let history =
                read_history(input, Some(format), "bench").expect("the generated history parses");
            let secs = started.elapsed().as_secs_f64();
            let cpu_secs = cpu_seconds() - cpu_started;
            assert_eq!(history.len() as u64, op_count);
            drop(history);
            rates.push(size_mb / secs);
            cpu_rates.push(size_mb / cpu_secs);
        }
        let best = rates.iter().copied().fold(0.0, f64::max);
        let verdict = if best >= target_mb_per_s {
            "meets"
        } else {
            "MISSES"
        };
        println!(
            "{:<10} {size_mb:7.1} MB, {op_count} ops: {} MB/s wall (best {best:.0}; {verdict} the {target_mb_per_s:.0} MB/s target), {} MB per CPU-second, peak RSS {:.0} MB",
            format.name(),
            rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / "),
            cpu_rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / "),
            peak_rss_mb()
        );
    }
}
