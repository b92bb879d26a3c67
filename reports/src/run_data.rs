//! What a report reads from one run: `test.json`, the history, `results.json`, and what
//! is missing. The files and their shapes belong to `distest-rundir`; this module only
//! decides how a page copes with each being absent or broken.
//!
//! A report must come out of whatever is there. Each file is optional on its own; a file
//! that is absent or broken becomes a note on the page instead of an error, and only a
//! directory with neither a history nor results is refused. When `results.json` is
//! missing the history is checked with the `stats` checker, so any history can be
//! turned into a report. A run that just finished hands its history and results over in
//! memory ([`RunData::from_run`]) instead of having them read back.
//!
//! A history larger than [`light::threshold_bytes`] is not loaded: one pass over it
//! gathers counts, rates, a bounded latency sample and the ops around the anomalies the
//! results name ([`Light`]); `history` then holds only those ops, by their indices.

use crate::analysis::{Plots, Samples};
use crate::error::ReportError;
use crate::evidence;
use crate::lamport::Window;
use crate::light::{self, Light};
use distest_checkers::net::Journal;
use distest_checkers::{check_all, CheckContext, CheckerSpec, History, Op, Results};
use distest_rundir::{files, JsonFile, RunDir, TestJson};
use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Where the verdicts on the page came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultsSource {
    /// `results.json` of the run (or the run's own results, handed over in memory).
    File,
    /// Computed at report time with the `stats` checker (no usable results.json).
    Stats,
    /// No results at all (no results.json and no readable history).
    None,
}

/// Everything the report reads from one run directory.
pub struct RunData {
    pub dir: PathBuf,
    /// `test.json`, typed; `None` if absent or not an object.
    pub test: Option<TestJson>,
    /// `test.json` as a document (every key, known or not), `Null` if none: the options
    /// table and comparisons show what the file says.
    pub test_doc: Value,
    /// The history; in the light form only the nemesis ops and the ops around anomalies,
    /// which keep their indices (find them with [`RunData::op`]).
    pub history: Option<History>,
    /// The one-pass summary of a history too long to load, if it was.
    pub light: Option<Light>,
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

impl RunData {
    /// Reads the run directory `dir`, history included.
    /// A history larger than [`light::threshold_bytes`] is read in its light form.
    pub fn load(dir: &Path) -> Result<RunData, ReportError> {
        Self::load_with(dir, Some(light::threshold_bytes()))
    }

    /// Reads the run directory `dir` with its history in the light form whatever its
    /// size (what a long run gets, on a history of any length).
    pub fn load_light(dir: &Path) -> Result<RunData, ReportError> {
        Self::load_with(dir, Some(0))
    }

    /// Reads `test.json` and `results.json` only: what a store index needs, cheaply.
    pub fn load_meta(dir: &Path) -> Result<RunData, ReportError> {
        Self::load_with(dir, None)
    }

    /// A run that just finished: its test, history and results as the run holds them,
    /// nothing read back from disk.
    pub fn from_run(dir: &Path, test: &TestJson, history: History, results: Results) -> RunData {
        let run = RunDir::new(dir);
        RunData {
            dir: dir.to_path_buf(),
            test_doc: test.to_value(),
            test: Some(test.clone()),
            history: Some(history),
            light: None,
            history_file: run.history_file(),
            results: Some(results),
            results_source: ResultsSource::File,
            journal: journal_or_note(&run, &mut Vec::new()),
            messages_window: None,
            notes: Vec::new(),
        }
    }

