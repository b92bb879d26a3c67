//! `distest suite SUITE.toml`: a nightly matrix — targets × workloads × nemeses × bugs ×
//! seeds — run one after another. A failing run does not stop the suite. At the end: one
//! comparison report of the whole matrix, one JUnit file for all runs, and the exit code
//! of the combined verdicts (any invalid → 1; else any failed run → 3; else any
//! unknown → 2; else 0).

use super::run::Args as RunArgs;
use crate::run::{self as orchestrator, StopFlag};
use crate::signals::{self, OnSignal};
use anyhow::Context;
use distest_checkers::Results;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The suite file (see examples/nightly.toml).
    pub suite: PathBuf,
    /// Where runs are stored (overrides the suite's `store`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Where the JUnit XML for all runs goes (default: <store>/suite-junit.xml).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Print the runs the suite would do, without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// The suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// A name for the reports.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// `local:N` (default `local:5`) or SSH hosts `h1,h2`.
    #[serde(default)]
    pub nodes: Option<String>,
    /// A file of SSH nodes, one `[user@]host[:port]` per line (as `--nodes-file`).
    #[serde(default)]
    pub nodes_file: Option<PathBuf>,
    /// Local cluster id and subnet (as `--cluster`, `--subnet`).
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub subnet: Option<String>,
    /// Node directories (as `--base-dir`).
    #[serde(default)]
    pub base_dir: Option<PathBuf>,
    #[serde(default)]
    pub time_limit: Option<f64>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub nemesis_interval: Option<f64>,
    #[serde(default)]
    pub recovery_time: Option<f64>,
    /// As `--op-timeout` (seconds a client waits for one op).
    #[serde(default)]
    pub op_timeout: Option<f64>,
    /// Seeds every matrix cell runs with (default: one seed, 1).
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// The matrix: each entry expands to the product of its lists.
    pub matrix: Vec<Cell>,
    /// The suite file's folder: schedule files are named relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_name() -> String {
    "suite".into()
}

/// One matrix entry; every field is a list and the entry runs their product.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub target: Vec<String>,
    #[serde(default)]
    pub workload: Vec<String>,
    /// Each entry is one `--nemesis` value (a comma list is one combined nemesis).
    #[serde(default)]
    pub nemesis: Vec<String>,
    /// Each entry is one `--bug` value; `""` is the correct build.
    #[serde(default)]
    pub bug: Vec<String>,
    #[serde(default)]
    pub consistency_model: Option<String>,
    /// Each entry is one `--bin` node program (maelstrom target).
    #[serde(default)]
    pub bin: Vec<PathBuf>,
    /// The arguments of every `bin` (as `--bin-arg`, in order).
    #[serde(default)]
    pub bin_args: Vec<String>,
    /// Each entry is one `--nemesis-schedule` file, relative to the suite file; `""` is
    /// none. With several, the entry runs each (a matrix dimension like `nemesis`).
    #[serde(default)]
    pub nemesis_schedule: Vec<String>,
    /// This entry's nodes (`local:3`), instead of the suite's.
    #[serde(default)]
    pub nodes: Option<String>,
    /// This entry's `--op-timeout`, instead of the suite's.
    #[serde(default)]
    pub op_timeout: Option<f64>,
    /// Target settings for every run of this entry (`--set KEY=VALUE`): `["read-mode=lease"]`.
    #[serde(default)]
    pub set: Vec<String>,
}

