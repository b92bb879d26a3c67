//! A run's options as recorded in `test.json`: everything needed to understand and replay
//! the run (the seed drives the op mix and the fault schedule).

use distest_workloads::CheckerSpec;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub target: String,
    pub workload: String,
    /// Enabled faults (`partition`, `kill`, ...); empty for none.
    pub nemesis: Vec<String>,
    /// Node names (`n1`...), filled in once nodes are provisioned.
    pub nodes: Vec<String>,
    /// How nodes were asked for: `local:5`, `ssh:host1,host2`, `in-process:5`.
    pub nodes_spec: String,
    pub concurrency: usize,
    /// Target rate over all clients, ops per second; `None` = as fast as possible.
    pub rate: Option<f64>,
    pub time_limit_s: f64,
    pub nemesis_interval_s: f64,
    /// Wait after the heal before final reads, so the system can recover.
    pub recovery_s: f64,
    /// A single op taking longer than this is recorded as `info`.
    pub op_timeout_s: f64,
    pub seed: u64,
    /// Bugs switched on in a bundled target (`--bug`).
    pub bug: Vec<String>,
    pub consistency_model: Option<String>,
    pub key_count: u64,
    pub ops_per_key: u64,
    pub leave_running: bool,
    /// End the main phase at the first anomaly found online (`--stop-on-anomaly`).
    #[serde(default)]
    pub stop_on_anomaly: bool,
    pub checkers: Vec<CheckerSpec>,
    pub started_at: String,
    pub distest_version: String,
    pub command: String,
    /// Target-specific settings (`isolation`, `read-mode`...).
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    #[serde(skip)]
    pub store: PathBuf,
    #[serde(skip)]
    pub junit: Option<PathBuf>,
    /// The node flags, for provisioning (their meaning is recorded in `nodes_spec`).
    #[serde(skip)]
    pub node_args: crate::nodes::NodeArgs,
}

impl RunConfig {
    /// The store's test name: `<target>-<workload>-<nemesis>`.
    pub fn nemesis_label(&self) -> String {
        if self.nemesis.is_empty() {
            "none".to_string()
        } else {
            self.nemesis.join(",")
        }
    }
}
