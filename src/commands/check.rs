//! `distest check PATH --checker NAME [--model M] [--consistency-model CM]`: re-check a
//! history file (distest JSONL, Jepsen EDN or text log) or a run directory.

use anyhow::{bail, Context};
use distest_checkers::format::{self, Format};
use distest_checkers::{CheckContext, Checker, History, Results};
pub use distest_workloads::CheckerSpec;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A history file (history.jsonl, history.edn, a Jepsen log) or a run directory.
    pub path: PathBuf,
    /// Checker(s) to run, comma separated or repeated. Default: the run's own checkers
    /// (from its test.json) for a run directory, else `stats`.
    #[arg(long, value_delimiter = ',')]
    pub checker: Vec<String>,
    /// Model for the linearizability checker (register, cas-register, kv, set, queue, mutex)
    /// or the CRDT type for crdt-convergence.
    #[arg(long)]
    pub model: Option<String>,
    /// Consistency model the isolation checkers must hold to (default strict-serializable).
    #[arg(long)]
    pub consistency_model: Option<String>,
    /// Force the history format instead of detecting it: jsonl, edn, jepsen-log.
    #[arg(long)]
    pub format: Option<String>,
    /// Print the results document as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds; the verdict is then unknown (exit 2), never a guess.
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// Also write JUnit XML (one test case per checker) to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Where runs live (only used to resolve relative run names).
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Check op by op in two passes over the file, holding only the ops of the keys in
    /// use at the same time (bounded memory for keyed histories of any size); the
    /// verdicts are the same. Default for files over 1 GiB.
    #[arg(long)]
    pub stream: bool,
}

/// Files at least this large are checked op by op (see `--stream`).
const STREAM_FROM_BYTES: u64 = 1 << 30;

pub fn run(args: Args) -> anyhow::Result<i32> {
    let format = match &args.format {
        None => None,
        Some(name) => Some(Format::from_name(name).with_context(|| {
            format!(
                "unknown history format {name:?}; valid formats are: {}",
                Format::NAMES.join(", ")
            )
        })?),
    };
    let path = if args.path.exists() || args.path.is_absolute() {
        args.path.clone()
    } else {
        args.store.join(&args.path)
    };
    let (history_path, run_dir) = resolve(&path)?;
    let recorded = match &run_dir {
        Some(dir) => recorded_checkers(dir)?,
        None => Vec::new(),
    };
    let specs = choose_specs(&args, recorded);
    let limit = args.time_limit.map(Duration::from_secs_f64);
    let size_bytes = std::fs::metadata(&history_path).map_or(0, |m| m.len());
    let stream = args.stream || size_bytes >= STREAM_FROM_BYTES;
    let results = match try_streaming_elle(&history_path, format, &specs, limit) {
        Some(results) => results?,
        None => {
            let checkers = specs
                .iter()
                .map(|s| s.build().map_err(anyhow::Error::from))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if stream {
                check_stream(&history_path, format, &checkers, limit)?
            } else {
                let history = load_history(&history_path, format)?;
                check_with_limit(&history, &checkers, limit)
            }
        }
    };
    if let Some(dir) = &run_dir {
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(dir.join("results.json"), text)
            .with_context(|| format!("could not write results.json in {}", dir.display()))?;
        if let Err(e) = distest_reports::render_run(dir) {
            eprintln!("warning: could not render the report: {e}");
        }
    }
    if let Some(junit) = &args.junit {
        let name = match &run_dir {
            Some(dir) => crate::run::run_label(dir),
            None => history_path.display().to_string(),
        };
        crate::run::write_junit(junit, &[(name, results.clone())])?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", human_summary(&results));
    }
    Ok(results.valid.exit_code())
}

/// The history file and, when PATH is a run directory, that directory.
fn resolve(path: &Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    if path.is_dir() {
        for name in ["history.jsonl", "history.edn", "history.txt"] {
            let candidate = path.join(name);
            if candidate.is_file() {
                return Ok((candidate, Some(path.to_path_buf())));
            }
        }
        bail!(
            "{} holds no history.jsonl, history.edn or history.txt; pass a history file or a run directory",
            path.display()
        );
    }
    if !path.exists() {
        bail!(
            "{} does not exist; pass a history file or a run directory",
            path.display()
        );
    }
    Ok((path.to_path_buf(), None))
}

