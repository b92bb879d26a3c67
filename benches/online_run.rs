//! Online checking in a run, on the in-process noop target (distest's own limit):
//! `cargo bench --bench online_run`.
//!
//! A keyed register workload (5 keys live, 200 ops per key, then a fresh key; 64
//! clients) checked online for linearizability (cas-register) and stats, with the noop
//! target's `stale-read` bug on (every 1,000th read returns the value before the last
//! write), so anomalies keep coming. Prints the sustained recorded-and-checked ops/s,
//! the report latency of the anomalies (from the op that completed each to its report;
//! p50/p99/max), and the process's resident memory after 1 minute and at the end.
//! `DT_BENCH_SECONDS` sets the main phase (default 120; the figure is 600).
//! `DT_BENCH_WORKLOAD=list-append` (or `rw-register`) runs Elle's transactional workload
//! instead (no bug: the noop store is serializable), checked online by its isolation
//! checker and stats; its keys retire in generations, so the online form stays bounded.
//! Then prints distest.log from the main phase on, timed from the main phase's end: the
//! "checked ... online" line says how long the checking thread took to catch up.

use distest::run::config::RunConfig;
use distest::run::{self, StopFlag};
use distest_checkers::CheckerSpec;
use distest_rundir::TestJson;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator the `distest` binary uses (src/main.rs): measure what a user runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let seconds: f64 = std::env::var("DT_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120.0);
    let workload = std::env::var("DT_BENCH_WORKLOAD").unwrap_or_else(|_| "register".into());
    let (bug, checker) = match workload.as_str() {
        "register" => (
            vec!["stale-read".to_string()],
            CheckerSpec::named("linearizable").with_model("cas-register"),
        ),
        elle => (Vec::new(), CheckerSpec::named(elle)),
    };
    let store = std::env::temp_dir().join(format!("dt-bench-online-{}", std::process::id()));
    let cfg = RunConfig {
        test: TestJson {
            target: "noop".into(),
            workload: workload.clone(),
            nodes_spec: "local:5".into(),
            concurrency: 64,
            time_limit_s: seconds,
            nemesis_interval_s: 5.0,
            recovery_s: 0.0,
            op_timeout_s: 5.0,
            seed: 1,
            bug,
            key_count: 5,
            ops_per_key: 200,
            checkers: vec![checker, CheckerSpec::named("stats")],
            distest_version: env!("CARGO_PKG_VERSION").into(),
            command: "bench online_run".into(),
            ..TestJson::default()
        },
        store: store.clone(),
        junit: None,
        node_args: distest::nodes::NodeArgs {
            nodes: Some("local:5".into()),
            cluster_id: "bench".into(),
            subnet: "10.77.230.0/24".into(),
            ..Default::default()
        },
        run_dir: Default::default(),
        nemesis_script: None,
    };
    // Resident memory once a minute; the process's own peak at the end.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut at_minute = f64::NAN;
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let t = started.elapsed().as_secs_f64();
                if at_minute.is_nan() && t >= 60.0f64.min(seconds / 2.0) {
                    at_minute = rss_mb("VmHWM:");
                }
                samples.push((t, rss_mb("VmRSS:")));
            }
            (at_minute, samples)
        })
    };
    let started = Instant::now();
    let outcome = run::execute(cfg.clone(), StopFlag::default(), run::provision::provision)
        .expect("the benchmark run works");
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (peak_at_minute, samples) = sampler.join().unwrap();
    let results = outcome.results.expect("results");
    let ops = results.checkers["stats"].evidence["count"]
        .as_u64()
        .unwrap_or(0)
        * 2;
    let log = std::fs::read_to_string(outcome.run_dir.join("distest.log")).unwrap_or_default();
    let latency = log
        .lines()
        .find(|l| l.contains("report latency"))
        .and_then(|l| l.split_once("online: "))
        .map_or("no anomaly reported".to_string(), |(_, s)| s.to_string());
    // The main phase's largest resident memory (recording and online checking), apart
    // from what the check and report at the end use.
    let main_phase_max = samples
        .iter()
        .filter(|(t, _)| *t <= seconds)
        .map(|s| s.1)
        .fold(f64::NAN, f64::max);
    println!(
        "noop {workload}, 64 clients, {seconds:.0} s: {ops} ops recorded and checked online → {:.0} ops/s (whole run {wall:.0} s); verdict {}",
        ops as f64 / seconds,
        results.valid
    );
    println!("  {latency}");
    let held = log
        .lines()
        .find_map(|l| l.split_once("; at most "))
        .map_or("?".to_string(), |(_, s)| s.to_string());
    println!("  online checkers: at most {held}");
    // What the run did after its main phase, from distest.log: how long the checking
    // thread took to catch up (the "checked ... online" line) and the rest.
    let stamp = |l: &str| {
        l.split_once(' ')
            .and_then(|(t, _)| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    if let Some(main) = log
        .lines()
        .find(|l| l.contains(" main phase: "))
        .and_then(stamp)
    {
        for line in log.lines().skip_while(|l| !l.contains(" main phase: ")) {
            if let Some(t) = stamp(line) {
                let after_s = (t - main).num_milliseconds() as f64 / 1e3 - seconds;
                let text: String = line
                    .split_once(' ')
                    .map_or("", |x| x.1)
                    .chars()
                    .take(100)
                    .collect();
                println!("  log, main phase end {after_s:+.1} s: {text}");
            }
        }
    }
    println!(
        "  resident memory: peak after {:.0} s {peak_at_minute:.0} MB, largest during the main phase {main_phase_max:.0} MB, peak of the whole run (report included) {:.0} MB",
        60.0f64.min(seconds / 2.0),
        rss_mb("VmHWM:")
    );
    let _ = std::fs::remove_dir_all(&store);
}
