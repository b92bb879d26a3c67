//! `distest run`: provision nodes, run a workload under faults, check, report. Flags only:
//! what a target accepts comes from its registry entry, the run is `crate::run`'s.

use crate::run::config::RunConfig;
use crate::run::{self, StopFlag};
use crate::signals::{self, OnSignal};
use crate::targets::registry;
use anyhow::Context;
use distest_checkers::CheckerSpec;
use distest_rundir::TestJson;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The system under test (see --help for each target, its workloads and settings).
    #[arg(long, default_value = "kv", long_help = registry::help())]
    pub target: String,
    /// Workload: register, list-append, rw-register, set, ... (default: the target's first).
    #[arg(long)]
    pub workload: Option<String>,
    /// Faults, comma separated; `all` = every one but disk and corrupt-file, `none` = none
    /// (see --help for each).
    #[arg(long, value_delimiter = ',', default_value = "none", long_help = registry::nemesis_help())]
    pub nemesis: Vec<String>,
    /// Where the nodes come from: `--nodes local:N` (default: the target's), `--node HOST`, `--nodes-file F`.
    #[command(flatten)]
    pub node_args: crate::nodes::NodeArgs,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Target rate over all clients in ops/s (default: as fast as the system answers).
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Length of the main phase: seconds, or with a unit (90s, 30m, 24h).
    #[arg(long, default_value = "60", value_parser = crate::duration::parse_seconds, allow_negative_numbers = true)]
    pub time_limit: f64,
    /// A fault schedule file (TOML: timed fault ops aimed at roles such as the leader,
    /// see docs/nemesis-schedules.md), performed besides `--nemesis`.
    #[arg(long)]
    pub nemesis_schedule: Option<PathBuf>,
    /// Mean seconds between nemesis ops.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub nemesis_interval: f64,
    /// Seconds to wait after the heal before final reads.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub recovery_time: f64,
    /// A client op taking longer than this (seconds) is recorded as info.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub op_timeout: f64,
    /// Seed for the op mix and the fault schedule (default: random, recorded in test.json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Switch on a documented bug of a bundled target (repeatable), e.g. stale-read.
    #[arg(long)]
    pub bug: Vec<String>,
    /// Consistency model for the isolation checkers: any model of Elle's lattice
    /// (default strict-serializable).
    #[arg(long)]
    pub consistency_model: Option<String>,
    #[command(flatten)]
    pub elle: super::check::ElleArgs,
    /// Active keys at once (keyed workloads).
    #[arg(long, default_value_t = 5)]
    pub key_count: u64,
    /// Ops per key before a key is retired for a fresh one.
    #[arg(long, default_value_t = 200)]
    pub ops_per_key: u64,
    /// Leave the target and nodes running after the run.
    #[arg(long)]
    pub leave_running: bool,
    /// End the main phase at the first anomaly online checking reports (then heal,
    /// check and report as usual).
    #[arg(long)]
    pub stop_on_anomaly: bool,
    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Also write JUnit XML (one test case per checker) to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// A target setting KEY=VALUE (repeatable), e.g. isolation=serializable, read-mode=lease;
    /// each target's settings are listed under --target.
    #[arg(long = "set", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// The node program of the maelstrom target (any language; JSON messages on stdin and
    /// stdout); same as `--set bin=PATH`.
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// One argument of the --bin program (repeatable, in order).
    #[arg(long = "bin-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub bin_args: Vec<String>,
    /// The broadcast workload's topology (maelstrom target): grid, line, total, tree2,
    /// tree3, tree4; same as `--set topology=NAME`.
    #[arg(long)]
    pub topology: Option<String>,
    /// Same as `--set isolation=LEVEL` (kept for older command lines).
    #[arg(long, hide = true)]
    pub isolation: Option<String>,
    /// Same as `--set replica-reads=true` (kept for older command lines).
    #[arg(long, hide = true)]
    pub replica_reads: bool,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

