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
    /// Consistency model the isolation checkers must hold to: any model of Elle's
    /// lattice (serializable, snapshot-isolation, read-committed, PL-2, ...; default
    /// strict-serializable, unless --anomalies is given alone).
    #[arg(long)]
    pub consistency_model: Option<String>,
    /// Isolation checkers: Elle anomaly names that fail the check (comma separated,
    /// e.g. G0,G1c,G-single-item), instead of or besides a consistency model.
    #[arg(long, value_delimiter = ',')]
    pub anomalies: Vec<String>,
    /// rw-register: assume each key is sequentially consistent and infer version orders
    /// from each process's order. Sound when a process's operations on a key take effect
    /// in the order it issued them.
    #[arg(long)]
    pub sequential_keys: bool,
    /// rw-register: assume each key is linearizable and infer version orders from
    /// real time. Sound for per-key linearizable stores (strict serializability implies it).
    #[arg(long)]
    pub linearizable_keys: bool,
    /// rw-register: assume a transaction's writes follow its reads (it installs a key's
    /// new value after the version it read). Sound for lock- and MVCC-based databases, not
    /// for last-writer-wins stores ordered by client clocks.
    #[arg(long)]
    pub wfr_keys: bool,
    /// rw-register: a file (JSON or EDN map) from completion op index to the transaction's
    /// position in an external total order (e.g. commit timestamps); writes are ordered by it.
    #[arg(long)]
    pub transaction_order: Option<PathBuf>,
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
}

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
    let results = match try_streaming_elle(&history_path, format, &specs, limit) {
        Some(results) => results?,
        None => {
            let checkers = specs
                .iter()
                .map(build_checker)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let history = load_history(&history_path, format)?;
            check_with_limit(&history, &checkers, limit)
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
    // Flags on the command line override what the run recorded.
    let with_flags = |mut spec: CheckerSpec| {
        if args.model.is_some() {
            spec.model = args.model.clone();
        }
        if args.consistency_model.is_some() {
            spec.consistency_model = args.consistency_model.clone();
        }
        if !args.anomalies.is_empty() {
            spec.anomalies = args.anomalies.clone();
        }
        spec.sequential_keys |= args.sequential_keys;
        spec.linearizable_keys |= args.linearizable_keys;
        spec.wfr_keys |= args.wfr_keys;
        if args.transaction_order.is_some() {
            spec.transaction_order = args.transaction_order.clone();
        }
        spec
    };
    if args.checker.is_empty() {
        if recorded.is_empty() {
            return vec![with_flags(CheckerSpec::named("stats"))];
        }
        return recorded;
    }
    args.checker
        .iter()
        .map(|name| {
            let recorded = recorded.iter().find(|s| &s.name == name).cloned();
            with_flags(recorded.unwrap_or_else(|| CheckerSpec::named(name)))
        })
        .collect()
}

/// The options `spec` gives its checker, with its transaction order file read.
fn checker_options(spec: &CheckerSpec) -> anyhow::Result<distest_checkers::CheckerOptions> {
    let mut options = spec.options();
    if let Some(path) = &spec.transaction_order {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the transaction order {}", path.display()))?;
        let order = distest_checkers::elle::versions::parse_transaction_order(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        options.transaction_order = Some(std::sync::Arc::new(order));
    }
    Ok(options)
}

/// Builds the checker `spec` names.
fn build_checker(spec: &CheckerSpec) -> anyhow::Result<Box<dyn Checker>> {
    Ok(distest_checkers::build(
        &spec.name,
        &checker_options(spec)?,
    )?)
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
    use distest_checkers::elle::{check_txns, txn::Shape, txn::Txns, ElleOptions};
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
    let run = || -> anyhow::Result<Results> {
        let mut verdicts = std::collections::BTreeMap::new();
        for spec in specs {
            let options = ElleOptions::from_checker_options(&spec.name, &checker_options(spec)?)?;
            let file = std::fs::File::open(path)
                .with_context(|| format!("could not open {}", path.display()))?;
            let reader = std::io::BufReader::with_capacity(1 << 20, file);
            let shape = shape_of(&spec.name).expect("checked above");
            let txns = Txns::read_jsonl(reader, shape, &path.display().to_string())?;
            let verdict = with_time_limit(limit, |ctx| check_txns(&txns, &options, ctx));
            verdicts.insert(spec.name.clone(), verdict);
        }
        Ok(Results::from_verdicts(verdicts))
    };
    Some(run())
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
