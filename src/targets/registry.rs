//! The target registry: one [`TargetEntry`] per target, holding everything distest knows
//! about it outside its adapter: name, one-line description, workloads, OS packages, the
//! daemons it runs, the bugs `--bug` can switch on, the settings it
//! takes and how to check them, its default node count, whether it runs in-process, and
//! how to build it.
//!
//! `--help`, `distest env packages` (what `scripts/setup.sh` installs), provisioning and
//! cleanup all read the registry; the CLI has no target-specific branch. Entries are
//! values, not static tables, so one can be built at run time, e.g. from a target
//! described in a file: [`find`] is where `--target path/to/target.toml` would be read.

use super::{Target, TargetOptions};
use crate::nodes::Remote;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// Target settings as given with `--set KEY=VALUE` (recorded in `test.json`).
pub type Settings = BTreeMap<String, String>;

/// What a target's constructor gets.
pub struct TargetContext {
    /// The nodes it runs on (empty for an in-process target).
    pub nodes: Vec<Arc<dyn Remote>>,
    /// How many nodes the run has (virtual ones for an in-process target).
    pub node_count: usize,
    /// Bugs, the op timeout, validated settings.
    pub options: TargetOptions,
    /// The run's directory, for targets that write logs of their own there: filled in
    /// once the run has created it (after provisioning, before `setup`).
    pub run_dir: RunDirSlot,
}

/// The run's directory once it exists; shared by the run and its target.
pub type RunDirSlot = Arc<std::sync::OnceLock<std::path::PathBuf>>;

type Build = Arc<dyn Fn(TargetContext) -> anyhow::Result<Arc<dyn Target>> + Send + Sync>;
type CheckSettings = Arc<dyn Fn(&Settings, usize) -> Result<(), String> + Send + Sync>;
type DefaultNodes = Arc<dyn Fn(&Settings) -> usize + Send + Sync>;

/// The values a setting takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingKind {
    /// One of these words.
    Choice(Vec<String>),
    /// `true` or `false` (a bare `--set name` is not accepted: write `name=true`).
    Flag,
    /// Any text.
    Text,
}

/// One setting a target takes (`--set NAME=VALUE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub about: String,
    pub kind: SettingKind,
}

