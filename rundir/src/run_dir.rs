//! One run directory: where each file is, and reading and writing them.
//!
//! Readers that must not fail on a broken file (the report) use [`RunDir::read_json`],
//! which says what was wrong; readers that must (`distest check`) use the `Result` ones.

use crate::files;
use crate::test_json::TestJson;
use distest_checkers::format::{self, Format};
use distest_checkers::net::{self, Journal};
use distest_checkers::{History, Results};
use serde_json::Value;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a run directory's file could not be read or written.
#[derive(Debug, Error)]
pub enum RunDirError {
    #[error("could not read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("could not write {path}: {message}; check the directory's permissions and free space")]
    Write { path: PathBuf, message: String },
    #[error("{path} holds no {}; pass a history file or a run directory", files::HISTORY_FILES.join(", "))]
    NoHistory { path: PathBuf },
}

impl RunDirError {
    fn read(path: &Path, e: impl std::fmt::Display) -> RunDirError {
        RunDirError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    fn invalid(path: &Path, e: impl std::fmt::Display) -> RunDirError {
        RunDirError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    fn write(path: &Path, e: impl std::fmt::Display) -> RunDirError {
        RunDirError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// A JSON file of a run as found on disk.
#[derive(Debug)]
pub enum JsonFile {
    Absent,
    /// It exists but could not be read (permissions, I/O).
    Unreadable(String),
    /// It was read but is not JSON.
    NotJson(String),
    Value(Value),
}

/// A run directory (it need not be complete: a run writes its files one after another).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` (one of [`files`]) in this run.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Where node `node`'s logs are collected.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path.join(files::NODES_DIR).join(node)
    }

    /// The run's name in reports and JUnit: `<test>/<timestamp>`.
    pub fn label(&self) -> String {
        let mut parts = self.path.iter().rev().take(2).collect::<Vec<_>>();
        parts.reverse();
        parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The first history file present ([`files::HISTORY_FILES`] order).
    pub fn history_file(&self) -> Option<PathBuf> {
        files::HISTORY_FILES
            .iter()
            .map(|n| self.file(n))
            .find(|p| p.is_file())
    }

    /// The history file, or an error naming the files looked for.
    pub fn require_history_file(&self) -> Result<PathBuf, RunDirError> {
        self.history_file().ok_or_else(|| RunDirError::NoHistory {
            path: self.path.clone(),
        })
    }

    /// Reads a JSON file of the run, saying what was wrong instead of failing.
    pub fn read_json(&self, name: &str) -> JsonFile {
        let path = self.file(name);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return JsonFile::Absent,
            Err(e) => return JsonFile::Unreadable(e.to_string()),
        };
        match serde_json::from_slice(&text) {
            Ok(v) => JsonFile::Value(v),
            Err(e) => JsonFile::NotJson(e.to_string()),
        }
    }

    /// `test.json`, or `None` when the run has none.
    pub fn read_test(&self) -> Result<Option<TestJson>, RunDirError> {
        self.read_typed(files::TEST_JSON, |v| {
            TestJson::from_value(v).ok_or_else(|| "it is not a JSON object".to_string())
        })
    }

    pub fn write_test(&self, test: &TestJson) -> Result<(), RunDirError> {
        self.write_json(files::TEST_JSON, &test.to_value())
    }

    /// `results.json`, or `None` when the run has none (yet).
    pub fn read_results(&self) -> Result<Option<Results>, RunDirError> {
        self.read_typed(files::RESULTS_JSON, |v| {
            serde_json::from_value(v).map_err(|e| e.to_string())
        })
    }

    /// A JSON file of the run turned into `T` by `parse`; `None` when it is absent.
    fn read_typed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(Value) -> Result<T, String>,
    ) -> Result<Option<T>, RunDirError> {
        let path = self.file(name);
        match self.read_json(name) {
            JsonFile::Absent => Ok(None),
            JsonFile::Unreadable(e) => Err(RunDirError::read(&path, e)),
            JsonFile::NotJson(e) => Err(RunDirError::invalid(&path, e)),
            JsonFile::Value(v) => parse(v)
                .map(Some)
                .map_err(|e| RunDirError::invalid(&path, e)),
        }
    }

    pub fn write_results(&self, results: &Results) -> Result<(), RunDirError> {
        let value = serde_json::to_value(results)
            .map_err(|e| RunDirError::write(&self.file(files::RESULTS_JSON), e))?;
        self.write_json(files::RESULTS_JSON, &value)
    }

    /// The message journal (`messages.jsonl`), or `None` when the run has none.
    pub fn read_journal(&self) -> Result<Option<Journal>, RunDirError> {
        let path = self.file(files::MESSAGES_JSONL);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RunDirError::read(&path, e)),
        };
        let events = net::parse(&text, &path.display().to_string()).map_err(|e| {
            RunDirError::invalid(
                &path,
                format!("line {} is not a journal event ({})", e.line, e.message),
            )
        })?;
        Ok(Some(Journal::new(events)))
    }

    /// Writes the message journal (`messages.jsonl`).
    pub fn write_journal(&self, journal: &Journal) -> Result<(), RunDirError> {
        let path = self.file(files::MESSAGES_JSONL);
        std::fs::write(&path, net::to_jsonl(journal)).map_err(|e| RunDirError::write(&path, e))
    }

    /// The run's history, its format detected.
    pub fn read_history(&self) -> Result<History, RunDirError> {
        read_history_file(&self.require_history_file()?, None)
    }

    fn write_json(&self, name: &str, value: &Value) -> Result<(), RunDirError> {
        let path = self.file(name);
        let text = serde_json::to_string_pretty(value).map_err(|e| RunDirError::write(&path, e))?;
        std::fs::write(&path, text).map_err(|e| RunDirError::write(&path, e))
    }
}

/// Reads any history file (JSONL, Jepsen EDN, Jepsen log), detecting its format unless
/// one is forced.
pub fn read_history_file(path: &Path, format: Option<Format>) -> Result<History, RunDirError> {
    let file = std::fs::File::open(path).map_err(|e| RunDirError::read(path, e))?;
    // A FIFO or a device has no useful length: read it without a size.
    let size_bytes = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    format::read_history_sized(file, format, &path.display().to_string(), size_bytes)
        .map_err(|e| RunDirError::invalid(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_the_test_and_the_timestamp() {
        let run = RunDir::new("/x/store/kv-register-none/20260101T000000.000Z");
        assert_eq!(run.label(), "kv-register-none/20260101T000000.000Z");
    }

    #[test]
    fn files_round_trip_and_absent_files_are_none() {
        let dir = std::env::temp_dir().join(format!("dt-rundir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(&dir);
        assert!(run.read_test().unwrap().is_none());
        assert!(run.read_results().unwrap().is_none());
        assert!(matches!(
            run.read_history(),
            Err(RunDirError::NoHistory { .. })
        ));
        let test = TestJson {
            target: "noop".into(),
            seed: 7,
            ..TestJson::default()
        };
        run.write_test(&test).unwrap();
        assert_eq!(run.read_test().unwrap().unwrap(), test);
        std::fs::write(run.file(files::RESULTS_JSON), "{not json").unwrap();
        assert!(matches!(
            run.read_results(),
            Err(RunDirError::Invalid { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
