//! The run orchestrator: the phases of `distest run`.
//!
//! 1. provision nodes → set up the target → wait until healthy
//! 2. main phase: clients (concurrency N, optional rate) + the nemesis schedule
//! 3. heal all faults → recovery wait → final ops (final reads) on every node
//! 4. collect node logs → stop and wipe the target (unless `--leave-running`)
//! 5. check → `results.json` → report → exit code from the verdict
//!
//! Ctrl-C (or SIGTERM) ends the main phase early; phases 3–5 still run, so faults are
//! healed and what was recorded is checked and reported. The history is appended while
//! the run goes (see [`recorder`]).

pub mod config;
pub mod online;
pub mod progress;
pub mod provision;
pub mod recorder;

use crate::targets::Target;
use anyhow::Context;
use config::RunConfig;
use distest_checkers::{Op, OpType, Process, Results};
use distest_nemeses::NodeShell;
use distest_workloads::{Completion, OpRequest, Workload, WorkloadOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recorder::Recorder;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What provisioning hands the orchestrator: the target on its nodes, shells for the
/// nemesis, and a guard that tears the nodes down when dropped.
pub struct Provisioned {
    pub target: Arc<dyn Target>,
    pub shells: Vec<Arc<dyn NodeShell>>,
    pub guard: Box<dyn Send>,
}

/// Shared stop flag: set by Ctrl-C/SIGTERM or the end of the main phase.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a run ended.
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub results: Option<Results>,
    pub exit_code: i32,
    /// Seconds spent recording ops (the recorder's own CPU cost).
    pub record_seconds: f64,
}

/// Appends a timestamped line to the run's `distest.log` and to tracing.
#[derive(Clone)]
pub struct RunLog {
    file: Arc<Mutex<std::fs::File>>,
}