impl Setting {
    pub fn choice(name: &str, about: &str, values: &[&str]) -> Setting {
        Setting {
            name: name.into(),
            about: about.into(),
            kind: SettingKind::Choice(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    pub fn flag(name: &str, about: &str) -> Setting {
        Setting {
            name: name.into(),
            about: about.into(),
            kind: SettingKind::Flag,
        }
    }

    pub fn text(name: &str, about: &str) -> Setting {
        Setting {
            name: name.into(),
            about: about.into(),
            kind: SettingKind::Text,
        }
    }

    /// `name=a|b`, `name=true|false`, `name=TEXT`.
    pub fn usage(&self) -> String {
        match &self.kind {
            SettingKind::Choice(values) => format!("{}={}", self.name, values.join("|")),
            SettingKind::Flag => format!("{}=true|false", self.name),
            SettingKind::Text => format!("{}=TEXT", self.name),
        }
    }

    fn check(&self, target: &str, value: &str) -> Result<(), String> {
        let valid: Vec<String> = match &self.kind {
            SettingKind::Choice(values) => values.clone(),
            SettingKind::Flag => vec!["true".into(), "false".into()],
            SettingKind::Text => return Ok(()),
        };
        if valid.iter().any(|v| v == value) {
            Ok(())
        } else {
            Err(format!(
                "target {target} does not know {} {value:?}; valid values are: {}",
                self.name,
                valid.join(", ")
            ))
        }
    }
}

/// Everything distest knows about one target.
#[derive(Clone)]
pub struct TargetEntry {
    pub name: String,
    /// One line for `--help`.
    pub about: String,
    /// Workloads it supports; the first is the default.
    pub workloads: Vec<String>,
    /// OS packages every node needs (installed when missing).
    pub packages: Vec<String>,
    /// Daemons it runs through `ManagedDaemon` (their pid files and data directories
    /// carry these names). For people and tests: cleaning up after a dead run finds
    /// every daemon by its pid file, whatever its name (`nodes::sweep`), so a target
    /// built at run time needs nothing here to be cleaned up.
    pub daemons: Vec<String>,
    pub settings: Vec<Setting>,
    /// True when settings beyond `settings` are accepted too (a target file passes every
    /// `--set` to its client).
    pub any_settings: bool,
    /// Bugs `--bug` can switch on (bundled targets' documented bugs).
    pub bugs: Vec<String>,
    /// True for a target that runs inside distest and needs no nodes.
    pub in_process: bool,
    default_nodes: DefaultNodes,
    check: CheckSettings,
    build: Build,
}

impl std::fmt::Debug for TargetEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetEntry")
            .field("name", &self.name)
            .field("workloads", &self.workloads)
            .field("packages", &self.packages)
            .field("daemons", &self.daemons)
            .field("settings", &self.settings)
            .field("bugs", &self.bugs)
            .field("in_process", &self.in_process)
            .finish_non_exhaustive()
    }
}

impl TargetEntry {
    /// An entry with no workloads, packages, daemons or settings yet, 5 nodes by default.
    pub fn new(
        name: &str,
        about: &str,
        build: impl Fn(TargetContext) -> anyhow::Result<Arc<dyn Target>> + Send + Sync + 'static,
    ) -> TargetEntry {
        TargetEntry {
            name: name.into(),
            about: about.into(),
            workloads: Vec::new(),
            packages: Vec::new(),
            daemons: Vec::new(),
            settings: Vec::new(),
            any_settings: false,
            bugs: Vec::new(),
            in_process: false,
            default_nodes: Arc::new(|_| crate::nodes::args::DEFAULT_LOCAL_NODES),
            check: Arc::new(|_, _| Ok(())),
            build: Arc::new(build),
        }
    }

