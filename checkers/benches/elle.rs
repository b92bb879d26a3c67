//! Elle checker benchmark: list-append histories of 100,000 and 1,000,000 transactions
//! (10 processes, 1,000 keys in use at any time, each retired after 16 appends as with
//! Jepsen's max-writes-per-key so reads stay short, 1-4 micro-ops per transaction, 2%
//! fail and 2% info, strictly serializable with real concurrency), serialized to JSONL in
//! memory, then timed parse + check. Prints wall time and peak RSS (VmHWM) per phase.
//!
//! Two paths are measured: the standard one (`read_history` builds a `History` of `Op`s,
//! then `ListAppend::check`), and the streaming one (`Txns::read_jsonl`: each line is
//! parsed into an `Op` and folded into compact transactions at once, then `check_txns`),
//! which is what a history too large to hold as `Op`s needs.
//!
//! A third run makes 1% of reads stale, to time the cycle search on a buggy history.
//! Then rw-register histories of the same size, streamed and checked with Elle's defaults
//! and with every version-order inference option on (`--wfr-keys --sequential-keys
//! --linearizable-keys`), in transactions per second; and the two 1,000-
//! transaction rings (one ww chain closed by an rw edge, one all-rw ring whose
//! readers add a million realtime edges), each decided from a `History`.
//!
//! `cargo bench -p distest-checkers --bench elle [-- SIZES]`, e.g. `-- 100000`.

#[path = "../tests/elle_support/mod.rs"]
mod elle_support;

use distest_checkers::elle::txn::{Shape, Txns};
use distest_checkers::elle::{check_txns, ElleOptions, Inference, ListAppend};
use distest_checkers::format::{read_history, write_jsonl_line, Format};
use distest_checkers::History;
use distest_checkers::{CheckContext, Checker, Validity};
use elle_support::gen;
use gen::{generate, Params, Workload};
use std::time::Instant;

fn vm_hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak-RSS counter so each phase reports its own peak (Linux only).
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn jsonl(txns: usize, stale_pct: u32) -> Vec<u8> {
    jsonl_of(Workload::ListAppend, txns, stale_pct)
}

fn jsonl_of(workload: Workload, txns: usize, stale_pct: u32) -> Vec<u8> {
    let p = Params::bench(workload, txns, stale_pct);
    let mut out = Vec::with_capacity(txns * 200);
    generate(&p, |op| write_jsonl_line(&op, &mut out));
    out
}

fn standard(text: &[u8]) {
    reset_hwm();
    let start = Instant::now();
    let history =
        read_history(text, Some(Format::Jsonl), "bench").expect("generated history parses");
    let parsed = start.elapsed();
    let v = ListAppend::new(None)
        .expect("default model")
        .check(&history, &CheckContext::default());
    let total = start.elapsed();
    assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
    println!(
        "  standard : parse {:>6.2} s, check {:>6.2} s, total {:>6.2} s, peak RSS {:>7.0} MiB",
        parsed.as_secs_f64(),
        (total - parsed).as_secs_f64(),
        total.as_secs_f64(),
        vm_hwm_mib()
    );
}

fn streaming(text: &[u8], expect: Validity) {
    reset_hwm();
    let start = Instant::now();
    let txns =
        Txns::read_jsonl(text, Shape::ListAppend, "bench").expect("generated history parses");
    let parsed = start.elapsed();
    let v = check_txns(&txns, &Default::default(), &CheckContext::default());
    let total = start.elapsed();
    assert_eq!(v.valid, expect, "{}", v.summary);
    println!(
        "  streaming: parse {:>6.2} s, check {:>6.2} s, total {:>6.2} s, peak RSS {:>7.0} MiB",
        parsed.as_secs_f64(),
        (total - parsed).as_secs_f64(),
        total.as_secs_f64(),
        vm_hwm_mib()
    );
    if expect == Validity::Invalid {
        println!(
            "    {} SCCs; found {}; not fully searched: {}",
            v.evidence["stats"]["sccs"], v.evidence["counts"], v.evidence["incomplete"]
        );
    }
}

/// rw-register: streamed and checked, default options and all inference options on.
fn register(text: &[u8], txns: usize) {
    let all = Inference {
        wfr_keys: true,
        sequential_keys: true,
        linearizable_keys: true,
        transaction_order: None,
    };
    for (label, inference) in [("defaults", Inference::default()), ("all inference", all)] {
        reset_hwm();
        let start = Instant::now();
        let t =
            Txns::read_jsonl(text, Shape::RwRegister, "bench").expect("generated history parses");
        let parsed = start.elapsed();
        let options = ElleOptions {
            inference,
            ..ElleOptions::default()
        };
        let v = check_txns(&t, &options, &CheckContext::default());
        let total = start.elapsed();
        assert_eq!(v.valid, Validity::Valid, "{}", v.summary);
        println!(
            "  {label:<13}: parse {:>6.2} s, check {:>6.2} s, total {:>6.2} s = {:>7.0} txn/s, peak RSS {:>7.0} MiB",
            parsed.as_secs_f64(),
            (total - parsed).as_secs_f64(),
            total.as_secs_f64(),
            txns as f64 / total.as_secs_f64(),
            vm_hwm_mib()
        );
    }
}

fn rings() {
    for (label, ops) in [
        ("ww ring closed by rw", elle_support::ring(1000)),
        ("rw ring + readers", elle_support::rw_ring(1000)),
    ] {
        let h = History::new(ops).expect("rings are well formed");
        let start = Instant::now();
        let v = ListAppend::new(None)
            .expect("default model")
            .check(&h, &CheckContext::default());
        println!(
            "  {label:<21}: {} ({}) in {:.3} s",
            v.valid,
            v.anomalies.join(", "),
            start.elapsed().as_secs_f64()
        );
        assert_eq!(v.valid, Validity::Invalid, "{}", v.summary);
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    for n in sizes {
        let text = jsonl(n, 0);
        println!(
            "list-append, {n} transactions, {} MiB of JSONL:",
            text.len() >> 20
        );
        streaming(&text, Validity::Valid);
        // Stale-read variant before the standard path: memory the allocator keeps after
        // the standard path's 4 GB would otherwise count towards the next peak.
        let stale = jsonl(n, 1);
        println!("same, with 1% of reads stale (a buggy database):");
        streaming(&stale, Validity::Invalid);
        drop(stale);
        println!("the valid history again, through read_history and History:");
        standard(&text);
        drop(text);
        let text = jsonl_of(Workload::RwRegister, n, 0);
        println!(
            "rw-register, {n} transactions, {} MiB of JSONL, strict-serializable:",
            text.len() >> 20
        );
        register(&text, n);
    }
    println!("1,000-transaction rings, strict-serializable:");
    rings();
}