impl RunLog {
    fn create(path: &Path) -> anyhow::Result<RunLog> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(RunLog {
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn line(&self, text: &str) {
        use std::io::Write;
        tracing::info!("{text}");
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{stamp} {text}");
    }
}

/// Runs a whole test. `provision` brings up nodes and the target for `cfg` (it may update
/// `cfg.nodes`); it runs after the run directory exists so its failure is recorded too.
pub fn execute(
    mut cfg: RunConfig,
    stop: StopFlag,
    provision: impl FnOnce(&mut RunConfig, &RunLog) -> anyhow::Result<Provisioned>,
) -> anyhow::Result<RunOutcome> {
    let store = crate::store::Store::new(&cfg.store);
    let run_dir = store.create_run(&cfg.target, &cfg.workload, &cfg.nemesis_label())?;
    let log = RunLog::create(&run_dir.join("distest.log"))?;
    log.line(&format!("run directory {}", run_dir.display()));
    write_test_json(&run_dir, &cfg)?;

    let provisioned = match provision(&mut cfg, &log) {
        Ok(p) => p,
        Err(e) => {
            log.line(&format!(
                "provisioning failed: {}",
                crate::commands::one_sentence(&e)
            ));
            return Err(e);
        }
    };
    write_test_json(&run_dir, &cfg)?;
    let target = provisioned.target.clone();

    log.line(&format!(
        "setting up {} on {}",
        target.name(),
        cfg.nodes.join(", ")
    ));
    if let Err(e) = target.setup() {
        log.line(&format!(
            "setup failed: {}",
            crate::commands::one_sentence(&e)
        ));
        collect_all_logs(&run_dir, &cfg, target.as_ref(), &log);
        let _ = target.teardown(true);
        drop(provisioned);
        return Err(e.context(format!("could not set up {}", cfg.target)));
    }

    let recorder = Recorder::create(&run_dir.join("history.jsonl"))
        .context("could not create history.jsonl")?;
    let flusher = recorder.spawn_flusher();
    // Ends the main phase at the first anomaly (--stop-on-anomaly); unlike Ctrl-C, the
    // run then goes on as usual (recovery, final reads).
    let anomaly_stop = StopFlag::default();
    let online = start_online(&cfg, &recorder, &log, &anomaly_stop)?;
    recorder.attach_online(online.clone());
    let main_result = main_phases(&cfg, &provisioned, &recorder, &stop, &anomaly_stop, &log);
    if let Err(e) = &main_result {
        log.line(&format!("run failed: {}", crate::commands::one_sentence(e)));
    }

    // Phase 4: logs, then stop the system (always, also after an error).
    collect_all_logs(&run_dir, &cfg, target.as_ref(), &log);
    if cfg.leave_running {
        log.line("leaving the target running (--leave-running)");
        std::mem::forget(provisioned.guard);
    } else {
        if let Err(e) = target.teardown(true) {
            log.line(&format!("teardown failed: {e:#}"));
        }
        drop(provisioned.guard);
    }
    let record_seconds = recorder.counters.record_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let recorded = recorder.close();
    let _ = flusher.join();
    let recorded = recorded.map_err(|e| anyhow::anyhow!("could not write history.jsonl: {e}"))?;
    log.line(&format!("{recorded} ops recorded"));

    // Phase 5: check and report what was recorded, even after Ctrl-C or a failed phase.
    let online_results = match online.finish() {
        // Nothing recorded: the offline check says so (an error), as for any empty file.
        Ok(_) if recorded == 0 => Err("no op was recorded".to_string()),
        other => other,
    };
    let results = match online_results {
        Ok(mut results) => {
            log.line(&format!(
                "checked online as recorded: verdict {} (the offline check's of history.jsonl)",
                results.valid
            ));
            if let Some((n, p50, p99, max)) = online.report_latency_ms() {
                log.line(&format!(
                    "online: {} anomalies reported, {n} timed: report latency p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
                    online.anomaly_count()
                ));
            }
            results.first_anomaly = online.first_anomaly().map(|r| {
                let mut a = r.anomaly;
                a.reported_time = Some(r.reported_ns);
                a
            });
            write_results(&run_dir, &results)?;
            results
        }
        Err(e) => {
            log.line(&format!("online checking stopped ({e}); checking offline"));
            check_run(&run_dir, &cfg, &log)?
        }
    };
    let exit_code = match &main_result {
        Err(_) if results.valid != distest_checkers::Validity::Invalid => 3,
        _ => results.valid.exit_code(),
    };
    finish_reports(&run_dir, &cfg, &results, &log);
    main_result?;
    Ok(RunOutcome {
        run_dir,
        results: Some(results),
        exit_code,
        record_seconds,
    })
}

/// Starts online checking with the run's checkers: the first anomaly is logged, printed
/// (by the progress line) and, with `--stop-on-anomaly`, ends the main phase.
fn start_online(
    cfg: &RunConfig,
    recorder: &Recorder,
    log: &RunLog,
    anomaly_stop: &StopFlag,
) -> anyhow::Result<online::OnlineMonitor> {
    let checkers = cfg
        .checkers
        .iter()
        .map(|s| s.build().map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let clock = recorder.clone();
    let (log, stop, stop_on_anomaly) = (log.clone(), anomaly_stop.clone(), cfg.stop_on_anomaly);
    Ok(online::OnlineMonitor::start(
        checkers,
        move || clock.now_ns(),
        move |r| {
            log.line(&format!("first anomaly: {}", describe_first(r)));
            if stop_on_anomaly {
                log.line("--stop-on-anomaly: ending the main phase");
                stop.stop();
            }
        },
    ))
}

/// The first anomaly in one line: what, where and how soon it was reported.
pub fn describe_first(r: &online::Reported) -> String {
    format!(
        "{} [{}: op {} at {:.1} s, reported {} ms later]",
        r.anomaly.text,
        r.anomaly.checker,
        r.anomaly.index,
        r.anomaly.time as f64 / 1e9,
        r.reported_ns.saturating_sub(r.anomaly.time) / 1_000_000
    )
}

fn write_results(run_dir: &Path, results: &Results) -> anyhow::Result<()> {
    std::fs::write(
        run_dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )
    .context("could not write results.json")
}

/// Copies every node's logs into `run_dir/nodes/<node>/`; failures are logged, not fatal.
fn collect_all_logs(run_dir: &Path, cfg: &RunConfig, target: &dyn Target, log: &RunLog) {
    for (i, name) in cfg.nodes.iter().enumerate() {
        let dest = run_dir.join("nodes").join(name);
        if let Err(e) = std::fs::create_dir_all(&dest)
            .map_err(anyhow::Error::from)
            .and_then(|_| target.collect_logs(i, &dest))
        {
            log.line(&format!("could not collect logs of {name}: {e:#}"));
        }
    }
}

fn write_test_json(run_dir: &Path, cfg: &RunConfig) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(cfg)?;
    std::fs::write(run_dir.join("test.json"), text).context("could not write test.json")
}

/// Phases 2 and 3 on a tokio runtime.
fn main_phases(
    cfg: &RunConfig,
    provisioned: &Provisioned,
    recorder: &Recorder,
    stop: &StopFlag,
    anomaly_stop: &StopFlag,
    log: &RunLog,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("dt-client")
        .build()
        .context("could not start the async runtime")?;
    let workload_opts = WorkloadOptions {
        key_count: cfg.key_count,
        ops_per_key: cfg.ops_per_key,
        consistency_model: cfg.consistency_model.clone(),
        ..WorkloadOptions::default()
    };
    let workload = distest_workloads::build(&cfg.workload, &workload_opts)?;
    let final_ops = workload.final_ops();
    let nemesis = if cfg.nemesis.is_empty() {
        None
    } else {
        Some(
            distest_nemeses::build(
                &cfg.nemesis,
                distest_nemeses::NemesisContext {
                    nodes: provisioned.shells.clone(),
                    target: provisioned.target.clone(),
                    seed: cfg.seed,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    };
    let target = provisioned.target.clone();
    let progress = progress::Progress::start(recorder.clone(), cfg.time_limit_s);

    // Phase 2: clients and nemesis until the time limit or Ctrl-C.
    log.line(&format!(
        "main phase: {} clients, {:.0} s, nemesis {}",
        cfg.concurrency,
        cfg.time_limit_s,
        cfg.nemesis_label()
    ));
    progress.phase("main");
    let main_done = StopFlag::default();
    let deadline = Instant::now() + Duration::from_secs_f64(cfg.time_limit_s);
    let nemesis_thread = nemesis.map(|n| {
        spawn_nemesis(
            n,
            recorder.clone(),
            Duration::from_secs_f64(cfg.nemesis_interval_s),
            cfg.seed,
            deadline,
            main_done.clone(),
            stop.clone(),
            log.clone(),
            progress.clone(),
        )
    });
    let generator = Arc::new(Mutex::new((workload, StdRng::seed_from_u64(cfg.seed))));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for thread in 0..cfg.concurrency {
            tasks.push(tokio::spawn(client_loop(ClientLoop {
                thread,
                concurrency: cfg.concurrency,
                node: thread % cfg.nodes.len().max(1),
                node_name: cfg.nodes.get(thread % cfg.nodes.len().max(1)).cloned(),
                target: target.clone(),
                workload: cfg.workload.clone(),
                generator: generator.clone(),
                recorder: recorder.clone(),
                stop: stop.clone(),
                anomaly_stop: anomaly_stop.clone(),
                deadline,
                rate_per_client: cfg.rate.map(|r| r / cfg.concurrency as f64),
                op_timeout: Duration::from_secs_f64(cfg.op_timeout_s),
                seed: cfg.seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            })));
        }
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!("a client task panicked: {e}");
            }
        }
    });
    main_done.stop();
    if anomaly_stop.is_stopped() && !stop.is_stopped() {
        log.line("stopped at the first anomaly: healing, checking and reporting as usual");
    }
    if stop.is_stopped() {
        log.line("interrupted: ending the main phase early; healing, checking and reporting what was recorded");
    }

    // Phase 3: heal, recover, final ops.
    progress.phase("heal");
    let heal_errors = match nemesis_thread {
        Some(handle) => handle
            .join()
            .unwrap_or_else(|_| vec!["the nemesis thread panicked".into()]),
        None => Vec::new(),
    };
    for e in &heal_errors {
        log.line(&format!("heal: {e}"));
    }
    if !final_ops.is_empty() && !stop.is_stopped() {
        progress.phase("recovery");
        log.line(&format!("recovery wait {:.0} s", cfg.recovery_s));
        sleep_unless_stopped(Duration::from_secs_f64(cfg.recovery_s), stop);
        progress.phase("final reads");
        runtime.block_on(final_phase(cfg, &target, recorder, &final_ops));
    }
    progress.finish();
    runtime.shutdown_timeout(Duration::from_secs(2));
    if heal_errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "healing failed on some nodes ({}); run `distest env down` to clean up",
            heal_errors.join("; ")
        )
    }
}