    pub fn workloads(mut self, names: &[&str]) -> Self {
        self.workloads = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn packages(mut self, names: &[&str]) -> Self {
        self.packages = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn daemons(mut self, names: &[&str]) -> Self {
        self.daemons = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn setting(mut self, setting: Setting) -> Self {
        self.settings.push(setting);
        self
    }

    /// Accepts settings it does not declare (checked only by `check_with`).
    pub fn any_settings(mut self) -> Self {
        self.any_settings = true;
        self
    }

    pub fn bugs(mut self, names: &[&str]) -> Self {
        self.bugs = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn in_process(mut self) -> Self {
        self.in_process = true;
        self
    }

    /// The node count when no node flag is given, which may depend on the settings.
    pub fn default_nodes_with(
        mut self,
        count: impl Fn(&Settings) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.default_nodes = Arc::new(count);
        self
    }

    /// A check of the settings together (and against the node count), after each one
    /// passed its own; returns the sentence to show.
    pub fn check_with(
        mut self,
        check: impl Fn(&Settings, usize) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.check = Arc::new(check);
        self
    }

    /// The default workload.
    pub fn default_workload(&self) -> &str {
        self.workloads.first().map(String::as_str).unwrap_or("")
    }

    /// Fails unless this target supports `workload`.
    pub fn check_workload(&self, workload: &str) -> anyhow::Result<()> {
        if self.workloads.iter().any(|w| w == workload) {
            return Ok(());
        }
        anyhow::bail!(
            "target {} does not support workload {workload:?}; it supports: {}",
            self.name,
            self.workloads.join(", ")
        )
    }

    /// Fails unless this target has every bug of `bugs` to switch on.
    pub fn check_bugs(&self, bugs: &[String]) -> anyhow::Result<()> {
        let Some(bad) = bugs.iter().find(|b| !self.bugs.contains(b)) else {
            return Ok(());
        };
        if self.bugs.is_empty() {
            let with: Vec<String> = super::builtin()
                .into_iter()
                .filter(|e| !e.bugs.is_empty())
                .map(|e| e.name)
                .collect();
            anyhow::bail!(
                "target {} has no bugs to switch on, so --bug {bad:?} cannot apply; --bug works with {}",
                self.name,
                with.join(", ")
            )
        }
        anyhow::bail!(
            "target {} has no bug {bad:?}; its bugs are: {}",
            self.name,
            self.bugs.join(", ")
        )
    }

    pub fn default_nodes(&self, settings: &Settings) -> usize {
        (self.default_nodes)(settings)
    }

    /// Checks `settings` for a run on `node_count` nodes: every name is one this target
    /// takes, every value one it accepts, and the target's own check of them together.
    /// Runs before anything is provisioned.
    pub fn check_settings(&self, settings: &Settings, node_count: usize) -> anyhow::Result<()> {
        for (name, value) in settings {
            let Some(setting) = self.settings.iter().find(|s| &s.name == name) else {
                if self.any_settings {
                    continue;
                }
                let takes = if self.settings.is_empty() {
                    "it takes none".to_string()
                } else {
                    format!(
                        "it takes: {}",
                        self.settings
                            .iter()
                            .map(Setting::usage)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                anyhow::bail!("target {} has no setting {name:?}; {takes}", self.name);
            };
            setting
                .check(&self.name, value)
                .map_err(anyhow::Error::msg)?;
        }
        (self.check)(settings, node_count).map_err(anyhow::Error::msg)
    }

    /// Builds the target on `ctx`'s nodes.
    pub fn build(&self, ctx: TargetContext) -> anyhow::Result<Arc<dyn Target>> {
        (self.build)(ctx)
    }
}

/// The target called `name`.
pub fn find(name: &str) -> anyhow::Result<TargetEntry> {
    // Built-in names first; anything else that looks like a path is a target file, read
    // into an entry of its own.
    let all = super::builtin();
    if let Some(entry) = all.iter().find(|e| e.name == name) {
        return Ok(entry.clone());
    }
    if super::file::is_file_target(name) {
        return super::file::entry(&super::file::file_path(name));
    }
    anyhow::bail!(
        "unknown target {name:?}; valid targets are: {}, or the path of a target file (docs/targets.md)",
        all.iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The packages nodes need for `targets` and the faults `nemeses` (every one of them
/// when a list is empty), sorted, without repeats: what `distest env packages` prints.
pub fn packages_for(targets: &[String], nemeses: &[String]) -> anyhow::Result<Vec<String>> {
    let entries = if targets.is_empty() {
        super::builtin()
    } else {
        targets
            .iter()
            .map(|t| find(t))
            .collect::<anyhow::Result<_>>()?
    };
    // No list: every fault, also those `all` leaves out (disk, membership), so a
    // machine set up with `distest env packages` can run any of them.
    let faults: Vec<String> = if nemeses.is_empty() {
        distest_nemeses::FAULTS
            .iter()
            .map(|f| f.name.to_string())
            .collect()
    } else {
        nemeses.to_vec()
    };
    let mut packages: Vec<String> = entries.into_iter().flat_map(|e| e.packages).collect();
    packages.extend(
        distest_nemeses::packages(&faults)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .map(String::from),
    );
    packages.sort();
    packages.dedup();
    Ok(packages)
}

/// `--target`'s help: one line per target, its workloads and settings.
pub fn help() -> String {
    let mut out = String::from("The system under test:");
    for e in super::builtin() {
        let _ = write!(out, "\n  {:<10} {}", e.name, e.about);
        let _ = write!(out, "\n  {:<10} workloads: {}", "", e.workloads.join(", "));
        if !e.settings.is_empty() {
            let settings: Vec<String> = e.settings.iter().map(Setting::usage).collect();
            let _ = write!(out, "; --set {}", settings.join(", --set "));
        }
    }
    out
}

/// `--nemesis`'s help: one line per fault.
pub fn nemesis_help() -> String {
    let mut out = String::from(
        "Faults, comma separated: one timeline of faults (`all` = every one not marked \"named only\", `none` = no faults); `+` runs timelines side by side (`partition+clock`: each its own schedule, overlapping):",
    );
    for f in distest_nemeses::FAULTS.iter() {
        let only = if f.in_all { "" } else { " (named only)" };
        let _ = write!(out, "\n  {:<12} {}{only}", f.name, f.about);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_entry_is_whole_and_named_once() {
        let all = super::super::builtin();
        let mut names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "duplicate target names");
        let help = help();
        for e in &all {
            assert!(!e.about.is_empty() && help.contains(&e.about), "{}", e.name);
            assert!(!e.workloads.is_empty(), "{} has no workload", e.name);
            for w in &e.workloads {
                assert!(
                    distest_workloads::build(w, &Default::default()).is_ok(),
                    "{}: unknown workload {w}",
                    e.name
                );
            }
            assert!(e.default_nodes(&Settings::new()) >= 1);
            assert!(
                e.in_process || !e.daemons.is_empty(),
                "{}: what would be cleaned?",
                e.name
            );
            assert!(find(&e.name).is_ok());
        }
        let kv = find("kv").unwrap();
        assert!(kv.check_bugs(&["stale-read".into()]).is_ok());
        assert_eq!(
            kv.check_bugs(&["no-such-bug".into()])
                .unwrap_err()
                .to_string(),
            format!(
                "target kv has no bug \"no-such-bug\"; its bugs are: {}",
                kv.bugs.join(", ")
            )
        );
        assert_eq!(
            find("etcd").unwrap().check_bugs(&["x".into()]).unwrap_err().to_string(),
            "target etcd has no bugs to switch on, so --bug \"x\" cannot apply; --bug works with kv, crdt, noop"
        );
        assert!(find("nosuchdb")
            .unwrap_err()
            .to_string()
            .contains("valid targets are: kv"));
    }

    #[test]
    fn settings_are_checked_one_by_one_then_together() {
        let pg = find("postgres").unwrap();
        let set = |pairs: &[(&str, &str)]| -> Settings {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(pg
            .check_settings(&set(&[("isolation", "serializable")]), 1)
            .is_ok());
        let err = pg
            .check_settings(&set(&[("isolation", "snapshot")]), 1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target postgres does not know isolation \"snapshot\"; valid values are: read-committed, repeatable-read, serializable"
        );
        let err = pg
            .check_settings(&set(&[("replica-reads", "yes")]), 2)
            .unwrap_err();
        assert!(err.to_string().contains("true, false"), "{err}");
        assert!(pg
            .check_settings(&set(&[("replica-reads", "true")]), 1)
            .is_err());
        assert!(pg
            .check_settings(&set(&[("replica-reads", "true")]), 2)
            .is_ok());
        assert_eq!(pg.default_nodes(&set(&[])), 1);
        assert_eq!(pg.default_nodes(&set(&[("replica-reads", "true")])), 2);
        let err = find("etcd")
            .unwrap()
            .check_settings(&set(&[("x", "1")]), 3)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target etcd has no setting \"x\"; it takes none"
        );
    }

    #[test]
    fn an_entry_built_at_run_time_works_like_a_builtin_one() {
        // What a target described in a file becomes: an entry built from data.
        let name = String::from("file-target");
        let entry = TargetEntry::new(&name, "from a file", |ctx| {
            Ok(Arc::new(super::super::noop::Noop::new(ctx.node_count)))
        })
        .workloads(&["register"])
        .setting(Setting::text("endpoint", "where it listens"))
        .default_nodes_with(|_| 3)
        .in_process();
        assert!(entry
            .check_settings(&Settings::from([("endpoint".into(), "x".into())]), 3)
            .is_ok());
        let target = entry
            .build(TargetContext {
                nodes: Vec::new(),
                node_count: entry.default_nodes(&Settings::new()),
                options: TargetOptions::default(),
                run_dir: RunDirSlot::default(),
            })
            .unwrap();
        assert_eq!(target.node_names(), vec!["n1", "n2", "n3"]);
    }
}