    /// `light_above_bytes`: the history size from which its light form is read; `None`:
    /// no history at all.
    fn load_with(dir: &Path, light_above_bytes: Option<u64>) -> Result<RunData, ReportError> {
        let with_history = light_above_bytes.is_some();
        if !dir.is_dir() {
            return Err(ReportError::read(dir, "it is not a directory"));
        }
        let run = RunDir::new(dir);
        let mut notes = Vec::new();
        let test_doc = match json_or_note(&run, files::TEST_JSON, &mut notes) {
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                notes.push("test.json is not a JSON object; the options are not shown.".into());
                Value::Null
            }
            None => Value::Null,
        };
        let test = TestJson::from_value(test_doc.clone());
        let history_file = run.history_file();
        let from_file = json_or_note(&run, files::RESULTS_JSON, &mut notes).and_then(|v| {
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
        let size_bytes = history_file
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let mut light = None;
        let history = match &history_file {
            Some(_) if !with_history => None,
            None => {
                notes.push(
                    "The run directory holds no history.jsonl; plots and timelines are not shown."
                        .into(),
                );
                None
            }
            Some(path) if light_above_bytes.is_some_and(|above| size_bytes > above) => {
                match light::read(
                    path,
                    size_bytes,
                    &from_file
                        .as_ref()
                        .map(|r| evidence::named_ops(r, usize::MAX))
                        .unwrap_or_default(),
                ) {
                    Ok((summary, kept)) => {
                        notes.extend(summary.notes());
                        if kept.is_none() {
                            notes.push("The ops kept around the anomalies do not form a valid history (the checkers' results say why); no timeline is drawn.".into());
                        }
                        light = Some(summary);
                        kept
                    }
                    Err(e) => {
                        notes.push(format!(
                            "The history could not be read ({e}); plots and timelines are not shown."
                        ));
                        None
                    }
                }
            }
            Some(path) => match distest_rundir::run_dir::read_history_file(path, None) {
                Ok(h) => Some(h),
                Err(e) => {
                    notes.push(format!(
                        "The history could not be read ({e}); plots and timelines are not shown."
                    ));
                    None
                }
            },
        };
        let (results, results_source) = match (from_file, &history) {
            (Some(r), _) => (Some(r), ResultsSource::File),
            (None, _) if light.is_some() => {
                notes.push("No results.json, and the history is too long to check while drawing the page: run `distest check` on it for verdicts.".into());
                (None, ResultsSource::None)
            }
            (None, Some(h)) if with_history => {
                notes.push("No results.json: the history was checked with the stats checker only; run `distest check` for the workload's checkers.".into());
                (Some(stats_results(h)), ResultsSource::Stats)
            }
            (None, _) => (None, ResultsSource::None),
        };
        let journal = if with_history {
            journal_or_note(&run, &mut notes)
        } else {
            None
        };
        if history.is_none() && light.is_none() && results.is_none() && history_file.is_none() {
            return Err(ReportError::NotARunDir {
                path: dir.to_path_buf(),
            });
        }
        Ok(RunData {
            dir: dir.to_path_buf(),
            test,
            test_doc,
            history,
            light,
            history_file,
            results,
            results_source,
            journal,
            messages_window: None,
            notes,
        })
    }

    /// A value of `test.json` as text (`target`, `workload`, ...), lists joined by `,`.
    pub fn test_str(&self, key: &str) -> Option<String> {
        match self.test_doc.get(key)? {
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

    /// How many ops the history has (in the light form, more than `history` holds).
    pub fn history_len(&self) -> usize {
        match (&self.light, &self.history) {
            (Some(l), _) => usize::try_from(l.ops).unwrap_or(usize::MAX),
            (None, Some(h)) => h.len(),
            (None, None) => 0,
        }
    }

    /// What the charts and headline figures are drawn from: gathered in one pass (light
    /// form), else computed from every op of the history.
    pub fn plots(&self) -> Option<Cow<'_, Plots>> {
        match (&self.light, &self.history) {
            (Some(light), _) => Some(Cow::Borrowed(&light.plots)),
            (None, Some(h)) => Some(Cow::Owned(Plots::of(
                &Samples::from_history(h),
                crate::charts::MAX_SCATTER_POINTS,
            ))),
            (None, None) => None,
        }
    }

    /// The op with history index `index`, if the history (or its light form) holds it.
    pub fn op(&self, index: u64) -> Option<&Op> {
        let h = self.history.as_ref()?;
        h.get(crate::timeline::position(h, index)?)
    }

    /// The node names: `test.json`'s `nodes`, else the ops' `node` fields, else `nodes/`.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .test
            .as_ref()
            .map(|t| t.nodes.clone())
            .unwrap_or_default();
        if names.is_empty() {
            if let Some(l) = &self.light {
                names.extend(l.per_node.iter().map(|(n, _)| n.clone()));
            }
        }
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
            if let Ok(entries) = std::fs::read_dir(self.dir.join(files::NODES_DIR)) {
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

    /// `test.json`'s `started_at`, if it has one.
    pub fn started_at(&self) -> Option<&str> {
        self.test
            .as_ref()
            .map(|t| t.started_at.as_str())
            .filter(|s| !s.is_empty())
    }
}

/// Bound on nodes shown; a real cluster has a handful, a broken file could claim millions.
pub const MAX_NODES: usize = 64;

/// A JSON file of the run; a broken one becomes a note.
fn json_or_note(run: &RunDir, name: &str, notes: &mut Vec<String>) -> Option<Value> {
    match run.read_json(name) {
        JsonFile::Absent => None,
        JsonFile::Unreadable(e) => {
            notes.push(format!("{name} could not be read ({e})."));
            None
        }
        JsonFile::NotJson(e) => {
            notes.push(format!("{name} is not valid JSON ({e}); it was ignored."));
            None
        }
        JsonFile::Value(v) => Some(v),
    }
}

/// The message journal, if the run has one; a broken one becomes a note.
fn journal_or_note(run: &RunDir, notes: &mut Vec<String>) -> Option<Journal> {
    match run.read_journal() {
        Ok(j) => j,
        Err(e) => {
            notes.push(format!("{e}; no message diagram."));
            None
        }
    }
}

/// Checks `history` with the `stats` checker, the one checker every history can take.
pub fn stats_results(history: &History) -> Results {
    match CheckerSpec::named("stats").build() {
        Ok(stats) => check_all(history, &[stats], &CheckContext::default()),
        // The registry always has stats; if it ever does not, say so rather than guess.
        Err(_) => Results::from_verdicts(Default::default()),
    }
}