impl Suite {
    pub fn load(path: &Path) -> anyhow::Result<Suite> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the suite file {}", path.display()))?;
        let mut suite: Suite = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid suite file", path.display()))?;
        suite.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(suite)
    }

    /// Every run of the matrix, as the flags `distest run` would get.
    pub fn expand(&self, store: &Path) -> Vec<RunArgs> {
        let seeds = if self.seeds.is_empty() {
            vec![1]
        } else {
            self.seeds.clone()
        };
        let mut runs = Vec::new();
        for cell in &self.matrix {
            let workloads = if cell.workload.is_empty() {
                vec![None]
            } else {
                cell.workload.iter().cloned().map(Some).collect()
            };
            let nemeses = if cell.nemesis.is_empty() {
                vec!["none".to_string()]
            } else {
                cell.nemesis.clone()
            };
            let bugs = if cell.bug.is_empty() {
                vec![String::new()]
            } else {
                cell.bug.clone()
            };
            let bins: Vec<Option<&PathBuf>> = if cell.bin.is_empty() {
                vec![None]
            } else {
                cell.bin.iter().map(Some).collect()
            };
            let schedules: Vec<Option<PathBuf>> = if cell.nemesis_schedule.is_empty() {
                vec![None]
            } else {
                cell.nemesis_schedule
                    .iter()
                    .map(|f| (!f.is_empty()).then(|| self.dir.join(f)))
                    .collect()
            };
            for target in &cell.target {
                for workload in &workloads {
                    for nemesis in &nemeses {
                        for schedule in &schedules {
                            for bug in &bugs {
                                for bin in &bins {
                                    for &seed in &seeds {
                                        let mut args = self.run_args(
                                            store,
                                            cell,
                                            target,
                                            workload.clone(),
                                            nemesis,
                                            bug,
                                            seed,
                                        );
                                        args.bin = bin.cloned();
                                        args.nemesis_schedule = schedule.clone();
                                        runs.push(args);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        runs
    }

    #[allow(clippy::too_many_arguments)]
    fn run_args(
        &self,
        store: &Path,
        cell: &Cell,
        target: &str,
        workload: Option<String>,
        nemesis: &str,
        bug: &str,
        seed: u64,
    ) -> RunArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            run: RunArgs,
        }
        // Start from `distest run`'s own defaults so a suite run means the same as a CLI run.
        let mut args = Defaults::parse_from(["distest"]).run;
        args.target = target.to_string();
        args.workload = workload;
        args.nemesis = nemesis.split(',').map(str::to_string).collect();
        args.bug = if bug.is_empty() {
            Vec::new()
        } else {
            bug.split(',').map(str::to_string).collect()
        };
        args.seed = Some(seed);
        args.store = store.to_path_buf();
        args.consistency_model = cell.consistency_model.clone();
        args.bin_args = cell.bin_args.clone();
        if let Some(n) = &self.nodes {
            args.node_args.nodes = Some(n.clone());
        }
        if let Some(f) = &self.nodes_file {
            args.node_args.nodes_file = Some(f.clone());
        }
        if let Some(c) = &self.cluster {
            args.node_args.cluster_id = c.clone();
        }
        if let Some(s) = &self.subnet {
            args.node_args.subnet = s.clone();
        }
        if let Some(b) = &self.base_dir {
            args.node_args.base_dir = b.clone();
        }
        args.node_args.ssh_insecure_accept_host_keys = false;
        if let Some(t) = self.time_limit {
            args.time_limit = t;
        }
        if let Some(c) = self.concurrency {
            args.concurrency = c;
        }
        if let Some(r) = self.rate {
            args.rate = Some(r);
        }
        if let Some(i) = self.nemesis_interval {
            args.nemesis_interval = i;
        }
        if let Some(r) = self.recovery_time {
            args.recovery_time = r;
        }
        if let Some(t) = cell.op_timeout.or(self.op_timeout) {
            args.op_timeout = t;
        }
        if let Some(n) = &cell.nodes {
            args.node_args.nodes = Some(n.clone());
            args.node_args.nodes_file = None;
        }
        for setting in &cell.set {
            if let Some((k, v)) = setting.split_once('=') {
                args.settings.push((k.to_string(), v.to_string()));
            } else {
                // Kept as given: `to_config` refuses it with the usual sentence.
                args.settings.push((setting.clone(), String::new()));
            }
        }
        args
    }
}

fn describe(args: &RunArgs) -> String {
    format!(
        "{} {} {}{}{}{} seed {}",
        args.target,
        args.workload.as_deref().unwrap_or("(default workload)"),
        args.nemesis.join(","),
        match &args.nemesis_schedule {
            Some(path) => format!(" schedule {}", path.display()),
            None => String::new(),
        },
        if args.bug.is_empty() {
            String::new()
        } else {
            format!(" bug {}", args.bug.join(","))
        },
        match &args.bin {
            Some(bin) => format!(" bin {}", bin.display()),
            None => String::new(),
        },
        args.seed.unwrap_or(0)
    )
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let suite = Suite::load(&args.suite)?;
    let store = args
        .store
        .clone()
        .or_else(|| suite.store.clone())
        .unwrap_or_else(|| PathBuf::from("store"));
    let runs = suite.expand(&store);
    if runs.is_empty() {
        anyhow::bail!(
            "{} has an empty matrix; add at least one [[matrix]] entry with a target",
            args.suite.display()
        );
    }
    // Validate every cell before running any, so a typo does not surface after hours.
    let configs = runs
        .iter()
        .map(|r| {
            r.to_config()
                .with_context(|| format!("suite run {}", describe(r)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.dry_run {
        for r in &runs {
            println!("{}", describe(r));
        }
        return Ok(0);
    }
    let stop = StopFlag::default();
    signals::install(OnSignal::Stop(stop.clone()))?;
    let mut outcomes: Vec<(String, Option<PathBuf>, Result<Results, String>)> = Vec::new();
    for (i, (r, cfg)) in runs.iter().zip(configs).enumerate() {
        if stop.is_stopped() {
            eprintln!(
                "suite interrupted; skipping the remaining {} runs",
                runs.len() - i
            );
            break;
        }
        let label = describe(r);
        eprintln!("suite run {}/{}: {label}", i + 1, runs.len());
        match orchestrator::execute(cfg, stop.clone(), orchestrator::provision::provision) {
            Ok(o) => {
                eprintln!(
                    "  → {}",
                    o.results
                        .as_ref()
                        .map(|r| r.valid.as_str())
                        .unwrap_or("no results")
                );
                let results = o
                    .results
                    .ok_or_else(|| "the run produced no results".to_string());
                outcomes.push((label, Some(o.run_dir), results));
            }
            Err(e) => {
                let msg = super::one_sentence(&e);
                eprintln!("  → failed: {msg}");
                outcomes.push((label, None, Err(msg)));
            }
        }
    }
    let dirs: Vec<PathBuf> = outcomes.iter().filter_map(|(_, d, _)| d.clone()).collect();
    let junit_path = args
        .junit
        .clone()
        .unwrap_or_else(|| store.join("suite-junit.xml"));
    write_suite_outputs(&suite.name, &store, &dirs, &outcomes, &junit_path)?;
    let code = combined_exit_code(
        outcomes
            .iter()
            .map(|(_, _, r)| r.as_ref().map_or(crate::EXIT_ERROR, Results::exit_code)),
    );
    println!(
        "suite {}: {} runs, exit {code}; comparison in {}",
        suite.name,
        outcomes.len(),
        store.display()
    );
    Ok(code)
}

/// Any invalid → 1; else any failed run → 3; else any unknown → 2; else 0. Each item is
/// one run's exit code (0 valid, 1 invalid, 2 unknown or interrupted, 3 failed).
pub fn combined_exit_code(codes: impl Iterator<Item = i32>) -> i32 {
    let (mut invalid, mut failed, mut unknown) = (false, false, false);
    for code in codes {
        match code {
            0 => {}
            1 => invalid = true,
            2 => unknown = true,
            _ => failed = true,
        }
    }
    if invalid {
        1
    } else if failed {
        3
    } else if unknown {
        2
    } else {
        0
    }
}

/// The suite's JUnit file (one test suite per run; a run that failed to run is one
/// test case in error) and the comparison report of every run that produced a directory.
fn write_suite_outputs(
    name: &str,
    store: &Path,
    dirs: &[PathBuf],
    outcomes: &[(String, Option<PathBuf>, Result<Results, String>)],
    junit_path: &Path,
) -> anyhow::Result<()> {
    let junit_input: Vec<(String, Results)> = outcomes
        .iter()
        .map(|(label, dir, r)| {
            let label = dir
                .as_deref()
                .map(|d| distest_rundir::RunDir::new(d).label())
                .unwrap_or_else(|| label.clone());
            let results = match r {
                Ok(r) => r.clone(),
                Err(msg) => {
                    let mut results = Results::from_verdicts(Default::default());
                    results.mark_failed(format!("the run failed: {msg}"));
                    results
                }
            };
            (label, results)
        })
        .collect();
    crate::verify::write_junit(junit_path, &junit_input)?;
    if !dirs.is_empty() {
        super::compare::write_comparison(name, dirs, store)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_expands_to_the_product_of_its_lists() {
        let suite: Suite = toml::from_str(
            r#"
            name = "t"
            seeds = [1, 2]
            time_limit = 5
            [[matrix]]
            target = ["kv"]
            workload = ["register", "list-append"]
            nemesis = ["partition", "kill,pause"]
            bug = ["", "stale-read"]
            "#,
        )
        .unwrap();
        let runs = suite.expand(Path::new("s"));
        assert_eq!(runs.len(), 2 * 2 * 2 * 2);
        assert!(runs
            .iter()
            .all(|r| r.time_limit == 5.0 && r.store == Path::new("s")));
        assert!(runs
            .iter()
            .any(|r| r.nemesis == vec!["kill".to_string(), "pause".to_string()]));
        assert_eq!(runs.iter().filter(|r| r.bug.is_empty()).count(), 8);
    }

    #[test]
    fn a_maelstrom_entry_runs_each_node_program_with_its_arguments_and_settings() {
        let suite: Suite = toml::from_str(
            r#"
            [[matrix]]
            target = ["maelstrom"]
            workload = ["broadcast"]
            nemesis = ["partition"]
            bin = ["examples/maelstrom/broadcast.py", "examples/maelstrom/broadcast_broken.py"]
            bin_args = ["--quiet"]
            set = ["topology=tree2"]
            "#,
        )
        .unwrap();
        let runs = suite.expand(Path::new("/tmp/s"));
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[1].bin.as_deref(),
            Some(Path::new("examples/maelstrom/broadcast_broken.py"))
        );
        assert_eq!(runs[0].bin_args, vec!["--quiet"]);
        assert_eq!(
            runs[0].settings,
            vec![("topology".to_string(), "tree2".to_string())]
        );
        assert!(describe(&runs[1]).contains("bin examples/maelstrom/broadcast_broken.py"));
    }

    #[test]
    fn unknown_suite_keys_are_rejected() {
        assert!(
            toml::from_str::<Suite>("targets = [\"kv\"]\n[[matrix]]\ntarget=[\"kv\"]").is_err()
        );
    }

    #[test]
    fn exit_code_is_the_meet_with_failures_after_invalid() {
        assert_eq!(combined_exit_code([0, 0].into_iter()), 0);
        assert_eq!(combined_exit_code([0, 2].into_iter()), 2);
        assert_eq!(combined_exit_code([2, 3].into_iter()), 3);
        assert_eq!(combined_exit_code([3, 1].into_iter()), 1);
    }
}
