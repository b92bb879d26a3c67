//! `distest check` end to end on big files: `cargo bench --bench check_files`.
//!
//! Writes keyed kv histories (get/put/append on `[k v]` tuples, like Jepsen's
//! independent kv tests, 20 processes, 5 % indeterminate ops) as distest JSON Lines and
//! as Jepsen EDN, then times the `distest` binary on them: `--checker stats` (reading
//! dominates) and `--checker linearizable --model kv`, each whole and `--stream`, with
//! MB/s and the peak RSS of the check. The reference in the same run is another
//! `distest` binary given as `DT_BENCH_BEFORE=/path/to/distest` (e.g. main's), timed on
//! the same files. Sizes: `DT_BENCH_MB` (default 32, the 200k-op file) and, for
//! the bounded-memory figure, `DT_BENCH_BIG_GB` (e.g. 10: a keyed history that size,
//! checked with `--stream` by both binaries; off by default).

#[path = "support/distest_check.rs"]
mod distest_check;
#[path = "support/kv_history.rs"]
mod kv_history;

use distest_check::{best_of, check, TempFile};
use distest_checkers::{Op, Process};
use serde_json::Value;
use std::path::PathBuf;

/// Jepsen's printed form of a JSON value.
fn edn_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::String(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
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
    let process = match op.process {
        Process::Client(p) => p.to_string(),
        Process::Nemesis => ":nemesis".into(),
    };
    let _ = write!(out, "{{:type :{}, :f :{}, :value ", op.kind.as_str(), op.f);
    edn_value(&op.value, out);
    let _ = writeln!(
        out,
        ", :time {}, :process {process}, :index {}}}",
        op.time, op.index
    );
}

fn main() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_distest"));
    let before = std::env::var_os("DT_BENCH_BEFORE").map(PathBuf::from);
    let mb: u64 = std::env::var("DT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let tmp = std::env::temp_dir();
    for (edn, name) in [(false, "jsonl"), (true, "edn")] {
        let file = TempFile(tmp.join(format!("dt-bench-check-{}.{name}", std::process::id())));
        kv_history::write(&file.0, mb << 20, edn.then_some(edn_line as _));
        let size_mb = std::fs::metadata(&file.0).unwrap().len() as f64 / (1 << 20) as f64;
        println!("{name}: {size_mb:.0} MB");
        let cases: [(&str, &[&str]); 4] = [
            ("stats", &["--checker", "stats"]),
            (
                "linearizable kv",
                &["--checker", "linearizable", "--model", "kv"],
            ),
            ("stats --stream", &["--checker", "stats", "--stream"]),
            (
                "linearizable kv --stream",
                &["--checker", "linearizable", "--model", "kv", "--stream"],
            ),
        ];
        for (label, args) in cases {
            let mut binaries = vec![("this", ours.clone())];
            if let Some(b) = &before {
                if !args.contains(&"--stream") {
                    binaries.push(("before", b.clone()));
                }
            }
            for (which, binary) in binaries {
                let t = best_of(3, || check(&binary, &file.0, args));
                println!(
                    "  {label:<26} {which:<6}: {:6.2} s, {:5.0} MB/s wall, {:5.0} MB per CPU-second, peak RSS {:6.0} MB, exit {}",
                    t.secs,
                    size_mb / t.secs,
                    size_mb / t.cpu_secs,
                    t.rss_mb,
                    t.code
                );
            }
        }
    }
    if let Some(gb) = std::env::var("DT_BENCH_BIG_GB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let file = TempFile(tmp.join(format!("dt-bench-check-big-{}.jsonl", std::process::id())));
        kv_history::write(&file.0, gb << 30, None);
        let size_mb = std::fs::metadata(&file.0).unwrap().len() as f64 / (1 << 20) as f64;
        let mut binaries = vec![("this", ours.clone())];
        binaries.extend(before.clone().map(|b| ("before", b)));
        for (which, binary) in binaries {
            let t = check(
                &binary,
                &file.0,
                &[
                    "--checker",
                    "linearizable,stats",
                    "--model",
                    "kv",
                    "--stream",
                ],
            );
            println!(
                "big jsonl {size_mb:.0} MB, --stream linearizable kv + stats, {which:<6}: {:.1} s, {:.0} MB/s wall, {:.0} MB per CPU-second, peak RSS {:.0} MB, exit {}",
                t.secs,
                size_mb / t.secs,
                size_mb / t.cpu_secs,
                t.rss_mb,
                t.code
            );
            print!("{}", t.stdout);
        }
    }
}
