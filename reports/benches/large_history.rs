//! Renders the report of a generated 1,000,000-op history (register workload, 50
//! processes, partition/kill/clock faults) and prints the time taken and the page size.
//! The page must stay under 20 MB; the run fails otherwise.
//!
//! `cargo bench -p distest-reports --bench large_history` (set DT_BENCH_OPS to change
//! the size).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::time::Instant;

const PAGE_LIMIT_BYTES: u64 = 20 << 20;

fn main() {
    let ops: usize = std::env::var("DT_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = TempDir::new("bench");
    let t0 = Instant::now();
    let history = invalid_run(
        tmp.path(),
        &HistorySpec {
            pairs: ops / 2,
            concurrency: 50,
            ..HistorySpec::default()
        },
    );
    let generated = t0.elapsed();
    let history_bytes = std::fs::metadata(tmp.path().join("history.jsonl"))
        .unwrap()
        .len();
    let t1 = Instant::now();
    let page = distest_reports::render_run(tmp.path()).expect("render");
    let rendered = t1.elapsed();
    let page_bytes = std::fs::metadata(&page).unwrap().len();
    let svg_bytes: u64 = ["latency.svg", "throughput.svg"]
        .iter()
        .map(|f| std::fs::metadata(tmp.path().join(f)).unwrap().len())
        .sum();
    println!(
        "large_history: {} ops ({:.1} MB history.jsonl, generated in {:.2?}): report rendered in {:.2?}; index.html {:.2} MB, SVG files {:.2} MB",
        history.len(),
        history_bytes as f64 / 1e6,
        generated,
        rendered,
        page_bytes as f64 / 1e6,
        svg_bytes as f64 / 1e6
    );
    assert!(
        page_bytes < PAGE_LIMIT_BYTES,
        "index.html is {page_bytes} bytes, over the 20 MB budget"
    );
}
