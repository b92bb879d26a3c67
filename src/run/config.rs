//! A run's configuration: what `test.json` records (`distest_rundir::TestJson`, everything
//! needed to understand and replay the run; the seed drives the op mix and the fault
//! schedule) plus what only this process needs (where to store, the node flags).

use distest_rundir::TestJson;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Recorded in the run directory as `test.json`.
    pub test: TestJson,
    /// Where runs are stored.
    pub store: PathBuf,
    /// Where JUnit XML goes, if anywhere.
    pub junit: Option<PathBuf>,
    /// The node flags, for provisioning (their meaning is recorded in `nodes_spec`).
    pub node_args: crate::nodes::NodeArgs,
    /// `--nemesis-schedule`, read and checked: the script and the file's text (copied into
    /// the run directory).
    pub nemesis_script: Option<(distest_nemeses::script::Script, String)>,
}

impl RunConfig {
    /// The faults the run performs: `--nemesis` and those the schedule file uses (as
    /// fault names), for provisioning (packages, lazyfs) and the performing nemesis.
    pub fn fault_names(&self) -> anyhow::Result<Vec<String>> {
        distest_nemeses::schedule::run_fault_names(
            &self.test.nemesis,
            self.nemesis_script.as_ref().map(|(script, _)| script),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
