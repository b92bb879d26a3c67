//! `distest check` end to end on transactional histories: `cargo bench --bench check_elle`.
//!
//! Generates strictly serializable list-append and rw-register histories (the
//! checkers' own generator: 10 processes, 1,000 keys in use, 16 writes per key, 1-4
//! micro-ops, 2 % fail and 2 % info) as distest JSON Lines, one at a time into a temp file
//! that is removed right after (also on panic), and times the `distest` binary on each:
//! list-append (valid, and with 1 % of reads stale, so invalid), rw-register with Elle's
//! defaults and with every inference option on, and the 1,000-transaction rings.
//! Wall and CPU seconds, transactions per second and peak RSS of the check. The
//! reference in the same run is another `distest` binary given as
//! `DT_BENCH_BEFORE=/path/to/distest` (e.g. main's), timed on the same files; the two
//! verdicts are compared case by case. Sizes in transactions (two ops each):
//! `DT_BENCH_TXNS=100000,1000000` (the default).

#[path = "support/distest_check.rs"]
mod distest_check;
#[path = "../checkers/tests/elle_support/mod.rs"]
mod elle_support;

use distest_check::{check, TempFile, Took};
use distest_checkers::format::write_jsonl_line;
use distest_checkers::Op;
use elle_support::gen::{generate, Params, Workload};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `distest check FILE ARGS --json`: what it took, and its verdict as `valid` and the
/// anomaly names (or the error).
fn check_json(binary: &Path, file: &Path, args: &[&str]) -> (Took, String) {
    let mut args = args.to_vec();
    args.push("--json");
    let took = check(binary, file, &args);
    let doc: serde_json::Value = serde_json::from_str(&took.stdout).unwrap_or_default();
    let anomalies: Vec<String> = doc["checkers"]
        .as_object()
        .into_iter()
        .flat_map(|c| c.values())
        .flat_map(|v| v["anomalies"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    // `valid` is true, false or "unknown".
    let valid = match &doc["valid"] {
        serde_json::Value::Bool(true) => Some("valid"),
        serde_json::Value::Bool(false) => Some("invalid"),
        other => other.as_str(),
    };
    let verdict = match valid {
        Some(valid) if anomalies.is_empty() => valid.to_string(),
        Some(valid) => format!("{valid} ({})", anomalies.join(", ")),
        None => format!(
            "error: {}",
            took.stderr
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect::<String>()
        ),
    };
    (took, verdict)
}

/// Writes `ops` as JSON Lines to a fresh temp file.
fn write_file(name: &str, ops: impl FnOnce(&mut dyn FnMut(Op))) -> TempFile {
    let path = std::env::temp_dir().join(format!("dt-bench-elle-{}-{name}", std::process::id()));
    let file = TempFile(path);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&file.0).unwrap());
    let mut line = Vec::new();
    ops(&mut |op: Op| {
        line.clear();
        write_jsonl_line(&op, &mut line);
        w.write_all(&line).unwrap();
    });
    w.flush().unwrap();
    file
}

fn generated(workload: Workload, txns: usize, stale_pct: u32) -> TempFile {
    let p = Params::bench(workload, txns, stale_pct);
    let name = format!("{workload:?}-{txns}-{stale_pct}.jsonl");
    write_file(&name, |sink| generate(&p, sink))
}

/// Times every binary on `file` with `args` and prints one line each; the verdicts of
/// all binaries that understood the arguments must agree.
fn case(
    binaries: &[(&str, PathBuf)],
    label: &str,
    file: &Path,
    txns: usize,
    args: &[&str],
    runs: usize,
) -> Vec<String> {
    let mut verdicts = Vec::new();
    for (which, binary) in binaries {
        let mut runs = (0..runs).map(|_| check_json(binary, file, args));
        let first = runs.next().expect("at least one run");
        // The fastest run: the machine is shared, the best run is the least disturbed.
        let (t, verdict) = runs.fold(first, |best, next| {
            if next.0.secs < best.0.secs {
                next
            } else {
                best
            }
        });
        println!(
            "  {label:<34} {which:<6}: {:6.2} s wall, {:6.2} s CPU, {:>9.0} txn/s, peak RSS {:5.0} MB, exit {}, {}",
            t.secs,
            t.cpu_secs,
            txns as f64 / t.secs,
            t.rss_mb,
            t.code,
            verdict
        );
        verdicts.push(verdict);
    }
    verdicts
}

fn main() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_distest"));
    let mut binaries = vec![("this", ours)];
    if let Some(before) = std::env::var_os("DT_BENCH_BEFORE") {
        binaries.push(("before", PathBuf::from(before)));
    }
    let sizes: Vec<usize> = std::env::var("DT_BENCH_TXNS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let ours_only = &binaries[..1];
    let mut disagreements = Vec::new();
    let mut compare = |label: String, verdicts: Vec<String>| {
        let valid = |v: &String| v.split(' ').next().unwrap_or("").to_string();
        if verdicts.iter().any(|v| valid(v) != valid(&verdicts[0])) {
            disagreements.push(format!("{label}: {verdicts:?}"));
        }
    };
    for &n in &sizes {
        let runs = if n > 200_000 { 1 } else { 3 };
        let file = generated(Workload::ListAppend, n, 0);
        let mb = std::fs::metadata(&file.0).map_or(0, |m| m.len()) >> 20;
        println!("list-append, {n} transactions ({} ops, {mb} MB):", 2 * n);
        let label = "strict-serializable, valid";
        let v = case(
            &binaries,
            label,
            &file.0,
            n,
            &["--checker", "list-append"],
            runs,
        );
        compare(format!("list-append {n} {label}"), v);
        drop(file);
        let file = generated(Workload::ListAppend, n, 1);
        let label = "1% stale reads, invalid";
        let v = case(
            &binaries,
            label,
            &file.0,
            n,
            &["--checker", "list-append"],
            runs,
        );
        compare(format!("list-append {n} {label}"), v);
        drop(file);
        let file = generated(Workload::RwRegister, n, 0);
        let mb = std::fs::metadata(&file.0).map_or(0, |m| m.len()) >> 20;
        println!("rw-register, {n} transactions ({} ops, {mb} MB):", 2 * n);
        let label = "strict-serializable, Elle's defaults";
        let v = case(
            &binaries,
            label,
            &file.0,
            n,
            &["--checker", "rw-register"],
            runs,
        );
        compare(format!("rw-register {n} {label}"), v);
        case(
            ours_only,
            "--wfr --sequential --linearizable-keys",
            &file.0,
            n,
            &[
                "--checker",
                "rw-register",
                "--wfr-keys",
                "--sequential-keys",
                "--linearizable-keys",
            ],
            runs,
        );
        drop(file);
    }
    println!("1,000-transaction rings (list-append, strict-serializable):");
    for (label, ops) in [
        ("ww ring closed by rw", elle_support::ring(1000)),
        ("rw ring + readers", elle_support::rw_ring(1000)),
    ] {
        let file = write_file("ring.jsonl", |sink| ops.into_iter().for_each(sink));
        case(
            &binaries,
            label,
            &file.0,
            1000,
            &["--checker", "list-append"],
            3,
        );
    }
    if disagreements.is_empty() {
        println!("verdicts (valid/invalid/unknown) agree between the binaries on every generated history");
    } else {
        println!("verdicts differ: {disagreements:#?}");
    }
}
