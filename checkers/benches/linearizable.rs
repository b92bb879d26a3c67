//! Benchmark: the `linearizable` checker against porcupine-rs on the same histories.
//!
//! Run with `cargo bench -p distest-checkers --bench linearizable`. Both checkers start
//! from the history in memory: porcupine from its operations (building them is not
//! timed), distest from its `History` (turning it into model ops, per-key partitioning
//! included, is timed). That is the "check" comparison the goal is stated on. The
//! "with parsing" figures add distest's reading of the history from JSON Lines
//! (`format::read_history` on an in-memory buffer), which porcupine-rs does not do at all.
//! Both must agree on every verdict. Workloads:
//! (a) 100 single-register cas histories of 200 ops, 5 processes, with info ops;
//! (b) one 100,000-op kv history over 100 keys, 20 processes;
//! (c) one 10,000-op cas-register history, 10 processes.
//!
//! Profiling aid: `LINEARIZABLE_PROFILE=a|b|c|d` (d: the extra one) checks one workload with distest alone, 30
//! times, and prints the time per round, so a profiler sees nothing else.

#[path = "../tests/linearizable_support/mod.rs"]
mod linearizable_support;

use distest_checkers::format::{read_history, write_jsonl_line, Format};
use distest_checkers::linear::{check_history, ModelKind};
use distest_checkers::{CheckContext, History, Validity};
use linearizable_support::gen::{simulate, GenConfig};
use linearizable_support::porcupine::{
    kv_op, register_op, to_porcupine, PorcupineKv, PorcupineRegister,
};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};

/// One history, as JSONL bytes (what distest reads) and as a parsed history (to build
/// porcupine's input from).
struct Case {
    jsonl: Vec<u8>,
    history: History,
    kv: bool,
}

fn make(seed: u64, cfg: &GenConfig) -> Case {
    let ops = simulate(&mut SmallRng::seed_from_u64(seed), cfg);
    let mut jsonl = Vec::new();
    for op in &ops {
        write_jsonl_line(op, &mut jsonl);
    }
    Case {
        jsonl,
        history: History::new(ops).expect("simulated histories are well formed"),
        kv: cfg.kv,
    }
}

/// Each workload is timed this many times (`LINEARIZABLE_ROUNDS` overrides it); the
/// fastest round counts (the machine is shared, and the minimum is the least disturbed
/// measurement).
const ROUNDS: usize = 3;

