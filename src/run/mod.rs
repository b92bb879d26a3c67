//! The run orchestrator: the phases of `distest run`.
//!
//! 1. provision nodes → set up the target → wait until healthy ([`provision`])
//! 2. main phase: clients ([`clients`]) + the fault schedule ([`nemesis`]), until the
//!    time limit or Ctrl-C
//! 3. heal all faults → recovery wait → final ops (final reads) on every node
//! 4. collect node logs → stop and wipe the target (unless `--leave-running`)
//! 5. verify (`crate::verify`) → `results.json` → report → exit code from the verdict
//!
//! Ctrl-C (or SIGTERM) ends the main phase early; phases 3–5 still run, so faults are
//! healed and what was recorded is checked and reported, marked interrupted (exit 2
//! unless an anomaly was found). A second signal skips the recovery wait and final ops,
//! never the heal or the teardown (see `crate::signals`). A requested fault that was
//! tried and never applied makes the run fail (exit 3) after it checked and reported.
//! The history is appended while the run goes (see [`recorder`]) and handed to the
//! checkers and the report from memory.
//! Time and randomness (seeded streams, pacing, process ids, phase lengths) are
//! `distest-generator`'s; this module only follows them.

pub mod clients;
pub mod config;
pub mod log;
pub mod nemesis;
pub mod progress;
pub mod provision;
pub mod recorder;

pub use crate::signals::StopFlag;
pub use log::RunLog;

use crate::one_sentence;
use crate::targets::Target;
use anyhow::Context;
use config::RunConfig;
use distest_checkers::Results;
use distest_generator::phases::PhaseTimes;
use distest_generator::{rng_for, seed, Pace, Phase};
use distest_nemeses::NodeShell;
use distest_rundir::{files, RunDir, Store};
use distest_workloads::{Workload, WorkloadOptions};
use recorder::Recorder;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What provisioning hands the orchestrator: the target on its nodes, shells for the
/// nemesis, and what holds the nodes until the run is over.
pub struct Provisioned {
    pub target: Arc<dyn Target>,
    pub shells: Vec<Arc<dyn NodeShell>>,
    pub guard: Box<dyn NodesGuard>,
}

/// How a run holds its nodes: released at its end (a local cluster it created is removed,
/// its claim on the nodes dropped), also when it fails half-way (on drop).
pub trait NodesGuard: Send {
    /// The run is over and its target torn down: remove what the run created and give
    /// the nodes up. Returns what is still left on them, as one sentence, if anything.
    fn release(self: Box<Self>) -> Option<String>;
    /// `--leave-running`: keep everything up, and say so to the next run on these nodes.
    fn leave_running(self: Box<Self>);
}

/// How a run ended.
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub results: Option<Results>,
    pub exit_code: i32,
    /// Seconds spent recording ops (the recorder's own CPU cost).
    pub record_seconds: f64,
}

/// The workload a run's options describe.
pub fn workload_of(test: &distest_rundir::TestJson) -> anyhow::Result<Box<dyn Workload>> {
    let opts = WorkloadOptions {
        key_count: test.key_count,
        ops_per_key: test.ops_per_key,
        consistency_model: test.consistency_model.clone(),
        ..WorkloadOptions::default()
    };
    Ok(distest_workloads::build(&test.workload, &opts)?)
}

