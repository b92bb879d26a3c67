//! `distest check PATH --checker NAME [--model M] [--consistency-model CM]`: re-check a
//! history file (distest JSONL, Jepsen EDN or text log) or a run directory. Flags only:
//! the checking is `crate::verify`'s.

use crate::verify;
use anyhow::{bail, Context};
use distest_checkers::format::Format;
use distest_checkers::{CheckerOptions, CheckerSpec, Results, Validity};
use distest_rundir::{files, RunDir};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A history file (history.jsonl, history.edn, a Jepsen log) or a run directory.
    pub path: PathBuf,
    /// Checker(s) to run, comma separated or repeated. Default: the run's own checkers
    /// (from its test.json) for a run directory, else `stats` alone, which only counts
    /// ops: the verdict is then at best unknown, since nothing checked correctness.
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
    #[command(flatten)]
    pub elle: ElleArgs,
    /// Force the history format instead of detecting it: jsonl, edn, jepsen-log.
    #[arg(long)]
    pub format: Option<String>,
    /// Print the results document as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds; the verdict is then unknown (exit 2), never a guess.
    #[arg(long, allow_negative_numbers = true)]
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

pub fn run(args: Args) -> anyhow::Result<i32> {
    // Options first: a bad flag is reported as such, whatever the path.
    let limit = match args.time_limit {
        Some(s) if !s.is_finite() || s <= 0.0 => {
            bail!("--time-limit must be a positive number of seconds, got {s}")
        }
        other => other.map(Duration::from_secs_f64),
    };
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
        Some(run) => recorded_checkers(run)?,
        None => Vec::new(),
    };
    let nothing_named = args.checker.is_empty() && recorded.is_empty();
    let specs = choose_specs(&args, recorded);
    let mut results = verify::check_file(&history_path, format, &specs, limit, args.stream)?;
    if nothing_named {
        // Counting ops is not checking them: "valid" would be a verdict nobody earned.
        results.valid = results.valid.meet(Validity::Unknown);
        eprintln!("{}", nothing_checked(&results));
    }
    if let Some(run) = run_dir
        .as_ref()
        .filter(|r| r.file(files::MESSAGES_JSONL).is_file())
    {
        let client_ops = verify::count_client_invocations(&history_path, format)?;
        let (with_net, note) = verify::with_net(results, run, client_ops);
        results = with_net;
        if let Some(note) = note {
            eprintln!("warning: {note}");
        }
    }
    if let Some(run) = &run_dir {
        // What the run said about itself (interrupted, failed) is not the checkers' to undo.
        if let Ok(Some(recorded)) = run.read_results() {
            results.keep_run_facts(&recorded);
        }
        verify::write_results(run, &results)?;
        if let Err(e) = distest_reports::render_run(run.path()) {
            eprintln!("warning: could not render the report: {e}");
        }
    }
    if let Some(junit) = &args.junit {
        let name = match &run_dir {
            Some(run) => run.label(),
            None => history_path.display().to_string(),
        };
        verify::write_junit(junit, &[(name, results.clone())])?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", verify::human_summary(&results));
    }
    verify::say_error(&results);
    Ok(results.exit_code())
}

/// The sentence for a check that named no checker: nothing judged correctness, and which
/// checkers the history's ops fit (from the ops `stats` counted).
fn nothing_checked(results: &Results) -> String {
    let fs: Vec<&str> = results
        .checkers
        .get("stats")
        .and_then(|v| v.evidence["by_f"].as_object())
        .map(|by_f| by_f.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let fitting = fitting_checkers(&fs);
    let hint = if fitting.is_empty() {
        "see `distest check --help` for the checkers".to_string()
    } else {
        format!("this history's ops fit {}", fitting.join(" or "))
    };
    format!(
        "note: no checker judged correctness, so the verdict is unknown: `stats` only counts ops; name one with --checker ({hint})"
    )
}

/// Checkers (with the flags they need) that fit a history whose ops have these `f`s: the
/// ones distest's own workloads pair with those ops.
fn fitting_checkers(fs: &[&str]) -> Vec<&'static str> {
    let has = |f: &str| fs.contains(&f);
    let mut fit = Vec::new();
    if has("txn") {
        fit.extend(["`--checker list-append`", "`--checker rw-register`"]);
    }
    if has("cas") {
        fit.push("`--checker linearizable --model cas-register`");
    } else if has("write") && has("read") {
        fit.push("`--checker linearizable --model register`");
    }
    if has("add") && has("read") {
        fit.extend(["`--checker set`", "`--checker counter`"]);
    }
    if has("enqueue") || has("dequeue") {
        fit.extend([
            "`--checker total-queue`",
            "`--checker linearizable --model queue`",
        ]);
    }
    if has("acquire") || has("release") {
        fit.push("`--checker linearizable --model mutex`");
    }
    if has("generate") {
        fit.push("`--checker unique-ids`");
    }
    if has("echo") {
        fit.push("`--checker echo`");
    }
    if has("send") || has("poll") {
        fit.push("`--checker kafka`");
    }
    fit
}

