//! Online checking throughput: `cargo bench -p distest-checkers --bench online`.
//!
//! A keyed cas-register history like a `distest run --workload register` records (5 keys
//! live at a time, 200 ops per key, then a fresh key; 10 processes; 5 % indeterminate
//! ops) is fed op by op to `OnlineCheck` with `linearizable` + `stats`, retiring each
//! key after its last op and ticking every 10,000 ops (a run ticks every 200 ms, i.e.
//! every 10,000 ops at 50,000 ops/s). Reference in the same run: the offline check of
//! the same history. Prints ops/s, the most ops held at once, and whether the verdicts
//! agree. `DT_BENCH_OPS` sets the history length (default 1,000,000).

#[path = "../tests/linearizable_support/gen.rs"]
mod gen;

use distest_checkers::online::replay;
use distest_checkers::{build, check_all, CheckContext, Checker, CheckerOptions, History, Op};
use gen::{simulate, GenConfig};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::json;
use std::time::Instant;

/// Segments of 5 keys × 200 ops, each on fresh keys and processes, keys in the `key`
/// field as the register workload records them.
fn history(ops: usize) -> History {
    let cfg = GenConfig {
        processes: 10,
        ops: 500,
        values: 5,
        keys: 5,
        p_info: 0.05,
        kv: false,
    };
    let mut rng = SmallRng::seed_from_u64(11);
    let mut out: Vec<Op> = Vec::with_capacity(ops + 2_000);
    let mut segment = 0u64;
    while out.len() < ops {
        for mut op in simulate(&mut rng, &cfg) {
            op.index = out.len() as u64;
            op.time = op.index * 20_000;
            if let distest_checkers::Process::Client(p) = op.process {
                op.process = distest_checkers::Process::Client(p + segment * 1_000);
            }
            // The simulator keys register ops by the `key` field already (0..5).
            if let Some(k) = op.key.as_ref().and_then(|k| k.as_u64()) {
                op.key = Some(json!(k + segment * cfg.keys));
            }
            out.push(op);
        }
        segment += 1;
    }
    History::new(out).expect("simulated histories are valid")
}

fn checkers() -> Vec<Box<dyn Checker>> {
    let lin = build(
        "linearizable",
        &CheckerOptions {
            model: Some("cas-register".into()),
            ..CheckerOptions::default()
        },
    )
    .unwrap();
    vec![lin, build("stats", &CheckerOptions::default()).unwrap()]
}

fn main() {
    let ops: usize = std::env::var("DT_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let history = history(ops);
    let ctx = CheckContext::default();
    let checkers = checkers();
    for _ in 0..2 {
        let started = Instant::now();
        let offline = check_all(&history, &checkers, &ctx);
        let offline_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let online = replay(&history, &checkers, &ctx, true, 10_000);
        let online_s = started.elapsed().as_secs_f64();
        println!(
            "{} ops, {} keys: online {:.0} ops/s ({online_s:.2} s, at most {} ops held), offline check {:.0} ops/s ({offline_s:.2} s); verdicts {}: {}",
            history.len(),
            offline.checkers["linearizable"]
                .summary
                .split(" over ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap_or("?"),
            history.len() as f64 / online_s,
            online.max_held_ops,
            history.len() as f64 / offline_s,
            if online.results == offline { "agree" } else { "DIFFER" },
            offline.valid
        );
    }
}
