//! distest's own overhead, isolated: the in-process `noop` target answers at once, so
//! what is measured is the generator, the client tasks, the recorder writing
//! history.jsonl and the `stats` check. Prints ops/s and the recorder's CPU share.
//!
//! `cargo bench --bench overhead` (as root also runs the same against a 3-node raft-kv
//! when `DISTEST_BENCH_KV=1`).

use distest::run::config::RunConfig;
use distest::run::{self, StopFlag};
use distest_checkers::CheckerSpec;
use distest_rundir::TestJson;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}

fn config(
    store: &std::path::Path,
    target: &str,
    nodes: &str,
    concurrency: usize,
    seconds: f64,
) -> RunConfig {
    RunConfig {
        test: TestJson {
            target: target.into(),
            workload: "register".into(),
            nodes_spec: nodes.into(),
            concurrency,
            time_limit_s: seconds,
            nemesis_interval_s: 5.0,
            recovery_s: 0.0,
            op_timeout_s: 5.0,
            seed: 1,
            key_count: 100,
            ops_per_key: 1_000_000,
            checkers: vec![CheckerSpec::named("stats")],
            distest_version: env!("CARGO_PKG_VERSION").into(),
            command: "bench overhead".into(),
            ..TestJson::default()
        },
        store: store.to_path_buf(),
        junit: None,
        node_args: distest::nodes::NodeArgs {
            nodes: Some(nodes.into()),
            cluster_id: "bench".into(),
            subnet: "10.77.230.0/24".into(),
            ..Default::default()
        },
        nemesis_script: None,
    }
}

fn measure(label: &str, cfg: RunConfig) {
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let outcome = run::execute(cfg.clone(), StopFlag::default(), run::provision::provision)
        .expect("the benchmark run works");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let results = outcome.results.expect("results");
    let stats = &results.checkers["stats"].evidence;
    let ops = stats["count"].as_u64().unwrap_or(0);
    let record_s = outcome.record_seconds;
    println!(
        "{label}: {ops} ops in {:.1} s main phase → {:.0} ops/s; whole run {wall:.1} s, CPU {cpu:.1} s, recorder {:.2} s ({:.1}% of CPU); verdict {}",
        cfg.test.time_limit_s,
        ops as f64 / cfg.test.time_limit_s,
        record_s,
        100.0 * record_s / cpu.max(1e-9),
        results.valid
    );
}

fn main() {
    let store = std::env::temp_dir().join(format!("dt-bench-overhead-{}", std::process::id()));
    measure(
        "noop, 64 clients",
        config(&store, "noop", "local:5", 64, 10.0),
    );
    if std::env::var("DISTEST_BENCH_KV").is_ok() {
        measure(
            "raft-kv 3 nodes, 64 clients",
            config(&store, "kv", "local:3", 64, 10.0),
        );
    }
    let _ = std::fs::remove_dir_all(&store);
}
