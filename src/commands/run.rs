//! `distest run`: provision nodes, run a workload under faults, check, report.

use crate::run::config::RunConfig;
use crate::run::{self, StopFlag};
use anyhow::Context;
use distest_workloads::CheckerSpec;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The system under test: kv (bundled Raft KV), etcd, crdt, postgres, noop (in-process).
    #[arg(long, default_value = "kv")]
    pub target: String,
    /// Workload: register, list-append, rw-register, set, ... (default: the target's first).
    #[arg(long)]
    pub workload: Option<String>,
    /// Faults, comma separated: partition, kill, pause, clock, loss, latency, all, none.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    pub nemesis: Vec<String>,
    /// Where the nodes come from: `--nodes local:N` (default local:5), `--node HOST`, `--nodes-file F`.
    #[command(flatten)]
    pub node_args: crate::nodes::NodeArgs,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Target rate over all clients in ops/s (default: as fast as the system answers).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Length of the main phase: seconds, or with a unit (90s, 30m, 24h).
    #[arg(long, default_value = "60", value_parser = crate::duration::parse_seconds)]
    pub time_limit: f64,
    /// Mean seconds between nemesis ops.
    #[arg(long, default_value_t = 5.0)]
    pub nemesis_interval: f64,
    /// Seconds to wait after the heal before final reads.
    #[arg(long, default_value_t = 5.0)]
    pub recovery_time: f64,
    /// A client op taking longer than this (seconds) is recorded as info.
    #[arg(long, default_value_t = 5.0)]
    pub op_timeout: f64,
    /// Seed for the op mix and the fault schedule (default: random, recorded in test.json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Switch on a documented bug of a bundled target (repeatable), e.g. stale-read.
    #[arg(long)]
    pub bug: Vec<String>,
    /// Consistency model for the isolation checkers (default strict-serializable).
    #[arg(long)]
    pub consistency_model: Option<String>,
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
    /// Transaction isolation level for SQL targets: read-committed, repeatable-read, serializable.
    #[arg(long)]
    pub isolation: Option<String>,
    /// SQL targets: send reads to a streaming replica instead of the primary.
    #[arg(long)]
    pub replica_reads: bool,
    /// Target-specific setting KEY=VALUE (repeatable), e.g. read-mode=lease.
    #[arg(long = "set", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

impl Args {
    /// Validates the options and turns them into the run's recorded configuration.
    pub fn to_config(&self) -> anyhow::Result<RunConfig> {
        let workloads = crate::targets::workloads_of(&self.target)?;
        let workload = self
            .workload
            .clone()
            .unwrap_or_else(|| workloads[0].to_string());
        if !workloads.contains(&workload.as_str()) {
            anyhow::bail!(
                "target {} does not support workload {workload:?}; it supports: {}",
                self.target,
                workloads.join(", ")
            );
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            anyhow::bail!(
                "--concurrency must be between 1 and 10000, got {}",
                self.concurrency
            );
        }
        if !self.time_limit.is_finite() || self.time_limit <= 0.0 {
            anyhow::bail!("--time-limit must be a positive number of seconds");
        }
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate <= 0.0 {
                anyhow::bail!("--rate must be a positive number of ops per second");
            }
        }
        let nemesis: Vec<String> = self
            .nemesis
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "none")
            .collect();
        if let Some(level) = &self.isolation {
            crate::targets::postgres::Isolation::parse(level)?;
        }
        let mut node_args = self.node_args.clone();
        // One PostgreSQL server is the natural default; replicas only with --replica-reads.
        if self.target == "postgres"
            && node_args.nodes.is_none()
            && node_args.node.is_empty()
            && node_args.nodes_file.is_none()
        {
            node_args.nodes = Some(
                if self.replica_reads {
                    "local:2"
                } else {
                    "local:1"
                }
                .into(),
            );
        }
        let seed = self.seed.unwrap_or_else(rand::random);
        let workload_opts = distest_workloads::WorkloadOptions {
            key_count: self.key_count,
            ops_per_key: self.ops_per_key,
            consistency_model: self.consistency_model.clone(),
            ..Default::default()
        };
        let w = distest_workloads::build(&workload, &workload_opts)?;
        let mut checkers = w.checkers();
        checkers.push(CheckerSpec::named("stats"));
        for c in &checkers {
            c.build()
                .with_context(|| format!("workload {workload} asks for checker {}", c.name))?;
        }
        Ok(RunConfig {
            target: self.target.clone(),
            workload,
            nemesis,
            nodes: Vec::new(),
            // Bad node flags fail here, before a run directory exists.
            nodes_spec: node_args.plan()?.describe(),
            concurrency: self.concurrency,
            rate: self.rate,
            time_limit_s: self.time_limit,
            nemesis_interval_s: self.nemesis_interval,
            recovery_s: self.recovery_time,
            op_timeout_s: self.op_timeout,
            seed,
            bug: self.bug.clone(),
            consistency_model: self.consistency_model.clone(),
            key_count: self.key_count,
            ops_per_key: self.ops_per_key,
            leave_running: self.leave_running,
            stop_on_anomaly: self.stop_on_anomaly,
            checkers,
            started_at: chrono::Utc::now().to_rfc3339(),
            distest_version: env!("CARGO_PKG_VERSION").to_string(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            settings: {
                let mut settings: std::collections::BTreeMap<String, String> =
                    self.settings.iter().cloned().collect();
                if let Some(level) = &self.isolation {
                    settings.insert("isolation".into(), level.clone());
                }
                if self.replica_reads {
                    settings.insert("replica-reads".into(), "true".into());
                }
                settings
            },
            store: self.store.clone(),
            junit: self.junit.clone(),
            node_args,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let cfg = args.to_config()?;
    let stop = StopFlag::default();
    install_interrupt_handler(stop.clone());
    let outcome = run::execute(cfg, stop, crate::run::provision::provision)?;
    if let Some(results) = &outcome.results {
        print!("{}", super::check::human_summary(results));
    }
    println!("run directory: {}", outcome.run_dir.display());
    Ok(outcome.exit_code)
}

/// First Ctrl-C/SIGTERM ends the main phase (heal, check and report still happen);
/// a second one exits at once, leaving cleanup to `distest env down`.
pub fn install_interrupt_handler(stop: StopFlag) {
    use nix::sys::signal::{self, SigHandler, Signal};
    static STOP: std::sync::OnceLock<StopFlag> = std::sync::OnceLock::new();
    let _ = STOP.set(stop);
    extern "C" fn on_signal(_: i32) {
        if let Some(stop) = STOP.get() {
            if stop.is_stopped() {
                // Second signal: the user insists. Leave at once.
                unsafe { nix::libc::_exit(130) };
            }
            stop.stop();
        }
    }
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches an atomic flag (async-signal-safe) or exits.
        unsafe {
            let _ = signal::signal(sig, SigHandler::Handler(on_signal));
        }
    }
}
