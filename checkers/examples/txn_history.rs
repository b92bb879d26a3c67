//! Writes a generated transactional history (distest JSONL) to a file, for measuring
//! `distest check` end to end on large inputs: the same strictly serializable generator
//! the Elle tests and benchmark use (10 processes, 1,000 keys in use, each retired after
//! 16 writes, 1-4 micro-ops per transaction, 2% fail and 2% info).
//!
//! `cargo run --release -p distest-checkers --example txn_history -- \
//!      list-append|rw-register TXNS OUT.jsonl [STALE_PCT] [SEED]`
//!
//! `... txn_history ring TXNS OUT.jsonl` writes the ring instead: TXNS concurrent
//! list-append transactions, each ordered after the previous by ww, the last one before
//! the first by rw (one G-single-item cycle through all of them).

#[path = "../tests/elle_support/mod.rs"]
mod elle_support;

use elle_support::gen;

use distest_checkers::format::write_jsonl_line;
use gen::{generate, Params, Workload};
use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: txn_history list-append|rw-register|ring TXNS OUT.jsonl [STALE_PCT] [SEED]";
    let (Some(workload), Some(txns), Some(out)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let number = |s: Option<&String>, default: u64| -> u64 {
        s.map_or(default, |s| {
            s.parse().unwrap_or_else(|_| {
                eprintln!("{s:?} is not a number; {usage}");
                std::process::exit(2)
            })
        })
    };
    if workload == "ring" {
        let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
        let mut line = Vec::new();
        for op in elle_support::ring(number(Some(txns), 0)) {
            line.clear();
            write_jsonl_line(&op, &mut line);
            file.write_all(&line)?;
        }
        return file.flush();
    }
    let workload = match workload.as_str() {
        "list-append" => Workload::ListAppend,
        "rw-register" => Workload::RwRegister,
        other => {
            eprintln!("unknown workload {other:?}; {usage}");
            std::process::exit(2);
        }
    };
    let p = Params {
        workload,
        seed: number(args.get(4), 42),
        workers: 10,
        txns: number(Some(txns), 0) as usize,
        active_keys: 1_000,
        max_writes_per_key: 16,
        max_mops: 4,
        fail_pct: 2,
        info_pct: 2,
        stale_pct: number(args.get(3), 0) as u32,
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut line = Vec::with_capacity(256);
    let mut result = Ok(());
    generate(&p, |op| {
        line.clear();
        write_jsonl_line(&op, &mut line);
        if result.is_ok() {
            result = file.write_all(&line);
        }
    });
    result?;
    file.flush()
}
