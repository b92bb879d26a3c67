//! The report of a long run: `cargo bench --bench report`.
//!
//! Writes run directories holding a keyed kv history (`support/kv_history.rs`) of
//! several sizes, a `results.json` naming an anomaly in the middle of it and a
//! `test.json`, then times `distest report RUN_DIR` under `/usr/bin/time` in both forms
//! on the same files: the full form (the whole history loaded,
//! `DISTEST_REPORT_LIGHT_BYTES` set above the file's size) and the light form (one pass,
//! `DISTEST_REPORT_LIGHT_BYTES=0`): wall time, MB/s and peak RSS. Sizes in MB:
//! `DT_BENCH_REPORT_MB` (default `64,256`); `DT_BENCH_BIG_GB` (e.g. 3) adds a history
//! that size in the light form only (`DT_BENCH_BIG_FULL=1`: the full form too).

#[path = "support/distest_check.rs"]
mod distest_check;
#[path = "support/kv_history.rs"]
mod kv_history;

use distest_check::{timed, Took};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Removes the run directory even when the bench panics.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `distest report DIR` with the light form from `light_bytes` on: what it took and
/// the page's size in kB.
fn report(binary: &Path, dir: &Path, light_bytes: u64) -> (Took, f64) {
    let mut command = Command::new(binary);
    command
        .arg("report")
        .arg(dir)
        .env("DISTEST_REPORT_LIGHT_BYTES", light_bytes.to_string());
    let took = timed(command);
    let page_kb =
        std::fs::metadata(dir.join("index.html")).map_or(f64::NAN, |m| m.len() as f64 / 1024.0);
    (took, page_kb)
}

/// A run directory with a history of about `bytes` and results naming an op in its middle.
fn run_dir(bytes: u64) -> TempDir {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "dt-bench-report-{}-{}",
        std::process::id(),
        bytes >> 20
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let history = dir.0.join("history.jsonl");
    let middle = kv_history::write(&history, bytes, None) / 2;
    let results = serde_json::json!({
        "valid": false,
        "checkers": {"linearizable": {
            "valid": false, "anomalies": ["nonlinearizable"],
            "summary": "a read saw a value no order allows (bench)",
            "explanation": "", "evidence": {"failing_op": middle, "ops": [middle, middle + 1]}
        }},
    });
    std::fs::write(dir.0.join("results.json"), results.to_string()).unwrap();
    std::fs::write(
        dir.0.join("test.json"),
        r#"{"target":"noop","workload":"kv","nemesis":["none"],"nodes":["n1","n2","n3"]}"#,
    )
    .unwrap();
    dir
}

fn main() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_distest"));
    let sizes_mb: Vec<u64> = std::env::var("DT_BENCH_REPORT_MB")
        .unwrap_or_else(|_| "64,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut cases: Vec<(u64, bool)> = sizes_mb.iter().map(|mb| (mb << 20, true)).collect();
    if let Some(gb) = std::env::var("DT_BENCH_BIG_GB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cases.push((gb << 30, std::env::var_os("DT_BENCH_BIG_FULL").is_some()));
    }
    for (bytes, with_full) in cases {
        let dir = run_dir(bytes);
        let size_mb = std::fs::metadata(dir.0.join("history.jsonl"))
            .unwrap()
            .len() as f64
            / (1 << 20) as f64;
        println!("history.jsonl {size_mb:.0} MB:");
        let mut forms = vec![("light", 0u64)];
        if with_full {
            forms.insert(0, ("full", u64::MAX));
        }
        for (form, light_bytes) in forms {
            let (t, page_kb) = report(&ours, &dir.0, light_bytes);
            println!(
                "  {form:<5}: {:6.2} s ({:5.1} CPU-s), {:5.0} MB/s, peak RSS {:6.0} MB, index.html {page_kb:5.0} kB, exit {}",
                t.secs,
                t.cpu_secs,
                size_mb / t.secs,
                t.rss_mb,
                t.code
            );
        }
    }
}