fn recorded_checkers(dir: &Path) -> anyhow::Result<Vec<CheckerSpec>> {
    let test_json = dir.join("test.json");
    if !test_json.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&test_json)
        .with_context(|| format!("could not read {}", test_json.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", test_json.display()))?;
    match value.get("checkers") {
        None => Ok(Vec::new()),
        Some(list) => serde_json::from_value(list.clone()).with_context(|| {
            format!(
                "{}: \"checkers\" must be a list of {{\"name\", \"model\"?}}",
                test_json.display()
            )
        }),
    }
}

fn choose_specs(args: &Args, recorded: Vec<CheckerSpec>) -> Vec<CheckerSpec> {
    if args.checker.is_empty() {
        if recorded.is_empty() {
            return vec![CheckerSpec {
                name: "stats".into(),
                model: args.model.clone(),
                consistency_model: args.consistency_model.clone(),
            }];
        }
        return recorded;
    }
    args.checker
        .iter()
        .map(|name| {
            // Flags on the command line override what the run recorded.
            let recorded = recorded.iter().find(|s| &s.name == name);
            CheckerSpec {
                name: name.clone(),
                model: args
                    .model
                    .clone()
                    .or_else(|| recorded.and_then(|r| r.model.clone())),
                consistency_model: args
                    .consistency_model
                    .clone()
                    .or_else(|| recorded.and_then(|r| r.consistency_model.clone())),
            }
        })
        .collect()
}

/// Reads a history file, detecting its format unless one is forced.
pub fn load_history(path: &Path, format: Option<Format>) -> anyhow::Result<History> {
    let file =
        std::fs::File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    Ok(format::read_history(
        file,
        format,
        &path.display().to_string(),
    )?)
}

/// Checks a history file op by op in two passes, in the memory of the keys in use at
/// the same time (see `distest_checkers::online::replay_stream`).
pub fn check_stream(
    path: &Path,
    format: Option<Format>,
    checkers: &[Box<dyn Checker>],
    limit: Option<Duration>,
) -> anyhow::Result<Results> {
    /// Ops between two ticks: the checkers' deferred searches run this often.
    const TICK_EVERY_OPS: u64 = 1 << 14;
    let replay = with_time_limit(limit, |ctx| {
        distest_checkers::online::replay_stream(
            || std::fs::File::open(path),
            format,
            &path.display().to_string(),
            checkers,
            ctx,
            TICK_EVERY_OPS,
        )
    })?;
    Ok(replay.results)
}

/// Runs the checkers; past `limit` they are asked to stop and answer unknown.
pub fn check_with_limit(
    history: &History,
    checkers: &[Box<dyn Checker>],
    limit: Option<Duration>,
) -> Results {
    with_time_limit(limit, |ctx| {
        distest_checkers::check_all(history, checkers, ctx)
    })
}

/// Runs `f` with a context whose cancel flag a watchdog raises after `limit`.
fn with_time_limit<T>(limit: Option<Duration>, f: impl FnOnce(&CheckContext) -> T) -> T {
    let ctx = CheckContext::default();
    let cancel = ctx.cancel.clone();
    let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let watchdog = limit.map(|limit| {
        let done = done.clone();
        std::thread::spawn(move || {
            let (lock, cvar) = &*done;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, timeout) = cvar
                .wait_timeout_while(guard, limit, |finished| !*finished)
                .unwrap_or_else(|e| e.into_inner());
            if timeout.timed_out() && !*guard {
                cancel.cancel();
            }
        })
    });
    let out = f(&ctx);
    {
        let (lock, cvar) = &*done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    out
}

/// When only Elle checkers judge a JSONL history, stream its transactions straight from
/// the file instead of building a `History` first: a third of the memory on
/// million-transaction histories, and the same verdicts. `None` when the path does not
/// apply (other checkers, another format).
fn try_streaming_elle(
    path: &Path,
    format: Option<Format>,
    specs: &[CheckerSpec],
    limit: Option<Duration>,
) -> Option<anyhow::Result<Results>> {
    use distest_checkers::elle::{check_txns, txn::Shape, txn::Txns};
    let shape_of = |name: &str| match name {
        "list-append" => Some(Shape::ListAppend),
        "rw-register" => Some(Shape::RwRegister),
        _ => None,
    };
    if specs.is_empty() || specs.iter().any(|s| shape_of(&s.name).is_none()) {
        return None;
    }
    let is_jsonl = match format {
        Some(f) => f == Format::Jsonl,
        None => {
            let mut prefix = vec![0u8; 64 * 1024];
            let n = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut prefix))
                .ok()?;
            format::detect(&prefix[..n]) == Format::Jsonl
        }
    };
    if !is_jsonl {
        return None;
    }
    let run = || -> anyhow::Result<Option<Results>> {
        let mut verdicts = std::collections::BTreeMap::new();
        for spec in specs {
            // Validates the model name the same way the registry does.
            spec.build()?;
            let file = std::fs::File::open(path)
                .with_context(|| format!("could not open {}", path.display()))?;
            let reader = std::io::BufReader::with_capacity(1 << 20, file);
            let shape = shape_of(&spec.name).expect("checked above");
            let txns = Txns::read_jsonl(reader, shape, &path.display().to_string())?;
            if txns.txns.is_empty() {
                // No transaction at all: the general path tells an empty file or one
                // without ops (an error) from a history of other ops (a verdict).
                return Ok(None);
            }
            let model = spec
                .consistency_model
                .as_deref()
                .unwrap_or("strict-serializable");
            let verdict = with_time_limit(limit, |ctx| check_txns(&txns, model, ctx));
            verdicts.insert(spec.name.clone(), verdict);
        }
        Ok(Some(Results::from_verdicts(verdicts)))
    };
    run().transpose()
}

/// A few lines for a person: the verdict, then each checker's summary and explanation.
pub fn human_summary(results: &Results) -> String {
    let mut out = String::new();
    for (name, verdict) in &results.checkers {
        out.push_str(&format!("{name}: {}", verdict.valid));
        if !verdict.anomalies.is_empty() {
            out.push_str(&format!(" ({})", verdict.anomalies.join(", ")));
        }
        out.push('\n');
        if !verdict.summary.is_empty() {
            out.push_str(&format!("  {}\n", verdict.summary));
        }
        if !verdict.explanation.is_empty() && verdict.valid != distest_checkers::Validity::Valid {
            for line in verdict.explanation.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out.push_str(&format!("verdict: {}\n", results.valid));
    out
}
