//! Detection power: the matrix of `examples/detection.toml` (every raft-kv bug against
//! the faults that should expose it, the correct build under every fault) over several
//! seeds. For each bug row: the fraction of seeded runs that caught it and the median
//! time from the start of the main phase to the first anomalous op; for the correct build
//! (the reference, in the same run): how many runs across all faults found anything.
//!
//! The first anomalous op is found from the history itself, the same way for every
//! checker: the shortest prefix (ops invoked and completed before time t; an op still
//! open at t counts as unfinished) that the run's checkers already call invalid, by
//! bisection on t to 100 ms. It is where an observer checking as the run went would have
//! known. Runs that record `first_anomaly` in results.json (online checking) use that.
//!
//! Needs root (local namespace clusters). One run at a time on cluster `fa9`
//! (10.77.189.0/24); with `DT_DETECTION_LOCK=/work/locks/netns.lock` each run takes that
//! lock for itself only, so other users of the machine get their turn between runs.
//!
//! `cargo bench --bench detection` (release). Environment: `DT_DETECTION_SEEDS` (bug rows,
//! default `1,2,3`), `DT_DETECTION_CORRECT_SEEDS` (correct rows, default `1,2,3,4,5`),
//! `DT_DETECTION_SECONDS` (main phase per run, default 60), `DT_DETECTION_ONLY` (run only
//! rows whose description contains one of these `|`-separated texts), `DT_DETECTION_OUT` (where the markdown
//! table goes, default `target/detection.md`).

use distest::commands::suite::Suite;
use distest::run::{self, StopFlag};
use distest_checkers::{History, Op, Validity};
use distest_rundir::RunDir;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Resolution of the first-anomaly search.
const RESOLUTION_NS: u64 = 100_000_000;

