//! The example nodes of `examples/maelstrom/` judged on loopback, no root: each runs under
//! routers with its workload's generator and checkers, a cut of one node for part of the
//! run (a simulated partition) where the example is about partitions, and final reads
//! after the heal. Correct examples must be valid, broken ones invalid.
//!
//! This is a small orchestrator of its own (client tasks, history, final ops): the real
//! one, with namespaces and nemeses, is exercised by the root tests of `distest run
//! --target maelstrom`.

mod common;

use common::{Cluster, EXAMPLES};
use distest_checkers::{check_all, CheckContext, History, Op, OpType, Process, Results, Validity};
use distest_maelstrom::client::Client;
use distest_workloads::{Client as _, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const CLIENTS_PER_NODE: usize = 2;
const OP_TIMEOUT: Duration = Duration::from_secs(1);

struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    fn record(&self, mut op: Op) -> Op {
        let mut ops = self.ops.lock().unwrap();
        op.index = ops.len() as u64;
        op.time = self.start.elapsed().as_nanos() as u64;
        ops.push(op.clone());
        op
    }
}

async fn invoke(
    client: &mut Client,
    rec: &Recorder,
    process: u64,
    node: &str,
    req: &OpRequest,
) -> OpType {
    let mut inv = Op::invoke(Process::Client(process), req.f.clone(), req.value.clone());
    inv.key = req.key.clone();
    inv.node = Some(node.to_string());
    let inv = rec.record(inv);
    let c = match tokio::time::timeout(OP_TIMEOUT, client.invoke(req)).await {
        Ok(c) => c,
        Err(_) => distest_workloads::Completion::info(serde_json::Value::Null, "timeout"),
    };
    let value = if c.kind == OpType::Ok || !c.value.is_null() {
        c.value
    } else {
        inv.value.clone()
    };
    let mut done = inv.complete(c.kind, value);
    done.error = c.error;
    rec.record(done);
    c.kind
}