fn sleep_unless_stopped(total: Duration, stop: &StopFlag) {
    let end = Instant::now() + total;
    while Instant::now() < end && !stop.is_stopped() {
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
}

struct ClientLoop {
    thread: usize,
    concurrency: usize,
    node: usize,
    node_name: Option<String>,
    target: Arc<dyn Target>,
    workload: String,
    generator: Arc<Mutex<(Box<dyn Workload>, StdRng)>>,
    recorder: Recorder,
    stop: StopFlag,
    /// Raised at the first anomaly under `--stop-on-anomaly`.
    anomaly_stop: StopFlag,
    deadline: Instant,
    rate_per_client: Option<f64>,
    op_timeout: Duration,
    seed: u64,
}

/// One logical client thread: runs ops one at a time under successive process ids.
async fn client_loop(c: ClientLoop) {
    let mut process = c.thread as u64;
    let mut pace = StdRng::seed_from_u64(c.seed);
    let mut client = None;
    let mut failures_in_a_row = 0u32;
    // Stagger the start so clients do not move in lockstep.
    if let Some(rate) = c.rate_per_client {
        let wait = pace.gen_range(0.0..1.0 / rate.max(1e-3));
        tokio::time::sleep(Duration::from_secs_f64(wait.min(5.0))).await;
    }
    while Instant::now() < c.deadline && !c.stop.is_stopped() && !c.anomaly_stop.is_stopped() {
        if client.is_none() {
            match c.target.client(c.node, &c.workload).await {
                Ok(cl) => client = Some(cl),
                Err(e) => {
                    tracing::debug!("client {process}: could not connect: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        // The invocation is recorded under the generator's lock, so ops enter the
        // history in the order they were generated: a key's retirement (after its last
        // op) then follows every invocation on it.
        let (req, inv) = {
            let mut g = c.generator.lock().unwrap_or_else(|e| e.into_inner());
            let (w, rng) = &mut *g;
            let req = w.next_op(process, rng);
            let inv = record_invocation(&c.recorder, process, c.node_name.clone(), &req);
            (req, inv)
        };
        let completion = complete_recorded(
            client.as_mut().expect("connected above").as_mut(),
            &c.recorder,
            inv,
            &req,
            c.op_timeout,
        )
        .await;
        if completion == OpType::Info {
            // Indeterminate: this process may still have an op in flight, so it retires.
            process += c.concurrency as u64;
            client = None;
        }
        // A node that refuses at once (no leader in a minority partition, connection
        // refused) would otherwise be hammered in a tight loop, flooding the history with
        // failures that say nothing new: back off exponentially while failures repeat.
        if completion == OpType::Ok {
            failures_in_a_row = 0;
        } else {
            failures_in_a_row = (failures_in_a_row + 1).min(6);
            let backoff = Duration::from_millis(3 << failures_in_a_row);
            tokio::time::sleep(backoff).await;
        }
        if let Some(rate) = c.rate_per_client {
            // Exponential gaps give a Poisson arrival process at the requested rate.
            let gap = -pace.gen_range(f64::EPSILON..1.0f64).ln() / rate.max(1e-3);
            tokio::time::sleep(Duration::from_secs_f64(gap.min(10.0))).await;
        }
    }
}

/// Records the invocation, runs it with a timeout, records the completion.
async fn invoke_recorded(
    client: &mut dyn distest_workloads::Client,
    recorder: &Recorder,
    process: u64,
    node: Option<String>,
    req: &OpRequest,
    op_timeout: Duration,
) -> OpType {
    let inv = record_invocation(recorder, process, node, req);
    complete_recorded(client, recorder, inv, req, op_timeout).await
}

/// Records the invocation of `req`, then the retirement of the keys it is the last op on.
fn record_invocation(
    recorder: &Recorder,
    process: u64,
    node: Option<String>,
    req: &OpRequest,
) -> Op {
    let mut inv = Op::invoke(Process::Client(process), req.f.clone(), req.value.clone());
    inv.key = req.key.clone();
    inv.node = node;
    let inv = recorder.record(inv);
    for key in &req.retires {
        recorder.retire(key);
    }
    inv
}

/// Runs the recorded invocation `inv` with a timeout and records its completion.
async fn complete_recorded(
    client: &mut dyn distest_workloads::Client,
    recorder: &Recorder,
    inv: Op,
    req: &OpRequest,
    op_timeout: Duration,
) -> OpType {
    let completion = match tokio::time::timeout(op_timeout, client.invoke(req)).await {
        Ok(c) => c,
        Err(_) => Completion::info(Value::Null, "timeout"),
    };
    debug_assert!(completion.kind.is_completion());
    let value = if completion.kind == OpType::Ok || !completion.value.is_null() {
        completion.value
    } else {
        inv.value.clone()
    };
    let mut done = inv.complete(completion.kind, value);
    done.error = completion.error;
    recorder.record(done);
    completion.kind
}

/// Runs the workload's final ops once on every node, each under a fresh process.
async fn final_phase(
    cfg: &RunConfig,
    target: &Arc<dyn Target>,
    recorder: &Recorder,
    ops: &[OpRequest],
) {
    // Processes above every id the main phase could have used.
    let base = 1_000_000_000u64;
    let mut tasks = Vec::new();
    for (i, name) in cfg.nodes.iter().enumerate() {
        let target = target.clone();
        let recorder = recorder.clone();
        let ops = ops.to_vec();
        let name = name.clone();
        let workload = cfg.workload.clone();
        let timeout = Duration::from_secs_f64(cfg.op_timeout_s);
        tasks.push(tokio::spawn(async move {
            let mut process = base + i as u64 * 1_000;
            for op in &ops {
                // A few tries: the node may still be recovering. Each try is its own op.
                for _attempt in 0..5 {
                    let Ok(mut client) = target.client(i, &workload).await else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    };
                    let kind = invoke_recorded(
                        client.as_mut(),
                        &recorder,
                        process,
                        Some(name.clone()),
                        op,
                        timeout,
                    )
                    .await;
                    process += 1;
                    if kind == OpType::Ok {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The nemesis thread: a fault every interval until the main phase ends, then the heal.
/// Returns the heal errors.
#[allow(clippy::too_many_arguments)]
fn spawn_nemesis(
    mut nemesis: Box<dyn distest_nemeses::Nemesis>,
    recorder: Recorder,
    interval: Duration,
    seed: u64,
    deadline: Instant,
    main_done: StopFlag,
    stop: StopFlag,
    log: RunLog,
    progress: progress::Progress,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::Builder::new()
        .name("dt-nemesis".into())
        .spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x6e656d65736973);
            loop {
                // Jepsen-style jitter: each gap is uniform in [interval/2, 3*interval/2).
                let gap = interval.mul_f64(rng.gen_range(0.5..1.5));
                let end = Instant::now() + gap;
                while Instant::now() < end && !main_done.is_stopped() && !stop.is_stopped() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // No new fault once the main phase is over: only the heal remains.
                if main_done.is_stopped() || stop.is_stopped() || Instant::now() >= deadline {
                    break;
                }
                let op = nemesis.next_op();
                let invoked = record_fault_invoke(&recorder, &op);
                let result = nemesis.invoke(&op);
                record_fault_completion(&recorder, invoked, result, &log);
                progress.set_faults(nemesis.active());
            }
            let mut errors = Vec::new();
            // `heal` reports its ops once it has performed them all, so their invocations
            // land after the effect; what matters to readers of the history — a fault ends
            // no later than its stop op's completion — still holds.
            for (op, result) in nemesis.heal() {
                if let Err(e) = &result {
                    errors.push(e.to_string());
                }
                let invoked = record_fault_invoke(&recorder, &op);
                record_fault_completion(&recorder, invoked, result, &log);
            }
            progress.set_faults(nemesis.active());
            errors
        })
        .expect("spawning the nemesis thread")
}

/// Records a fault's invocation; call it before performing the fault, so the history's
/// invoke precedes the effect.
fn record_fault_invoke(recorder: &Recorder, op: &distest_nemeses::FaultOp) -> Op {
    let mut inv = Op::invoke(Process::Nemesis, op.f.clone(), op.value.clone());
    inv.kind = OpType::Info;
    recorder.record(inv)
}

/// Records a fault's completion: what was done, or why it failed.
fn record_fault_completion(
    recorder: &Recorder,
    inv: Op,
    result: Result<Value, distest_nemeses::NemesisError>,
    log: &RunLog,
) {
    let mut done = inv.clone();
    match result {
        Ok(value) => {
            log.line(&format!("nemesis {} {}", inv.f, value));
            done.value = value;
        }
        Err(e) => {
            log.line(&format!("nemesis {} failed: {e}", inv.f));
            done.error = Some(Value::String(e.to_string()));
        }
    }
    recorder.record(done);
}

/// Checks the recorded history with the run's checkers and writes `results.json`.
pub fn check_run(run_dir: &Path, cfg: &RunConfig, log: &RunLog) -> anyhow::Result<Results> {
    let history = crate::commands::check::load_history(&run_dir.join("history.jsonl"), None)?;
    let checkers = cfg
        .checkers
        .iter()
        .map(|s| s.build().map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    log.line(&format!(
        "checking {} ops with {}",
        history.len(),
        cfg.checkers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let results = crate::commands::check::check_with_limit(&history, &checkers, None);
    std::fs::write(
        run_dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )
    .context("could not write results.json")?;
    log.line(&format!("verdict: {}", results.valid));
    Ok(results)
}

/// Report and JUnit; failures here are logged, never fatal to the verdict.
fn finish_reports(run_dir: &Path, cfg: &RunConfig, results: &Results, log: &RunLog) {
    if let Err(e) = distest_reports::render_run(run_dir) {
        log.line(&format!("could not render the report: {e}"));
    }
    if let Some(path) = &cfg.junit {
        if let Err(e) = write_junit(path, &[(run_label(run_dir), results.clone())]) {
            log.line(&format!("could not write JUnit XML: {e:#}"));
        }
    }
    if let Err(e) = distest_reports::store_index(&cfg.store) {
        log.line(&format!("could not index the store: {e}"));
    }
}

/// A run's name in reports: `<test>/<timestamp>`.
pub fn run_label(run_dir: &Path) -> String {
    let mut parts = run_dir.iter().rev().take(2).collect::<Vec<_>>();
    parts.reverse();
    parts
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes JUnit XML (one test case per checker) for `results`.
pub fn write_junit(path: &Path, results: &[(String, Results)]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, distest_reports::junit(results))
        .with_context(|| format!("could not write JUnit XML to {}", path.display()))
}