impl Args {
    /// The settings: `--set` pairs, then the hidden aliases.
    fn settings(&self) -> registry::Settings {
        let mut settings: registry::Settings = self.settings.iter().cloned().collect();
        if let Some(level) = &self.isolation {
            settings.insert("isolation".into(), level.clone());
        }
        if self.replica_reads {
            settings.insert("replica-reads".into(), "true".into());
        }
        if let Some(bin) = &self.bin {
            // Absolute, so test.json replays from anywhere.
            let bin = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.clone());
            settings.insert("bin".into(), bin.display().to_string());
        }
        if !self.bin_args.is_empty() {
            settings.insert(
                "bin-args".into(),
                serde_json::Value::from(self.bin_args.clone()).to_string(),
            );
        }
        if let Some(t) = &self.topology {
            settings.insert("topology".into(), t.clone());
        }
        settings
    }

    /// Validates the options (the target's entry checks workload and settings) and turns
    /// them into the run's configuration; nothing is provisioned yet.
    pub fn to_config(&self) -> anyhow::Result<RunConfig> {
        let entry = registry::find(&self.target)?;
        let workload = self
            .workload
            .clone()
            .unwrap_or_else(|| entry.default_workload().to_string());
        entry.check_workload(&workload)?;
        entry.check_bugs(&self.bug)?;
        if self.concurrency == 0 || self.concurrency > 10_000 {
            anyhow::bail!(
                "--concurrency must be between 1 and 10000, got {}",
                self.concurrency
            );
        }
        let seconds = [
            ("--time-limit", self.time_limit, false),
            ("--nemesis-interval", self.nemesis_interval, false),
            ("--op-timeout", self.op_timeout, false),
            ("--recovery-time", self.recovery_time, true),
        ];
        for (flag, value, zero_ok) in seconds {
            if !value.is_finite() || value < 0.0 || (value == 0.0 && !zero_ok) {
                anyhow::bail!(
                    "{flag} must be a {} number of seconds, got {value}",
                    if zero_ok { "non-negative" } else { "positive" }
                );
            }
        }
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate <= 0.0 {
                anyhow::bail!("--rate must be a positive number of ops per second, got {rate}");
            }
        }
        for (flag, value) in [
            ("--key-count", self.key_count),
            ("--ops-per-key", self.ops_per_key),
        ] {
            if value == 0 {
                anyhow::bail!("{flag} must be at least 1, got 0");
            }
        }
        if self.store.exists() && !self.store.is_dir() {
            anyhow::bail!(
                "--store {} is a file, not a directory; pass a directory for the runs",
                self.store.display()
            );
        }
        let nemesis: Vec<String> = self
            .nemesis
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "none")
            .collect();
        let nemesis_script = match &self.nemesis_schedule {
            None => None,
            Some(path) => {
                let ops = distest_nemeses::schedule::all_ops();
                // The text is kept as read, so the run records exactly what it performs.
                let loaded = distest_nemeses::script::Script::load(path, &ops)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Some(loaded)
            }
        };
        // Bad `+` timelines (a fault in two) fail here, before a run directory exists.
        distest_nemeses::schedule::check_timelines(&nemesis).map_err(|e| anyhow::anyhow!("{e}"))?;
        let settings = self.settings();
        let mut node_args = self.node_args.clone();
        if node_args.names_no_nodes() {
            node_args.nodes = Some(format!("local:{}", entry.default_nodes(&settings)));
        }
        // Bad node flags and settings fail here, before a run directory exists.
        let plan = node_args.plan()?;
        entry.check_settings(&settings, plan.node_count())?;
        let seed = self.seed.unwrap_or_else(rand::random);
        // A target file is recorded by its name (the store's label) and its full path.
        let target_file = (entry.name != self.target).then(|| {
            let path = crate::targets::file::file_path(&self.target);
            std::fs::canonicalize(&path)
                .unwrap_or(path)
                .display()
                .to_string()
        });
        let test = TestJson {
            target: entry.name.clone(),
            target_file,
            workload,
            nemesis,
            nodes: Vec::new(),
            nodes_spec: plan.describe(),
            concurrency: self.concurrency,
            rate: self.rate,
            time_limit_s: self.time_limit,
            nemesis_interval_s: self.nemesis_interval,
            nemesis_schedule: self
                .nemesis_schedule
                .as_ref()
                .map(|p| p.display().to_string()),
            recovery_s: self.recovery_time,
            op_timeout_s: self.op_timeout,
            seed,
            bug: self.bug.clone(),
            consistency_model: self.consistency_model.clone(),
            key_count: self.key_count,
            ops_per_key: self.ops_per_key,
            leave_running: self.leave_running,
            stop_on_anomaly: self.stop_on_anomaly,
            checkers: Vec::new(),
            started_at: chrono::Utc::now().to_rfc3339(),
            distest_version: env!("CARGO_PKG_VERSION").to_string(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            settings,
            extra: Default::default(),
        };
        let mut checkers = run::workload_of(&test)?.checkers();
        for c in &mut checkers {
            self.elle.apply(c);
        }
        checkers.push(CheckerSpec::named("stats"));
        for c in &checkers {
            c.build().with_context(|| {
                format!("workload {} asks for checker {}", test.workload, c.name)
            })?;
        }
        Ok(RunConfig {
            test: TestJson { checkers, ..test },
            store: self.store.clone(),
            junit: self.junit.clone(),
            node_args,
            run_dir: Default::default(),
            nemesis_script,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    // Every option is checked before anything is provisioned or written.
    let cfg = args.to_config()?;
    let stop = StopFlag::default();
    signals::install(OnSignal::Stop(stop.clone()))?;
    let outcome = run::execute(cfg, stop, crate::run::provision::provision)?;
    if let Some(results) = &outcome.results {
        print!("{}", crate::verify::human_summary(results));
        crate::verify::say_error(results);
    }
    println!("run directory: {}", outcome.run_dir.display());
    Ok(outcome.exit_code)
}