/// Runs `workload` against `program` for `run_for`; when `cut` is given, node 3 is cut off
/// from `cut.0` to `cut.1` into the run. Returns the checkers' results.
fn run(
    tag: &str,
    program: &str,
    workload: &str,
    run_for: Duration,
    cut: Option<(Duration, Duration)>,
    topology: bool,
) -> Results {
    let cluster = Arc::new(Cluster::with(tag, NODES, program, vec![], vec![], |c| {
        if topology {
            let ids = c.node_ids.clone();
            c.topology = Some(distest_maelstrom::topology::topology("grid", &ids).unwrap());
        }
    }));
    cluster.start_all();
    let addrs: Vec<_> = (0..NODES)
        .map(|i| cluster.router(i).client_addr())
        .collect();
    let opts = WorkloadOptions {
        key_count: 3,
        ..WorkloadOptions::default()
    };
    let w: Box<dyn Workload> = distest_workloads::build(workload, &opts).unwrap();
    let checkers: Vec<_> = w.checkers().iter().map(|s| s.build().unwrap()).collect();
    let finals = w.final_ops();
    let gen = Arc::new(Mutex::new((w, StdRng::seed_from_u64(7))));
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        ops: Mutex::new(Vec::new()),
    });
    let next_client = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cutter = cut.map(|(from, to)| {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(from);
            cluster.cut(2, true);
            std::thread::sleep(to - from);
            cluster.cut(2, false);
        })
    });
    let deadline = Instant::now() + run_for;
    let connector = Connector {
        addrs: Arc::new(addrs),
        next: next_client,
        workload: workload.to_string(),
    };
    rt.block_on(async {
        let mut tasks = Vec::new();
        for thread in 0..NODES * CLIENTS_PER_NODE {
            let node = thread % NODES;
            let (gen, rec) = (gen.clone(), rec.clone());
            let mut client = connector.connect(node).await;
            let connector = connector.clone();
            tasks.push(tokio::spawn(async move {
                let mut process = thread as u64;
                while Instant::now() < deadline {
                    let req = {
                        let mut g = gen.lock().unwrap();
                        let (w, rng) = &mut *g;
                        w.next_op(process, rng)
                    };
                    if invoke(&mut client, &rec, process, &format!("n{}", node + 1), &req).await
                        == OpType::Info
                    {
                        process += (NODES * CLIENTS_PER_NODE) as u64;
                        client = connector.connect(node).await;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        if let Some(c) = cutter {
            c.join().unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Final ops: each try under a fresh process, above every main-phase process.
        let mut process = 1_000_000u64;
        for (i, op) in finals
            .iter()
            .flat_map(|op| (0..NODES).map(move |n| (n, op)))
        {
            let mut client = connector.connect(i).await;
            for _attempt in 0..3 {
                process += 1;
                if invoke(&mut client, &rec, process, &format!("n{}", i + 1), op).await
                    == OpType::Ok
                {
                    break;
                }
                client = connector.connect(i).await;
            }
        }
    });
    let ops = std::mem::take(&mut *rec.ops.lock().unwrap());
    let history = History::new(ops).unwrap();
    check_all(&history, &checkers, &CheckContext::default())
}

/// Opens clients with fresh ids (`c1`, `c2`, ...) to the nodes' routers.
#[derive(Clone)]
struct Connector {
    addrs: Arc<Vec<std::net::SocketAddr>>,
    next: Arc<std::sync::atomic::AtomicU64>,
    workload: String,
}

impl Connector {
    async fn connect(&self, node: usize) -> Client {
        let id = format!(
            "c{}",
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        Client::connect(
            self.addrs[node],
            &id,
            &format!("n{}", node + 1),
            &self.workload,
        )
        .await
        .unwrap()
    }
}

fn example(name: &str) -> String {
    format!("{EXAMPLES}/{name}")
}

fn assert_verdict(results: &Results, expected: Validity) {
    assert_eq!(
        results.valid,
        expected,
        "{}",
        results
            .checkers
            .iter()
            .map(|(n, v)| format!("{n}: {} {:?} {}", v.valid, v.anomalies, v.summary))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn echo_is_valid() {
    assert_verdict(
        &run(
            "ex-echo",
            &example("echo.py"),
            "echo",
            Duration::from_secs(1),
            None,
            false,
        ),
        Validity::Valid,
    );
}

#[test]
fn unique_ids_correct_is_valid_and_broken_is_invalid() {
    let ok = run(
        "ex-uid",
        &example("unique_ids.py"),
        "unique-ids",
        Duration::from_secs(2),
        None,
        false,
    );
    assert_verdict(&ok, Validity::Valid);
    let broken = run(
        "ex-uidb",
        &example("unique_ids_broken.py"),
        "unique-ids",
        Duration::from_secs(2),
        None,
        false,
    );
    assert_verdict(&broken, Validity::Invalid);
    assert_eq!(broken.checkers["unique-ids"].anomalies, vec!["duplicated"]);
}

#[test]
fn broadcast_survives_a_cut_and_the_broken_one_loses_messages() {
    let cut = Some((Duration::from_millis(500), Duration::from_millis(1800)));
    let ok = run(
        "ex-bc",
        &example("broadcast.py"),
        "broadcast",
        Duration::from_secs(3),
        cut,
        true,
    );
    assert_verdict(&ok, Validity::Valid);
    let broken = run(
        "ex-bcb",
        &example("broadcast_broken.py"),
        "broadcast",
        Duration::from_secs(3),
        cut,
        true,
    );
    assert_verdict(&broken, Validity::Invalid);
}

#[test]
fn g_counter_on_seq_kv_is_valid_across_a_cut() {
    let cut = Some((Duration::from_millis(500), Duration::from_millis(1500)));
    let ok = run(
        "ex-gc",
        &example("g_counter.py"),
        "g-counter",
        Duration::from_secs(3),
        cut,
        false,
    );
    assert_verdict(&ok, Validity::Valid);
}

#[test]
fn lin_kv_proxy_is_linearizable_and_the_caching_one_is_not() {
    let ok = run(
        "ex-lkv",
        &example("lin_kv_proxy.py"),
        "lin-kv",
        Duration::from_secs(3),
        None,
        false,
    );
    assert_verdict(&ok, Validity::Valid);
    let broken = run(
        "ex-lkvc",
        &example("lin_kv_proxy_cached.py"),
        "lin-kv",
        Duration::from_secs(3),
        None,
        false,
    );
    assert_verdict(&broken, Validity::Invalid);
}

#[test]
fn kafka_with_one_authoritative_copy_is_valid_across_a_cut() {
    let cut = Some((Duration::from_millis(500), Duration::from_millis(1500)));
    let ok = run(
        "ex-kafka",
        &example("kafka.py"),
        "kafka",
        Duration::from_secs(3),
        cut,
        false,
    );
    assert_verdict(&ok, Validity::Valid);
    assert!(
        ok.checkers["kafka"].evidence["polled_record_count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn g_set_by_gossip_is_valid_across_a_cut() {
    let cut = Some((Duration::from_millis(500), Duration::from_millis(1800)));
    let ok = run(
        "ex-gset",
        &example("g_set.py"),
        "g-set",
        Duration::from_secs(3),
        cut,
        false,
    );
    assert_verdict(&ok, Validity::Valid);
}

#[test]
fn pn_counter_on_seq_kv_is_valid() {
    let ok = run(
        "ex-pn",
        &example("g_counter.py"),
        "pn-counter",
        Duration::from_secs(2),
        None,
        false,
    );
    assert_verdict(&ok, Validity::Valid);
}

#[test]
fn transactions_on_one_authoritative_copy_are_strict_serializable_across_a_cut() {
    let cut = Some((Duration::from_millis(500), Duration::from_millis(1500)));
    for workload in ["txn-list-append", "txn-rw-register"] {
        let ok = run(
            &format!("ex-{workload}"),
            &example("txn.py"),
            workload,
            Duration::from_secs(3),
            cut,
            false,
        );
        assert_verdict(&ok, Validity::Valid);
    }
}
