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
//! Provisioning (with the faults' preflight) comes before the run directory: a run
//! refused there writes nothing. The history is appended while the run goes (see
//! [`recorder`]) and checked online as it is recorded (see [`online`]).
//! Time and randomness (seeded streams, pacing, process ids, phase lengths) are
//! `distest-generator`'s; this module only follows them.

pub mod clients;
pub mod config;
pub mod log;
pub mod nemesis;
pub mod online;
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
use std::collections::BTreeMap;
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
/// `cfg.test.nodes`). It runs, with the faults' preflight, before the run directory
/// exists: a run refused there (a cluster in use, a fault that cannot be applied) writes
/// nothing; its log lines go to `distest.log` once the directory exists.
pub fn execute(
    mut cfg: RunConfig,
    stop: StopFlag,
    provision: impl FnOnce(&mut RunConfig, &RunLog) -> anyhow::Result<Provisioned>,
) -> anyhow::Result<RunOutcome> {
    let log = RunLog::in_memory();
    // A fresh slot: a config cloned from an earlier run's must not point at its directory.
    cfg.run_dir = Default::default();
    let provisioned = provision(&mut cfg, &log)?;
    let target = provisioned.target.clone();
    // Faults that cannot be applied on these nodes refuse the run before it starts: a
    // run whose faults silently did nothing would pass for a run that survived them.
    let nemesis = build_nemesis(&cfg, &provisioned)?;

    let store = Store::new(&cfg.store);
    let run = store.create_run(
        &cfg.test.target,
        &cfg.test.workload,
        &cfg.test.nemesis_label(),
    )?;
    log.attach(&run.file(files::DISTEST_LOG))?;
    let _ = cfg.run_dir.set(run.path().to_path_buf());
    log.line(&format!("run directory {}", run.path().display()));
    run.write_test(&cfg.test)?;
    if let Some((_, text)) = &cfg.nemesis_script {
        let path = run.file(files::NEMESIS_SCHEDULE);
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
    }

    let recorder = Recorder::create(&run.file(files::HISTORY_JSONL))
        .context("could not create history.jsonl")?;
    let flusher = recorder.spawn_flusher();
    // Ends the main phase at the first anomaly (--stop-on-anomaly); unlike Ctrl-C, the
    // run then goes on as usual (recovery, final reads).
    let anomaly_stop = StopFlag::default();
    let online = start_online(
        &cfg,
        &recorder,
        &log,
        &anomaly_stop,
        run.file(files::HISTORY_JSONL),
    )?;
    recorder.attach_online(online.clone());
    let main_result = if stop.is_stopped() {
        log.line("interrupted before the target was set up: nothing to run");
        Ok(NemesisOutcome::default())
    } else {
        log.line(&format!(
            "setting up {} on {}",
            target.name(),
            cfg.test.nodes.join(", ")
        ));
        match target.setup() {
            Ok(()) => main_phases(
                &cfg,
                &provisioned,
                nemesis,
                &recorder,
                &stop,
                &anomaly_stop,
                &log,
            ),
            Err(e) => Err(e.context(format!("could not set up {}", cfg.test.target))),
        }
    };
    if let Err(e) = &main_result {
        log.line(&format!("run failed: {}", one_sentence(e)));
    }

    // Phase 4: logs, then stop the system (always, also after an error).
    collect_all_logs(&run, &cfg, target.as_ref(), &log);
    let history_start = std::time::Instant::now() - recorder.elapsed();
    if let Err(e) = target.write_run_files(&run, history_start) {
        log.line(&format!("could not write the target's run files: {e:#}"));
    }
    if cfg.test.leave_running {
        log.line("leaving the target running (--leave-running)");
        provisioned.guard.leave_running();
    } else {
        if let Err(e) = target.teardown(true) {
            log.line(&format!("teardown failed: {e:#}"));
        }
        if let Some(left) = provisioned.guard.release() {
            log.say(&format!("distest: {left}"));
        }
    }
    let record_seconds = recorder.counters.record_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let recorded = recorder.close();
    let _ = flusher.join();
    let recorded = recorded.map_err(|e| anyhow::anyhow!("could not write history.jsonl: {e}"))?;
    log.line(&format!("{recorded} ops recorded"));

    // Phase 5: check and report what was recorded, even after Ctrl-C or a failed phase.
    // The checkers judged the ops online as they were recorded: their verdict is the
    // offline check's of history.jsonl, without reading it back (a long run's history
    // never has to fit in memory).
    let online_results = match online.finish() {
        // Nothing recorded: the offline check says so (an error), as for any empty file.
        Ok(_) if recorded == 0 => Err("no op was recorded".to_string()),
        other => other,
    };
    let results = match online_results {
        Ok(mut results) => {
            log.line(&format!(
                "checked {recorded} ops online as they were recorded, with {}; at most {} ops held at once",
                checker_names(&cfg),
                online.max_held_ops()
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
            results
        }
        // A run stopped before its first op, or one that failed before it: nothing to
        // check, and the run's own outcome (below) says why.
        Err(_) if recorded == 0 && (stop.is_stopped() || main_result.is_err()) => {
            Results::from_verdicts(Default::default())
        }
        Err(e) => {
            log.line(&format!(
                "online checking stopped ({e}); checking history.jsonl with {}",
                checker_names(&cfg)
            ));
            let history = crate::verify::load_history(&run.file(files::HISTORY_JSONL), None)?;
            crate::verify::check(&history, &cfg.test.checkers, None)?
        }
    };
    let (mut results, note) = crate::verify::with_net(
        results,
        &run,
        recorder
            .counters
            .invoked
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if let Some(note) = note {
        log.line(&note);
    }
    if let Some(signal) = stop.interrupted_by() {
        log.line(&format!(
            "interrupted by {signal}: the run did not run its course; the verdict is at best unknown"
        ));
        results.mark_interrupted();
    }
    match &main_result {
        Err(e) => results.mark_failed(one_sentence(e)),
        Ok(outcome) => {
            for never in never_applied_faults(&cfg, &outcome.completions)? {
                log.line(&never);
                results.mark_failed(never);
            }
            if !outcome.unrecovered.is_empty() {
                for sentence in outcome.unrecovered.values() {
                    log.line(&format!("not recovered: {sentence}"));
                }
                results.add_verdict(
                    distest_checkers::RECOVERY,
                    recovery_verdict(&outcome.unrecovered),
                );
            }
            if !outcome.heal_errors.is_empty() {
                results.mark_failed(format!(
                    "healing failed on some nodes ({}); run `distest env down` to clean up",
                    outcome.heal_errors.join("; ")
                ));
            }
        }
    }
    crate::verify::write_results(&run, &results)?;
    log.line(&format!("verdict: {}", results.valid));
    let exit_code = results.exit_code();
    finish_reports(&run, &cfg, &results, &log);
    Ok(RunOutcome {
        run_dir: run.path().to_path_buf(),
        results: Some(results),
        exit_code,
        record_seconds,
    })
}

/// The requested faults that the run tried and never applied, one sentence each, from the
/// fault ops' completions `(f, error)`.
fn never_applied_faults(
    cfg: &RunConfig,
    completions: &[(String, Option<String>)],
) -> anyhow::Result<Vec<String>> {
    if cfg.test.nemesis.is_empty() {
        return Ok(Vec::new());
    }
    Ok(distest_nemeses::never_applied(
        &cfg.test.nemesis,
        completions.iter().map(|(f, e)| (f.as_str(), e.as_deref())),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .iter()
    .map(|n| n.sentence())
    .collect())
}

/// The `recovery` verdict: nodes that did not start again on the data a fault left them
/// (what they had fsynced) — invalid, as a node that cannot survive a power failure is.
fn recovery_verdict(unrecovered: &BTreeMap<String, String>) -> distest_checkers::Verdict {
    let nodes: Vec<&str> = unrecovered.keys().map(String::as_str).collect();
    let mut verdict = distest_checkers::Verdict::invalid(
        vec!["node-not-recovered".to_string()],
        format!(
            "{} did not start again on what {} fsynced after a disk fault.",
            nodes.join(", "),
            if nodes.len() == 1 {
                "it had"
            } else {
                "they had"
            }
        ),
    );
    verdict.explanation = unrecovered.values().cloned().collect::<Vec<_>>().join("\n");
    verdict.evidence = serde_json::json!(unrecovered);
    verdict
}

/// The run's checkers by name, comma separated.
fn checker_names(cfg: &RunConfig) -> String {
    cfg.test
        .checkers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starts online checking with the run's checkers: the first anomaly is logged, printed
/// (by the progress line) and, with `--stop-on-anomaly`, ends the main phase.
fn start_online(
    cfg: &RunConfig,
    recorder: &Recorder,
    log: &RunLog,
    anomaly_stop: &StopFlag,
    history: PathBuf,
) -> anyhow::Result<online::OnlineMonitor> {
    let checkers = crate::verify::build_checkers(&cfg.test.checkers)?;
    let clock = recorder.clone();
    let (log, stop) = (log.clone(), anomaly_stop.clone());
    let stop_on_anomaly = cfg.test.stop_on_anomaly;
    let specs = cfg.test.checkers.clone();
    let offline_log = log.clone();
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
        // The isolation checkers after an anomaly: their verdict needs the whole
        // history, read back from history.jsonl (closed by then).
        move |i| {
            let spec = &specs[i];
            offline_log.line(&format!(
                "{}: checking history.jsonl again for the final verdict (the online form dropped the ops it had judged)",
                spec.name
            ));
            match crate::verify::check_file(&history, None, std::slice::from_ref(spec), None, false)
            {
                Ok(mut results) => results.checkers.remove(&spec.name).unwrap_or_else(|| {
                    distest_checkers::Verdict::unknown(format!(
                        "The {} check of history.jsonl gave no verdict.",
                        spec.name
                    ))
                }),
                Err(e) => distest_checkers::Verdict::unknown(format!(
                    "history.jsonl could not be checked again with {}: {e:#}.",
                    spec.name
                )),
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

/// The run's nemesis on the provisioned nodes, once its preflight said every fault can be
/// applied there; `None` without faults.
fn build_nemesis(
    cfg: &RunConfig,
    provisioned: &Provisioned,
) -> anyhow::Result<Option<Box<dyn distest_nemeses::Nemesis>>> {
    let nemesis = distest_nemeses::schedule::performer(
        &cfg.test.nemesis,
        cfg.nemesis_script.as_ref().map(|(script, _)| script),
        nemesis_ctx(cfg, provisioned),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(nemesis) = nemesis else {
        return Ok(None);
    };
    nemesis.preflight().map_err(|e| {
        anyhow::anyhow!(
            "the run was refused before it started because a requested fault cannot be applied here: {e}"
        )
    })?;
    Ok(Some(nemesis))
}

fn nemesis_ctx(cfg: &RunConfig, provisioned: &Provisioned) -> distest_nemeses::NemesisContext {
    distest_nemeses::NemesisContext {
        nodes: provisioned.shells.clone(),
        target: provisioned.target.clone(),
        seed: cfg.test.seed,
    }
}

/// What the fault side of phases 2 and 3 did: every fault op's completion `(f, error)`,
/// the errors of the final heal, and the target's own answers to faults that the run
/// judges (a node that did not start again on what it had fsynced).
#[derive(Default)]
pub struct NemesisOutcome {
    pub completions: Vec<(String, Option<String>)>,
    pub heal_errors: Vec<String>,
    /// Nodes that did not start again on what they had fsynced, each once with the
    /// first sentence said of it.
    pub unrecovered: BTreeMap<String, String>,
}

impl NemesisOutcome {
    /// Keeps the nodes a fault op's error says did not start again.
    fn note_finding<T>(&mut self, result: &Result<T, distest_nemeses::NemesisError>) {
        if let Err(e) = result {
            for (node, sentence) in e.unrecovered() {
                self.unrecovered.entry(node.to_string()).or_insert(sentence);
            }
        }
    }
}

/// Phases 2 and 3 on a tokio runtime.
fn main_phases(
    cfg: &RunConfig,
    provisioned: &Provisioned,
    nemesis: Option<Box<dyn distest_nemeses::Nemesis>>,
    recorder: &Recorder,
    stop: &StopFlag,
    anomaly_stop: &StopFlag,
    log: &RunLog,
) -> anyhow::Result<NemesisOutcome> {
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
        Some(nemesis) => distest_nemeses::schedule::for_run(
            &test.nemesis,
            cfg.nemesis_script.as_ref().map(|(script, _)| script),
            nemesis_ctx(cfg, provisioned),
            Duration::from_secs_f64(test.nemesis_interval_s),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map(|schedule| (nemesis, schedule)),
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
                anomaly_stop: anomaly_stop.clone(),
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
    if anomaly_stop.is_stopped() && !stop.is_stopped() {
        log.line("stopped at the first anomaly: healing, checking and reporting as usual");
    }
    if let Some(signal) = stop.interrupted_by() {
        log.line(&format!(
            "interrupted by {signal} after {:.1} s of {:.0} s: ending the main phase early; healing, checking and reporting what was recorded",
            main_start.elapsed().as_secs_f64(),
            test.time_limit_s
        ));
    }

    // Phase 3: heal, recover, final ops. A second signal skips the waiting, never the heal.
    progress.phase(Phase::Heal.as_str());
    let outcome = match nemesis_thread {
        Some(handle) => handle.join().unwrap_or_else(|_| NemesisOutcome {
            heal_errors: vec!["the nemesis thread panicked".into()],
            ..NemesisOutcome::default()
        }),
        None => NemesisOutcome::default(),
    };
    for e in &outcome.heal_errors {
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
    Ok(outcome)
}

fn sleep_unless_hurried(total: Duration, stop: &StopFlag) {
    let end = Instant::now() + total;
    while Instant::now() < end && !stop.is_hurried() {
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
}

/// Report, JUnit, store index; failures here are logged, never fatal to the verdict.
fn finish_reports(run: &RunDir, cfg: &RunConfig, results: &Results, log: &RunLog) {
    // Read back from the run directory: a history too long to load is drawn from one
    // pass over it, in bounded memory (`distest_reports::light`).
    if let Err(e) = distest_reports::render_run(run.path()) {
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
