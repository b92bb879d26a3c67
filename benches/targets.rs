//! Throughput and latency of the bundled raft-kv against etcd, on the same local 3-node
//! namespace cluster, measured in one run: puts then gets, closed loop, at 1, 16 and 64
//! concurrent clients. Row `kv+lazyfs` is raft-kv with its data directories served
//! through lazyfs (what `--nemesis disk` sets up), against plain `kv` in the same run.
//! Needs root (namespaces), /dev/fuse and etcd (`scripts/setup.sh`).
//!
//! `cargo bench --bench targets` (set `DISTEST_BENCH_SECONDS` to change the 5 s per cell,
//! `DISTEST_BENCH_TARGETS=kv,kv+lazyfs` to run only some rows).

use distest::nodes::{ClusterSpec, LocalCluster};
use distest::targets::{self, TargetOptions};
use distest_checkers::OpType;
use distest_workloads::OpRequest;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Cell {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

async fn load(target: Arc<dyn targets::Target>, f: &str, clients: usize, seconds: f64) -> Cell {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let target = target.clone();
        let f = f.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = target.client(c % 3, "register").await.expect("client");
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let key = json!((c as u64 * 1_000_003 + i) % 100);
                let op = if f == "put" {
                    OpRequest::keyed("write", key, json!(i))
                } else {
                    OpRequest::keyed("read", key, serde_json::Value::Null)
                };
                let start = Instant::now();
                let done = client.invoke(&op).await;
                if done.kind == OpType::Ok {
                    latencies.push(start.elapsed().as_secs_f64() * 1e3);
                } else {
                    errors += 1;
                    if done.kind == OpType::Info {
                        client = target.client(c % 3, "register").await.expect("client");
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Cell {
        ops_per_s: all.len() as f64 / seconds,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        errors,
    }
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the targets benchmark needs root to build network namespaces");
        return;
    }
    let seconds: f64 = std::env::var("DISTEST_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("| target | op | clients | ops/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    let only: Option<Vec<String>> = std::env::var("DISTEST_BENCH_TARGETS")
        .ok()
        .map(|s| s.split(',').map(|t| t.trim().to_string()).collect());
    for row in ["kv", "kv+lazyfs", "etcd"] {
        if only.as_ref().is_some_and(|o| !o.iter().any(|t| t == row)) {
            continue;
        }
        let (name, lazyfs) = match row.split_once('+') {
            Some((name, _)) => (name, true),
            None => (row, false),
        };
        if name == "etcd" && !std::path::Path::new("/usr/bin/etcd").exists() {
            println!("| etcd | - | - | not installed | | | |");
            continue;
        }
        let spec = ClusterSpec {
            cluster_id: "bnch".into(),
            node_count: 3,
            subnet: "10.77.231.0/24".parse().unwrap(),
            base_dir: "/tmp/dt-bench-nodes".into(),
        };
        let cluster = LocalCluster::up(spec).expect("local cluster");
        let opts = TargetOptions {
            op_timeout: Duration::from_secs(5),
            lazyfs,
            ..Default::default()
        };
        let nodes = cluster.nodes();
        let target = targets::registry::find(name)
            .and_then(|entry| {
                entry.build(targets::TargetContext {
                    node_count: nodes.len(),
                    nodes,
                    options: opts,
                })
            })
            .expect("target");
        target.setup().expect("setup");
        for f in ["put", "get"] {
            for clients in [1, 16, 64] {
                let cell = runtime.block_on(load(target.clone(), f, clients, seconds));
                println!(
                    "| {row} | {f} | {clients} | {:.0} | {:.2} | {:.2} | {} |",
                    cell.ops_per_s, cell.p50_ms, cell.p99_ms, cell.errors
                );
            }
        }
        target.teardown(true).expect("teardown");
        drop(cluster);
    }
}
