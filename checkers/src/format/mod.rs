//! History readers: distest JSON Lines, Jepsen EDN and Jepsen text logs.
//!
//! Readers take any `Read` (the caller opens files; this crate does no I/O of its own),
//! stream line by line, and keep only the ops: memory grows with the history, not with
//! the file.

mod jsonl;

use crate::history::{History, HistoryError};
use std::fmt;
use std::io::Read;
use thiserror::Error;

pub use jsonl::write_jsonl_line;

/// The on-disk forms a history can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// distest's `history.jsonl`: one op object per line.
    Jsonl,
    /// Jepsen's `history.edn`: one map per line, or one vector of maps.
    Edn,
    /// Jepsen's text log: `INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]`.
    JepsenLog,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["jsonl", "edn", "jepsen-log"];

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "json" => Some(Format::Jsonl),
            "edn" => Some(Format::Edn),
            "jepsen-log" | "log" | "txt" => Some(Format::JepsenLog),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A history that could not be read: which source, which line, what was expected.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ParseError {
    #[error("{source_name}:{line}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("{source_name}: {error}")]
    Invalid {
        source_name: String,
        error: HistoryError,
    },
    #[error("{source_name}: could not read: {message}")]
    Io {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the {format} reader is not available in this build")]
    Unsupported { source_name: String, format: Format },
}

/// Guesses the format from the first bytes of a file.
pub fn detect(prefix: &[u8]) -> Format {
    let text = String::from_utf8_lossy(prefix);
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with(';') {
            continue;
        }
        if t.starts_with('{') && t.contains("\":") {
            return Format::Jsonl;
        }
        if t.starts_with('{') || t.starts_with('[') {
            return Format::Edn;
        }
        return Format::JepsenLog;
    }
    Format::Jsonl
}

/// Reads a whole history from `reader`. `format: None` auto-detects.
/// `source_name` (usually the path) is what error messages name.
pub fn read_history(
    reader: impl Read,
    format: Option<Format>,
    source_name: &str,
) -> Result<History, ParseError> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let format = match format {
        Some(f) => f,
        None => {
            use std::io::BufRead;
            let buf = reader.fill_buf().map_err(|e| ParseError::Io {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?;
            detect(&buf[..buf.len().min(64 * 1024)])
        }
    };
    match format {
        Format::Jsonl => jsonl::read(reader, source_name),
        other => Err(ParseError::Unsupported {
            source_name: source_name.to_string(),
            format: other,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_three_formats() {
        assert_eq!(detect(br#"{"index":0,"type":"invoke"}"#), Format::Jsonl);
        assert_eq!(detect(b"{:type :invoke, :f :read}"), Format::Edn);
        assert_eq!(detect(b"[{:type :invoke}]"), Format::Edn);
        assert_eq!(
            detect(b"INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]"),
            Format::JepsenLog
        );
    }
}