fn rounds() -> usize {
    std::env::var("LINEARIZABLE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS)
        .max(1)
}

/// One round over `cases`: (distest total, of which parsing, porcupine, invalid count).
fn round(name: &str, cases: &[Case]) -> (Duration, Duration, Duration, usize) {
    let ctx = CheckContext::default();
    let (mut ours, mut parsing, mut theirs, mut invalid) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    for case in cases {
        let model = if case.kv {
            ModelKind::Kv
        } else {
            ModelKind::CasRegister
        };
        let t = Instant::now();
        let history = read_history(&case.jsonl[..], Some(Format::Jsonl), "bench")
            .expect("the bench's own JSONL parses");
        parsing += t.elapsed();
        let verdict = check_history(&history, model, &ctx);
        ours += t.elapsed();

        let (reference, took) = if case.kv {
            let ops = to_porcupine::<PorcupineKv>(&case.history, kv_op);
            let t = Instant::now();
            (porcupine_rs::check_operations(&ops), t.elapsed())
        } else {
            let ops = to_porcupine::<PorcupineRegister>(&case.history, register_op);
            let t = Instant::now();
            (porcupine_rs::check_operations(&ops), t.elapsed())
        };
        theirs += took;
        let expected = if reference {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        assert_eq!(
            verdict.valid, expected,
            "{name}: verdicts differ: {}",
            verdict.summary
        );
        invalid += usize::from(!reference);
    }
    (ours, parsing, theirs, invalid)
}

/// Best times of one workload: distest's check, distest's parsing, porcupine's check.
#[derive(Clone, Copy, Default)]
struct Times {
    check: Duration,
    parse: Duration,
    porcupine: Duration,
}

impl std::ops::AddAssign for Times {
    fn add_assign(&mut self, other: Times) {
        self.check += other.check;
        self.parse += other.parse;
        self.porcupine += other.porcupine;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(theirs: Duration, ours: Duration) -> f64 {
    theirs.as_secs_f64() / ours.as_secs_f64().max(1e-9)
}

fn print_times(name: &str, t: Times, tail: &str) {
    println!(
        "{name:<50} check: distest {:>8.3} ms  porcupine-rs {:>8.3} ms  speedup {:>5.1}x   with parsing: distest {:>8.3} ms  speedup {:>5.1}x{tail}",
        ms(t.check),
        ms(t.porcupine),
        ratio(t.porcupine, t.check),
        ms(t.check + t.parse),
        ratio(t.porcupine, t.check + t.parse),
    );
}

/// Times `cases` with both checkers (best of [`rounds()`] each).
fn run(name: &str, cases: &[Case]) -> Times {
    let rounds: Vec<_> = (0..rounds()).map(|_| round(name, cases)).collect();
    let best = |f: fn(&(Duration, Duration, Duration, usize)) -> Duration| {
        rounds.iter().map(f).min().unwrap_or_default()
    };
    let times = Times {
        check: best(|r| r.0 - r.1),
        parse: best(|r| r.1),
        porcupine: best(|r| r.2),
    };
    print_times(
        name,
        times,
        &format!("   ({} histories, {} invalid)", cases.len(), rounds[0].3),
    );
    times
}

/// Peak resident memory of this process, from /proc/self/status (Linux).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "VmHWM: unavailable".to_string())
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench` absent: keep that fast.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "linearizable bench: run with `cargo bench -p distest-checkers --bench linearizable`"
        );
        return;
    }
    let register = |processes, ops, p_info| GenConfig {
        processes,
        ops,
        values: 5,
        keys: 0,
        p_info,
        kv: false,
    };
    let a: Vec<Case> = (0..100).map(|s| make(s, &register(5, 200, 0.05))).collect();
    let kv = GenConfig {
        processes: 20,
        ops: 100_000,
        values: 10,
        keys: 100,
        p_info: 0.01,
        kv: true,
    };
    let b = vec![make(1_000, &kv)];
    let c = vec![make(2_000, &register(10, 10_000, 0.01))];
    // Not part of the total: a harder, info-heavy history, where the search (not the
    // parsing) dominates.
    let d = vec![make(3_000, &register(20, 2_000, 0.1))];

    // Profiling aid: `LINEARIZABLE_PROFILE=b cargo bench ... --bench linearizable` checks
    // one workload with distest only, many times, so a profiler sees nothing else.
    if let Ok(which) = std::env::var("LINEARIZABLE_PROFILE") {
        let cases = match which.as_str() {
            "a" => &a,
            "b" => &b,
            "c" => &c,
            _ => &d,
        };
        let histories: Vec<History> = cases.iter().map(|c| c.history.clone()).collect();
        let ctx = CheckContext::default();
        let t = Instant::now();
        for _ in 0..30 {
            for (h, case) in histories.iter().zip(cases) {
                let model = if case.kv {
                    ModelKind::Kv
                } else {
                    ModelKind::CasRegister
                };
                check_history(h, model, &ctx);
            }
        }
        println!(
            "{which}: {:.3} ms per round",
            t.elapsed().as_secs_f64() * 1e3 / 30.0
        );
        return;
    }
    let mut total = Times::default();
    for (name, cases) in [
        ("(a) 100 x cas-register, 200 ops, 5 procs", &a),
        ("(b) kv, 100k ops, 100 keys, 20 procs", &b),
        ("(c) cas-register, 10k ops, 10 procs", &c),
    ] {
        total += run(name, cases);
    }
    print_times("total (a)+(b)+(c)", total, "");
    run("(extra) cas-register, 2k ops, 20 procs, 10% info", &d);
    println!("peak memory (whole bench process) {}", peak_memory());
}
