//! The client protocol's own cost: 64 workers driving ops through [`ProcessClient`]s whose
//! program answers at once, against the same 64 workers on the in-process `noop` target's
//! clients (the reference: no protocol at all), in the same run.
//!
//! `cargo bench --bench protocol` (optionally `DISTEST_BENCH_SECONDS=N`, default 5). Two
//! programs answer: `tests/fixtures/clients/trivial.py` (answers every line at once without
//! parsing it: the protocol's cost) and `scripted.py echo` (parses each op and builds its
//! answer with Python's json module, as a real client would). Besides ops/s it prints the
//! CPU distest itself spent per op, which is what the protocol costs on distest's side.

use distest::targets::file::client::{ClientLog, ClientSpec, ProcessClient};
use distest::targets::Target;
use distest_workloads::{Client, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 64;

type Generator = Arc<Mutex<(Box<dyn Workload>, StdRng)>>;

fn generator() -> Generator {
    let opts = WorkloadOptions {
        key_count: 100,
        ops_per_key: 1_000_000,
        ..WorkloadOptions::default()
    };
    Arc::new(Mutex::new((
        distest_workloads::build("register", &opts).unwrap(),
        StdRng::seed_from_u64(1),
    )))
}

/// Runs `WORKERS` client loops for `seconds`; returns completed ops per second.
async fn drive(clients: Vec<Box<dyn Client>>, seconds: f64) -> f64 {
    let gen = generator();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let gen = gen.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let op = {
                        let mut g = gen.lock().unwrap();
                        let (w, rng) = &mut *g;
                        w.next_op(i as u64, rng)
                    };
                    let done = c.invoke(&op).await;
                    assert_ne!(done.kind, distest_checkers::OpType::Info, "{done:?}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}

/// Starts `WORKERS` programs running `command` (in the fixtures folder) and drives them.
async fn protocol(label: &str, command: &str, seconds: f64, reference: f64) {
    let spec = Arc::new(ClientSpec {
        command: command.into(),
        cwd: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients"),
        nodes: (1..=5)
            .map(|i| (format!("n{i}"), format!("127.0.0.{i}")))
            .collect(),
        settings: Default::default(),
        workload: "register".into(),
        op_timeout: Duration::from_secs(10),
        open_timeout: Duration::from_secs(120),
        log: ClientLog::discard(),
    });
    let opened = Instant::now();
    let mut clients: Vec<Box<dyn Client>> = Vec::new();
    for i in 0..WORKERS {
        clients.push(Box::new(
            ProcessClient::open(spec.clone(), i % 5).await.unwrap(),
        ));
    }
    let open_s = opened.elapsed().as_secs_f64();
    let cpu0 = cpu_seconds();
    let ops_per_s = drive(clients, seconds).await;
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{label}: {ops_per_s:.0} ops/s ({:.2}% of the reference); distest's own CPU {:.1} µs per op; {WORKERS} programs opened in {open_s:.1} s",
        100.0 * ops_per_s / reference,
        1e6 * cpu / (ops_per_s * seconds).max(1.0),
    );
}

fn main() {
    let seconds: f64 = std::env::var("DISTEST_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    // The run's own runtime shape: two worker threads on this two-core machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let noop = distest::targets::noop::Noop::new(5);
        let mut clients = Vec::new();
        for i in 0..WORKERS {
            clients.push(noop.client(i % 5, "register").await.unwrap());
        }
        let reference = drive(clients, seconds).await;
        println!("reference (in-process noop clients, {WORKERS} workers): {reference:.0} ops/s");

        // Without a shell or pyenv shim in between: the interpreter itself.
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or("python3");
        protocol(
            "protocol, trivial.py",
            &format!("exec {python} trivial.py"),
            seconds,
            reference,
        )
        .await;
        protocol(
            "protocol, scripted.py echo (parses JSON)",
            &format!("exec {python} scripted.py echo"),
            seconds,
            reference,
        )
        .await;
    });
}
