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

#[cfg(test)]
mod tests {
    use super::*;
    use distest_nemeses::schedule::all_ops;
    use distest_nemeses::script::Script;

    fn config(nemesis: &[&str], schedule: Option<&str>) -> RunConfig {
        RunConfig {
            test: TestJson {
                nemesis: nemesis.iter().map(|s| s.to_string()).collect(),
                ..TestJson::default()
            },
            store: PathBuf::new(),
            junit: None,
            node_args: crate::nodes::NodeArgs::default(),
            nemesis_script: schedule.map(|text| {
                (
                    Script::parse(text, "s.toml", &all_ops()).unwrap(),
                    text.to_string(),
                )
            }),
        }
    }

    #[test]
    fn a_schedule_files_faults_are_the_runs_so_lose_unsynced_mounts_lazyfs() {
        let schedule = "[[step]]\nat = 1.0\nf = \"lose-unsynced\"\nvalue = { nodes = [\"@leader\"] }\n\n[[step]]\nat = 2.0\nf = \"remove-member\"\nvalue = { nodes = [\"n2\"] }\n";
        let cfg = config(&["partition"], Some(schedule));
        let names = cfg.fault_names().unwrap();
        assert_eq!(names, vec!["partition", "disk", "membership"]);
        let faults = distest_nemeses::resolve_names(&names).unwrap();
        assert!(distest_nemeses::needs_lazyfs(&faults));
        assert_eq!(
            distest_nemeses::packages(&names).unwrap(),
            vec!["fuse3", "iptables"]
        );
        // Without the file (or with one that loses nothing) nothing is mounted.
        let plain = config(&["partition"], None).fault_names().unwrap();
        assert!(!distest_nemeses::needs_lazyfs(
            &distest_nemeses::resolve_names(&plain).unwrap()
        ));
    }
}
