//! `distest check PATH --checker NAME [--model M] [--consistency-model CM]`: re-check a
//! history file (distest JSONL, Jepsen EDN or text log) or a run directory. Flags only:
//! the checking is `crate::verify`'s.

use crate::verify;
use anyhow::{bail, Context};
use distest_checkers::format::Format;
use distest_checkers::{CheckerOptions, CheckerSpec};
use distest_rundir::{files, RunDir};
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
        Some(run) => recorded_checkers(run)?,
        None => Vec::new(),
    };
    let specs = choose_specs(&args, recorded);
    let limit = args.time_limit.map(Duration::from_secs_f64);
    let mut results = verify::check_file(&history_path, format, &specs, limit, args.stream)?;
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
    Ok(results.valid.exit_code())
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

fn choose_specs(args: &Args, recorded: Vec<CheckerSpec>) -> Vec<CheckerSpec> {
    if args.checker.is_empty() {
        if recorded.is_empty() {
            return vec![CheckerSpec {
                name: "stats".into(),
                options: CheckerOptions {
                    model: args.model.clone(),
                    consistency_model: args.consistency_model.clone(),
                },
            }];
        }
        return recorded;
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
            CheckerSpec {
                name: name.clone(),
                options: CheckerOptions {
                    model: args.model.clone().or(recorded.model),
                    consistency_model: args
                        .consistency_model
                        .clone()
                        .or(recorded.consistency_model),
                },
            }
        })
        .collect()
}