/// The history file and, when PATH is a run directory, that directory.
fn resolve(path: &Path) -> anyhow::Result<(PathBuf, Option<RunDir>)> {
    if path.is_dir() {
        let run = RunDir::new(path);
        return Ok((run.require_history_file()?, Some(run)));
    }
    if !path.exists() {
        bail!(
            "{} does not exist; pass a history file or a run directory",
            path.display()
        );
    }
    Ok((path.to_path_buf(), None))
}

/// The checkers the run recorded in its test.json (none when it has no test.json).
fn recorded_checkers(run: &RunDir) -> anyhow::Result<Vec<CheckerSpec>> {
    let Some(test) = run.read_test()? else {
        return Ok(Vec::new());
    };
    if test.extra.contains_key("checkers") {
        bail!(
            "{}: \"checkers\" must be a list of {{\"name\", \"model\"?}}",
            run.file(distest_rundir::files::TEST_JSON).display()
        );
    }
    Ok(test.checkers)
}

/// The isolation checkers' options beyond a consistency model, shared by `distest check`
/// and `distest run` (where they are recorded with the checkers in test.json).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ElleArgs {
    /// Isolation checkers: Elle anomaly names that fail the check (comma separated, e.g.
    /// G0,G1c,G-single-item), instead of or besides a consistency model.
    #[arg(long, value_delimiter = ',')]
    pub anomalies: Vec<String>,
    /// rw-register: assume each key is sequentially consistent and order its versions by
    /// each process's order. Sound when a process's operations on a key take effect in
    /// the order it issued them.
    #[arg(long)]
    pub sequential_keys: bool,
    /// rw-register: assume each key is linearizable and order its versions by real time.
    /// Sound for per-key linearizable stores (strict serializability implies it).
    #[arg(long)]
    pub linearizable_keys: bool,
    /// rw-register: assume a transaction's writes follow its reads (it installs a key's
    /// new value after the version it read). Sound for lock- and MVCC-based databases,
    /// not for last-writer-wins stores ordered by client clocks.
    #[arg(long)]
    pub wfr_keys: bool,
    /// rw-register: a file (JSON or EDN map) from completion op index to the
    /// transaction's position in an external total order (e.g. commit timestamps).
    #[arg(long)]
    pub transaction_order: Option<PathBuf>,
}

impl ElleArgs {
    /// Sets what was given on `spec` when it names an isolation checker.
    pub fn apply(&self, spec: &mut CheckerSpec) {
        if !matches!(spec.name.as_str(), "list-append" | "rw-register") {
            return;
        }
        let o = &mut spec.options;
        if !self.anomalies.is_empty() {
            o.anomalies = self.anomalies.clone();
        }
        o.sequential_keys |= self.sequential_keys;
        o.linearizable_keys |= self.linearizable_keys;
        o.wfr_keys |= self.wfr_keys;
        if let Some(path) = &self.transaction_order {
            // Absolute, so that a run's test.json still finds it from elsewhere.
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            o.transaction_order = Some(path.display().to_string());
        }
    }
}

fn choose_specs(args: &Args, recorded: Vec<CheckerSpec>) -> Vec<CheckerSpec> {
    if args.checker.is_empty() {
        if recorded.is_empty() {
            return vec![CheckerSpec {
                name: "stats".into(),
                options: CheckerOptions {
                    model: args.model.clone(),
                    consistency_model: args.consistency_model.clone(),
                    ..CheckerOptions::default()
                },
            }];
        }
        // The isolation flags apply to the run's own checkers too.
        return recorded
            .into_iter()
            .map(|mut spec| {
                args.elle.apply(&mut spec);
                spec
            })
            .collect();
    }
    args.checker
        .iter()
        .map(|name| {
            // Flags on the command line override what the run recorded.
            let recorded = recorded
                .iter()
                .find(|s| &s.name == name)
                .map(|s| s.options.clone())
                .unwrap_or_default();
            let mut spec = CheckerSpec {
                name: name.clone(),
                options: CheckerOptions {
                    model: args.model.clone().or(recorded.model.clone()),
                    consistency_model: args
                        .consistency_model
                        .clone()
                        .or(recorded.consistency_model.clone()),
                    ..recorded
                },
            };
            args.elle.apply(&mut spec);
            spec
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ops_of_each_workload_suggest_its_checker() {
        assert_eq!(
            fitting_checkers(&["read", "write", "cas"]),
            ["`--checker linearizable --model cas-register`"]
        );
        assert_eq!(
            fitting_checkers(&["read", "write"]),
            ["`--checker linearizable --model register`"]
        );
        assert_eq!(
            fitting_checkers(&["txn"]),
            ["`--checker list-append`", "`--checker rw-register`"]
        );
        assert_eq!(fitting_checkers(&["generate"]), ["`--checker unique-ids`"]);
        assert!(fitting_checkers(&["frobnicate"]).is_empty());
    }
}
