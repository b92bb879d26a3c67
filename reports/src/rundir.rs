//! Loading a run directory: `test.json`, the history, `results.json`, and what is missing.
//!
//! A report must come out of whatever is there. Each file is optional on its own; a file
//! that is absent or broken becomes a note on the page instead of an error, and only a
//! directory with neither a history nor results is refused. When `results.json` is
//! missing the history is checked with the `stats` checker, so any history can be
//! turned into a report.

use crate::error::ReportError;
use crate::lamport::Window;
use distest_checkers::format::read_history;
use distest_checkers::net::{self, Journal};
use distest_checkers::{build, check_all, CheckContext, CheckerOptions, History, Results};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// History file names tried, in order.
const HISTORY_NAMES: &[&str] = &["history.jsonl", "history.edn"];

/// Where the verdicts on the page came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultsSource {
    /// `results.json` of the run.
    File,
    /// Computed at report time with the `stats` checker (no usable results.json).
    Stats,
    /// No results at all (no results.json and no readable history).
    None,
}

/// Everything the report reads from one run directory.
pub struct RunData {
    pub dir: PathBuf,
    /// `test.json` as read (tolerant: any missing field is simply absent), `Null` if none.
    pub test: Value,
    pub history: Option<History>,
    pub history_file: Option<PathBuf>,
    pub results: Option<Results>,
    pub results_source: ResultsSource,
    /// The message journal (`messages.jsonl`, runs of the maelstrom target), if any.
    pub journal: Option<Journal>,
    /// The window of the message-flow diagram; `None`: around the first anomaly.
    pub messages_window: Option<Window>,
    /// What was missing or broken, one sentence each, shown on the page.
    pub notes: Vec<String>,
}

/// The merged message journal of a run, times on the history's clock.
pub const MESSAGES_FILE: &str = "messages.jsonl";

impl RunData {
    /// Reads the run directory `dir`, history included.
    pub fn load(dir: &Path) -> Result<RunData, ReportError> {
        Self::load_with(dir, true)
    }

    /// Reads `test.json` and `results.json` only: what a store index needs, cheaply.
    pub fn load_meta(dir: &Path) -> Result<RunData, ReportError> {
        Self::load_with(dir, false)
    }

    fn load_with(dir: &Path, with_history: bool) -> Result<RunData, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::read(dir, "it is not a directory"));
        }
        let mut notes = Vec::new();
        let test = match read_json(&dir.join("test.json"), &mut notes) {
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                notes.push("test.json is not a JSON object; the options are not shown.".into());
                Value::Null
            }
            None => Value::Null,
        };
        let history_file = HISTORY_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file());
        let history = match &history_file {
            Some(_) if !with_history => None,
            None => {
                notes.push(
                    "The run directory holds no history.jsonl; plots and timelines are not shown."
                        .into(),
                );
                None
            }
            Some(path) => match load_history(path) {
                Ok(h) => Some(h),
                Err(message) => {
                    notes.push(format!(
                        "The history could not be read ({message}); plots and timelines are not shown."
                    ));
                    None
                }
            },
        };
        let from_file = read_json(&dir.join("results.json"), &mut notes).and_then(|v| {
            match serde_json::from_value::<Results>(v) {
                Ok(r) => Some(r),
                Err(e) => {
                    notes.push(format!(
                        "results.json does not have the results shape ({e}); verdicts were recomputed."
                    ));
                    None
                }
            }
        });
        let (results, results_source) = match (from_file, &history) {
            (Some(r), _) => (Some(r), ResultsSource::File),
            (None, Some(h)) if with_history => {
                notes.push("No results.json: the history was checked with the stats checker only; run `distest check` for the workload's checkers.".into());
                (Some(stats_results(h)), ResultsSource::Stats)
            }
            (None, _) => (None, ResultsSource::None),
        };
        let journal = if with_history {
            load_journal(&dir.join(MESSAGES_FILE), &mut notes)
        } else {
            None
        };
        if history.is_none() && results.is_none() && history_file.is_none() {
            return Err(ReportError::NotARunDir {
                path: dir.to_path_buf(),
            });
        }
        Ok(RunData {
            dir: dir.to_path_buf(),
            test,
            history,
            history_file,
            results,
            results_source,
            journal,
            messages_window: None,
            notes,
        })
    }

    /// A string option of `test.json` (`target`, `workload`, ...), lists joined by `,`.
    pub fn test_str(&self, key: &str) -> Option<String> {
        match self.test.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The node names: `test.json`'s `nodes`, else the ops' `node` fields, else `nodes/`.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.test.get("nodes") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if names.is_empty() {
            if let Some(h) = &self.history {
                for op in h.ops() {
                    if let Some(n) = &op.node {
                        if !names.contains(n) && names.len() < MAX_NODES {
                            names.push(n.clone());
                        }
                    }
                }
            }
        }
        if names.is_empty() {
            if let Ok(entries) = std::fs::read_dir(self.dir.join("nodes")) {
                names = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .take(MAX_NODES)
                    .collect();
            }
        }
        names.sort();
        names
    }
}

/// Bound on nodes shown; a real cluster has a handful, a broken file could claim millions.
pub const MAX_NODES: usize = 64;

fn read_json(path: &Path, notes: &mut Vec<String>) -> Option<Value> {
    let name = path.file_name()?.to_string_lossy().to_string();
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            notes.push(format!("{name} could not be read ({e})."));
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(format!("{name} is not valid JSON ({e}); it was ignored."));
            None
        }
    }
}

fn load_journal(path: &Path, notes: &mut Vec<String>) -> Option<Journal> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            notes.push(format!(
                "{MESSAGES_FILE} could not be read ({e}); no message diagram."
            ));
            return None;
        }
    };
    match net::parse(&text, MESSAGES_FILE) {
        Ok(events) => Some(Journal::new(events)),
        Err(e) => {
            notes.push(format!("{e}; no message diagram."));
            None
        }
    }
}

fn load_history(path: &Path) -> Result<History, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    read_history(file, None, &path.display().to_string()).map_err(|e| e.to_string())
}

/// Checks `history` with the `stats` checker, the one checker every history can take.
pub fn stats_results(history: &History) -> Results {
    match build("stats", &CheckerOptions::default()) {
        Ok(stats) => check_all(history, &[stats], &CheckContext::default()),
        // The registry always has stats; if it ever does not, say so rather than guess.
        Err(_) => Results::from_verdicts(Default::default()),
    }
}
