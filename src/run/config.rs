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
}
