//! The one error type of this crate: every variant names the file, the cause and what to do.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a report, comparison or index could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("could not read {path}: {message}; check that it exists and is readable")]
    Read { path: PathBuf, message: String },
    #[error("could not write {path}: {message}; check the directory's permissions and free space")]
    Write { path: PathBuf, message: String },
    #[error("{path} holds neither a history (history.jsonl) nor a results.json; pass a run directory written by `distest run` or one holding a history.jsonl")]
    NotARunDir { path: PathBuf },
    #[error(
        "found no run directories under {path}; pass run directories, or a store that holds runs"
    )]
    NoRuns { path: PathBuf },
    #[error("could not draw the {chart} chart: {message}; this is a bug in distest-reports, please report it with the run directory")]
    Plot {
        chart: &'static str,
        message: String,
    },
}

impl ReportError {
    pub(crate) fn read(path: &Path, err: impl std::fmt::Display) -> ReportError {
        ReportError::Read {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }

    pub(crate) fn write(path: &Path, err: impl std::fmt::Display) -> ReportError {
        ReportError::Write {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}

/// Writes `contents` to `path`, mapping the failure to [`ReportError::Write`].
pub(crate) fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|e| ReportError::write(path, e))
}
