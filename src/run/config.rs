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
    /// fault names), for provisioning their packages.
    pub fn fault_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names = self.test.nemesis.clone();
        if let Some((script, _)) = &self.nemesis_script {
            let steps: Vec<distest_nemeses::schedule::FaultStep> = script
                .steps
                .iter()
                .map(|(at, op)| distest_generator::Step {
                    at: *at,
                    op: op.clone(),
                })
                .collect();
            names.extend(
                distest_nemeses::schedule::fault_names(&steps)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        Ok(names)
    }
}