struct Outcome {
    row: String,
    bug: String,
    seed: u64,
    verdict: Validity,
    first_anomaly_s: Option<f64>,
    error: Option<String>,
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The history made of what was known by time `t`: invocations before it, and their
/// completions before it (later completions dropped: those ops were still open).
fn prefix(ops: &[Op], t: u64) -> Option<History> {
    let kept: Vec<Op> = ops.iter().filter(|o| o.time <= t).cloned().collect();
    History::reindexed(kept).ok()
}

/// The earliest time (ns since the main phase began) at which the run's checkers (the
/// `stats` checker aside) find the history invalid; `None` when even the whole history
/// is not (it was invalid only for a checker that is not prefix-monotone).
fn first_anomaly_ns(run: &RunDir) -> Option<u64> {
    let test = run.read_test().ok()??;
    let specs: Vec<_> = test
        .checkers
        .iter()
        .filter(|c| c.name != "stats")
        .cloned()
        .collect();
    let history =
        distest::verify::load_history(&run.file(distest_rundir::files::HISTORY_JSONL), None)
            .ok()?;
    let ops: Vec<Op> = history.ops().to_vec();
    let start = ops.first()?.time;
    let end = ops.last()?.time;
    let invalid = |t: u64| {
        prefix(&ops, t)
            .and_then(|h| distest::verify::check(&h, &specs, Some(Duration::from_secs(300))).ok())
            .is_some_and(|r| r.valid == Validity::Invalid)
    };
    if !invalid(end) {
        return None;
    }
    let (mut lo, mut hi) = (start, end);
    while hi - lo > RESOLUTION_NS {
        let mid = lo + (hi - lo) / 2;
        if invalid(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The main phase's start in history time: the first client or nemesis op.
fn main_start_ns(run: &RunDir) -> u64 {
    distest::verify::load_history(&run.file(distest_rundir::files::HISTORY_JSONL), None)
        .ok()
        .and_then(|h| h.ops().first().map(|o| o.time))
        .unwrap_or(0)
}

fn lock(path: Option<&Path>) -> Option<std::fs::File> {
    let path = path?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the lock file opens");
    file.lock().expect("the lock is taken");
    Some(file)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the detection bench needs root (local namespace clusters)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bug_seeds = env_list("DT_DETECTION_SEEDS", "1,2,3");
    let correct_seeds = env_list("DT_DETECTION_CORRECT_SEEDS", "1,2,3,4,5");
    let seconds: f64 = std::env::var("DT_DETECTION_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let only = std::env::var("DT_DETECTION_ONLY").unwrap_or_default();
    let lock_path = std::env::var("DT_DETECTION_LOCK").ok().map(PathBuf::from);
    let out_path = std::env::var("DT_DETECTION_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/detection.md"));
    let store = std::env::temp_dir().join(format!("dt-bench-detection-{}", std::process::id()));
    let mut suite =
        Suite::load(&root.join("examples/detection.toml")).expect("the detection suite");
    let mut seeds = bug_seeds.clone();
    seeds.extend(correct_seeds.iter().filter(|s| !bug_seeds.contains(s)));
    suite.seeds = seeds;
    let runs: Vec<_> = suite
        .expand(&store)
        .into_iter()
        .filter(|a| {
            let seed = a.seed.unwrap_or(0);
            if a.bug.is_empty() {
                correct_seeds.contains(&seed)
            } else {
                bug_seeds.contains(&seed)
            }
        })
        .map(|mut a| {
            a.time_limit = seconds;
            a.node_args.cluster_id = "fa9".into();
            a.node_args.subnet = "10.77.189.0/24".into();
            a.node_args.base_dir = PathBuf::from("/tmp/dt-bench-detection-nodes");
            a
        })
        .filter(|a| only.is_empty() || only.split('|').any(|o| row_of(a).contains(o)))
        .collect();
    eprintln!(
        "detection bench: {} runs of {seconds} s (bug seeds {bug_seeds:?}, correct seeds {correct_seeds:?})",
        runs.len()
    );
    let began = Instant::now();
    let mut outcomes = Vec::new();
    for (i, args) in runs.iter().enumerate() {
        let row = row_of(args);
        let seed = args.seed.unwrap_or(0);
        eprintln!("[{}/{}] {row} seed {seed}", i + 1, runs.len());
        let cfg = args.to_config().expect("a valid suite row");
        let held = lock(lock_path.as_deref());
        let result = run::execute(cfg, StopFlag::default(), run::provision::provision);
        drop(held);
        let outcome = match result {
            Ok(o) => {
                let verdict = o.results.as_ref().map_or(Validity::Unknown, |r| r.valid);
                let dir = RunDir::new(o.run_dir.clone());
                let first = (verdict == Validity::Invalid)
                    .then(|| {
                        let recorded = o
                            .results
                            .as_ref()
                            .and_then(|r| serde_json::to_value(r).ok())
                            .and_then(|v| v["first_anomaly"]["time"].as_u64());
                        let start = main_start_ns(&dir);
                        recorded
                            .or_else(|| first_anomaly_ns(&dir))
                            .map(|t| t.saturating_sub(start) as f64 / 1e9)
                    })
                    .flatten();
                Outcome {
                    row,
                    bug: args.bug.join(","),
                    seed,
                    verdict,
                    first_anomaly_s: first,
                    error: None,
                }
            }
            Err(e) => Outcome {
                row,
                bug: args.bug.join(","),
                seed,
                verdict: Validity::Unknown,
                first_anomaly_s: None,
                error: Some(format!("{e:#}")),
            },
        };
        eprintln!(
            "    → {}{}",
            outcome.verdict.as_str(),
            outcome
                .first_anomaly_s
                .map(|s| format!(", first anomalous op at {s:.1} s"))
                .unwrap_or_default()
        );
        outcomes.push(outcome);
    }
    let report = table(&outcomes, began.elapsed(), seconds);
    println!("{report}");
    if let Some(parent) = out_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out_path, &report).expect("the report is written");
    eprintln!("written to {}", out_path.display());
    let _ = std::fs::remove_dir_all(&store);
}

/// A row's name: bug (or `correct`), workload, faults.
fn row_of(a: &distest::commands::run::Args) -> String {
    let faults = a.nemesis.join(",");
    let schedule = a
        .nemesis_schedule
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned());
    let faults = match (faults.as_str(), schedule) {
        ("none", Some(s)) | ("", Some(s)) => s,
        (f, Some(s)) => format!("{f}+{s}"),
        (f, None) => f.to_string(),
    };
    format!(
        "{} {} {}",
        if a.bug.is_empty() {
            "correct".to_string()
        } else {
            a.bug.join(",")
        },
        a.workload.as_deref().unwrap_or("-"),
        faults
    )
}

fn table(outcomes: &[Outcome], took: Duration, seconds: f64) -> String {
    let mut rows: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        rows.entry(o.row.as_str()).or_default().push(o);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Detection power: {} runs of {seconds} s, {:.0} min in all.\n",
        outcomes.len(),
        took.as_secs_f64() / 60.0
    );
    let _ = writeln!(
        out,
        "| row (bug workload faults) | runs | caught (invalid) | unknown / failed | median s to first anomalous op | seeds caught |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (row, os) in &rows {
        let caught: Vec<&&Outcome> = os
            .iter()
            .filter(|o| o.verdict == Validity::Invalid)
            .collect();
        let other = os
            .iter()
            .filter(|o| o.verdict == Validity::Unknown || o.error.is_some())
            .count();
        let med = median(caught.iter().filter_map(|o| o.first_anomaly_s).collect());
        let _ = writeln!(
            out,
            "| {row} | {} | {}/{} | {other} | {} | {} |",
            os.len(),
            caught.len(),
            os.len(),
            med.map_or("-".to_string(), |m| format!("{m:.1}")),
            caught
                .iter()
                .map(|o| o.seed.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    let mut by_bug: BTreeMap<&str, (usize, usize, Vec<f64>)> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| !o.bug.is_empty()) {
        let e = by_bug.entry(o.bug.as_str()).or_default();
        e.0 += 1;
        if o.verdict == Validity::Invalid {
            e.1 += 1;
            e.2.extend(o.first_anomaly_s);
        }
    }
    let _ = writeln!(
        out,
        "\n| bug | caught / runs (all its faults) | median s to first anomalous op |"
    );
    let _ = writeln!(out, "|---|---|---|");
    for (bug, (n, k, times)) in by_bug {
        let _ = writeln!(
            out,
            "| {bug} | {k}/{n} | {} |",
            median(times).map_or("-".to_string(), |m| format!("{m:.1}"))
        );
    }
    let correct: Vec<&Outcome> = outcomes.iter().filter(|o| o.bug.is_empty()).collect();
    let anomalies = correct
        .iter()
        .filter(|o| o.verdict == Validity::Invalid)
        .count();
    let other = correct
        .iter()
        .filter(|o| o.verdict == Validity::Unknown || o.error.is_some())
        .count();
    let _ = writeln!(
        out,
        "\nReference, the correct build: {} runs across every fault, {anomalies} with an anomaly, {other} unknown or failed.",
        correct.len()
    );
    for o in outcomes.iter().filter(|o| o.error.is_some()) {
        let _ = writeln!(
            out,
            "- failed: {} seed {}: {}",
            o.row,
            o.seed,
            o.error.as_deref().unwrap_or("")
        );
    }
    out
}