/// Runs a whole test. `provision` brings up nodes and the target for `cfg` (it may update
/// `cfg.test.nodes`). It runs before the run directory exists: a run refused there (a
/// cluster in use, a fault that cannot be applied) writes nothing; its log lines go to
/// `distest.log` once the directory exists.
pub fn execute(
    mut cfg: RunConfig,
    stop: StopFlag,
    provision: impl FnOnce(&mut RunConfig, &RunLog) -> anyhow::Result<Provisioned>,
) -> anyhow::Result<RunOutcome> {
    let log = RunLog::in_memory();
    let provisioned = provision(&mut cfg, &log)?;
    let target = provisioned.target.clone();
    let nemesis = build_nemesis(&cfg, &provisioned)?;

    let store = Store::new(&cfg.store);
    let run = store.create_run(
        &cfg.test.target,
        &cfg.test.workload,
        &cfg.test.nemesis_label(),
    )?;
    log.attach(&run.file(files::DISTEST_LOG))?;
    log.line(&format!("run directory {}", run.path().display()));
    run.write_test(&cfg.test)?;

    let recorder = Recorder::create(&run.file(files::HISTORY_JSONL))
        .context("could not create history.jsonl")?;
    let flusher = recorder.spawn_flusher();
    let main_result = if stop.is_stopped() {
        log.line("interrupted before the target was set up: nothing to run");
        Ok(Vec::new())
    } else {
        log.line(&format!(
            "setting up {} on {}",
            target.name(),
            cfg.test.nodes.join(", ")
        ));
        match target.setup() {
            Ok(()) => main_phases(&cfg, &provisioned, nemesis, &recorder, &stop, &log),
            Err(e) => Err(e.context(format!("could not set up {}", cfg.test.target))),
        }
    };
    if let Err(e) = &main_result {
        log.line(&format!("run failed: {}", one_sentence(e)));
    }

    // Phase 4: logs, then stop the system (always, also after an error).
    collect_all_logs(&run, &cfg, target.as_ref(), &log);
    let mut left = None;
    if cfg.test.leave_running {
        log.line("leaving the target running (--leave-running)");
        provisioned.guard.leave_running();
    } else {
        if let Err(e) = target.teardown(true) {
            log.line(&format!("teardown failed: {e:#}"));
        }
        left = provisioned.guard.release();
    }
    if let Some(left) = &left {
        log.say(&format!("distest: {left}"));
    }
    let record_seconds = recorder.counters.record_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let recorded = recorder.close();
    let _ = flusher.join();
    let recorded = recorded.map_err(|e| anyhow::anyhow!("could not write history.jsonl: {e}"))?;
    log.line(&format!("{recorded} ops recorded"));

    // Phase 5: check and report what was recorded, even after Ctrl-C or a failed phase.
    let history = recorder
        .take_history()
        .context("the recorded history is not a valid history")?;
    log.line(&format!(
        "checking {} ops with {}",
        history.len(),
        cfg.test
            .checkers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut results = crate::verify::check(&history, &cfg.test.checkers, None)?;
    if let Some(signal) = stop.interrupted_by() {
        log.line(&format!(
            "interrupted by {signal}: the run did not run its course; the verdict is at best unknown"
        ));
        results.mark_interrupted();
    }
    for never in never_applied_faults(&cfg, &history)? {
        log.line(&never);
        results.mark_failed(never);
    }
    match &main_result {
        Err(e) => results.mark_failed(one_sentence(e)),
        Ok(heal_errors) if !heal_errors.is_empty() => results.mark_failed(format!(
            "healing failed on some nodes ({}); run `distest env down` to clean up",
            heal_errors.join("; ")
        )),
        Ok(_) => {}
    }
    crate::verify::write_results(&run, &results)?;
    log.line(&format!("verdict: {}", results.valid));
    let exit_code = results.exit_code();
    finish_reports(&run, &cfg, history, &results, &log);
    Ok(RunOutcome {
        run_dir: run.path().to_path_buf(),
        results: Some(results),
        exit_code,
        record_seconds,
    })
}

/// The requested faults that the run tried and never applied, one sentence each.
fn never_applied_faults(
    cfg: &RunConfig,
    history: &distest_checkers::History,
) -> anyhow::Result<Vec<String>> {
    if cfg.test.nemesis.is_empty() {
        return Ok(Vec::new());
    }
    let events = distest_reports::faults::nemesis_events(history);
    let completions = events
        .iter()
        .filter(|e| !std::ptr::eq(e.op, e.invoke))
        .map(|e| {
            (
                e.op.f.as_str(),
                e.op.error.as_ref().map(|v| v.as_str().unwrap_or("failed")),
            )
        });
    Ok(
        distest_nemeses::never_applied(&cfg.test.nemesis, completions)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .iter()
            .map(|n| n.sentence())
            .collect(),
    )
}

/// The run's nemesis on the provisioned nodes; `None` without faults.
fn build_nemesis(
    cfg: &RunConfig,
    provisioned: &Provisioned,
) -> anyhow::Result<Option<Box<dyn distest_nemeses::Nemesis>>> {
    if cfg.test.nemesis.is_empty() {
        return Ok(None);
    }
    let nemesis = distest_nemeses::build(
        &cfg.test.nemesis,
        distest_nemeses::NemesisContext {
            nodes: provisioned.shells.clone(),
            target: provisioned.target.clone(),
            seed: cfg.test.seed,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(nemesis))
}

/// Copies every node's logs into `nodes/<node>/`; failures are logged, not fatal.
fn collect_all_logs(run: &RunDir, cfg: &RunConfig, target: &dyn Target, log: &RunLog) {
    for (i, name) in cfg.test.nodes.iter().enumerate() {
        let dest = run.node_dir(name);
        if let Err(e) = std::fs::create_dir_all(&dest)
            .map_err(anyhow::Error::from)
            .and_then(|_| target.collect_logs(i, &dest))
        {
            log.line(&format!("could not collect logs of {name}: {e:#}"));
        }
    }
}

/// Phases 2 and 3 on a tokio runtime; returns the errors of the final heal.
fn main_phases(
    cfg: &RunConfig,
    provisioned: &Provisioned,
    nemesis: Option<Box<dyn distest_nemeses::Nemesis>>,
    recorder: &Recorder,
    stop: &StopFlag,
    log: &RunLog,
) -> anyhow::Result<Vec<String>> {
    let test = &cfg.test;
    let times = PhaseTimes::from_secs(test.time_limit_s, test.recovery_s);
    let op_timeout = Duration::from_secs_f64(test.op_timeout_s);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("dt-client")
        .build()
        .context("could not start the async runtime")?;
    let workload = workload_of(test)?;
    let final_ops = workload.final_ops();
    let faults = match nemesis {
        None => None,
        Some(nemesis) => Some((
            nemesis,
            distest_nemeses::schedule::random(
                &test.nemesis,
                distest_nemeses::NemesisContext {
                    nodes: provisioned.shells.clone(),
                    target: provisioned.target.clone(),
                    seed: test.seed,
                },
                Duration::from_secs_f64(test.nemesis_interval_s),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
    };
    let target = provisioned.target.clone();
    let progress = progress::Progress::start(recorder.clone(), test.time_limit_s);

    // Phase 2: clients and nemesis until the time limit or Ctrl-C.
    log.line(&format!(
        "main phase: {} clients, {:.0} s, nemesis {}",
        test.concurrency,
        test.time_limit_s,
        test.nemesis_label()
    ));
    progress.phase(Phase::Main.as_str());
    let main_done = StopFlag::default();
    let main_start = Instant::now();
    let deadline = main_start + times.main;
    let nemesis_thread = faults.map(|(nemesis, schedule)| {
        nemesis::NemesisThread {
            nemesis,
            schedule,
            recorder: recorder.clone(),
            main_start,
            deadline,
            main_done: main_done.clone(),
            stop: stop.clone(),
            log: log.clone(),
            progress: progress.clone(),
        }
        .spawn()
    });
    let shared: clients::SharedWorkload =
        Arc::new(Mutex::new((workload, rng_for(test.seed, seed::WORKLOAD))));
    let node_count = test.nodes.len().max(1);
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for thread in 0..test.concurrency {
            let client = clients::ClientLoop {
                thread,
                concurrency: test.concurrency,
                node: thread % node_count,
                node_name: test.nodes.get(thread % node_count).cloned(),
                target: target.clone(),
                workload_name: test.workload.clone(),
                workload: shared.clone(),
                recorder: recorder.clone(),
                stop: stop.clone(),
                deadline,
                pace: Pace::for_client(
                    test.seed,
                    thread,
                    test.rate.map(|r| r / test.concurrency as f64),
                ),
                op_timeout,
            };
            tasks.push(tokio::spawn(client.run()));
        }
        // A second signal abandons the ops in flight: their invocations stay in the
        // history without a completion, which checkers read as "may have happened".
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let all = async {
            for t in tasks {
                if let Err(e) = t.await {
                    if !e.is_cancelled() {
                        tracing::error!("a client task panicked: {e}");
                    }
                }
            }
        };
        tokio::select! {
            _ = all => {}
            _ = stop.hurried() => aborts.iter().for_each(|a| a.abort()),
        }
    });
    main_done.stop();
    if let Some(signal) = stop.interrupted_by() {
        log.line(&format!(
            "interrupted by {signal} after {:.1} s of {:.0} s: ending the main phase early; healing, checking and reporting what was recorded",
            main_start.elapsed().as_secs_f64(),
            test.time_limit_s
        ));
    }

    // Phase 3: heal, recover, final ops. A second signal skips the waiting, never the heal.
    progress.phase(Phase::Heal.as_str());
    let heal_errors = match nemesis_thread {
        Some(handle) => handle
            .join()
            .unwrap_or_else(|_| vec!["the nemesis thread panicked".into()]),
        None => Vec::new(),
    };
    for e in &heal_errors {
        log.line(&format!("heal: {e}"));
    }
    if !final_ops.is_empty() && !stop.is_hurried() {
        progress.phase(Phase::Recovery.as_str());
        log.line(&format!("recovery wait {:.0} s", test.recovery_s));
        sleep_unless_hurried(times.recovery, stop);
        if !stop.is_hurried() {
            progress.phase(Phase::FinalReads.as_str());
            runtime.block_on(async {
                tokio::select! {
                    _ = clients::final_phase(
                        &test.nodes,
                        &test.workload,
                        &target,
                        recorder,
                        &final_ops,
                        op_timeout,
                    ) => {}
                    _ = stop.hurried() => {}
                }
            });
        }
    }
    if stop.is_hurried() {
        log.line("told to hurry (second signal): recovery wait and final ops skipped");
    }
    progress.finish();
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(heal_errors)
}

fn sleep_unless_hurried(total: Duration, stop: &StopFlag) {
    let end = Instant::now() + total;
    while Instant::now() < end && !stop.is_hurried() {
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
}

/// Report (from the history and results in memory), JUnit, store index; failures here
/// are logged, never fatal to the verdict.
fn finish_reports(
    run: &RunDir,
    cfg: &RunConfig,
    history: distest_checkers::History,
    results: &Results,
    log: &RunLog,
) {
    let data = distest_reports::RunData::from_run(run.path(), &cfg.test, history, results.clone());
    if let Err(e) = distest_reports::render(&data) {
        log.line(&format!("could not render the report: {e}"));
    }
    if let Some(path) = &cfg.junit {
        if let Err(e) = crate::verify::write_junit(path, &[(run.label(), results.clone())]) {
            log.line(&format!("could not write JUnit XML: {e:#}"));
        }
    }
    if let Err(e) = distest_reports::store_index(&cfg.store) {
        log.line(&format!("could not index the store: {e}"));
    }
}
