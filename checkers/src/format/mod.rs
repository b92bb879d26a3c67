//! History readers: distest JSON Lines, Jepsen EDN and Jepsen text logs.
//!
//! Readers take any `Read` (the caller opens files; this crate does no I/O of its own),
//! stream the input in bounded windows, and keep only the ops: memory grows with the
//! history, not with the file. Large windows are parsed on two threads, in file order.
//!
//! - `jsonl`: distest's own `history.jsonl`; indices must already be dense.
//! - `edn`: Jepsen's `history.edn` (a hand-written EDN parser, reused by the log reader).
//! - `jepsen_log`: the ops inside Jepsen's `jepsen.log`, and Jepsen's `history.txt`.
//! - `import`: the rules that make loose Jepsen/Elle histories valid (re-indexing,
//!   missing `:time`, `:f`, `:process`), shared by the two Jepsen readers.
//!
//! Every failure is a [`ParseError`] naming the source and, when there is one, the line;
//! bad input never panics and a malformed op line is never skipped.

pub(crate) mod edn;
mod fast_op;
mod import;
mod jepsen_log;
mod jsonl;

use crate::history::{History, HistoryError};
use std::fmt;
use std::io::Read;
use thiserror::Error;

pub(crate) use jsonl::next_lines;
pub use jsonl::write_jsonl_line;

/// The on-disk forms a history can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// distest's `history.jsonl`: one op object per line.
    Jsonl,
    /// Jepsen's `history.edn`: one map per line, or one vector of maps.
    Edn,
    /// Jepsen's text log (`INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]`), or Jepsen's
    /// `history.txt` (the same fields without the log prefix).
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
    /// The ops parse but do not form a valid history; `line` is where the offending op is.
    #[error("{source_name}:{line}: {error}")]
    InvalidOp {
        source_name: String,
        line: usize,
        error: HistoryError,
    },
    #[error("{source_name}: could not read: {message}")]
    Io {
        source_name: String,
        message: String,
    },
    /// No reader returns this any more (all three formats are read); kept because it is
    /// part of the API callers were given.
    #[error("{source_name}: the {format} reader is not available in this build")]
    Unsupported { source_name: String, format: Format },
}

/// Guesses the format from the first bytes of a file: a map opening with a string key is
/// JSON (`{"index": ...`), one opening with a keyword is EDN (`{:index ...`), a vector, list
/// or tagged record is EDN, anything else is taken for a Jepsen text log.
pub fn detect(prefix: &[u8]) -> Format {
    let text = String::from_utf8_lossy(prefix);
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with(';') {
            continue;
        }
        if let Some(body) = t.strip_prefix('{') {
            return match body.trim_start().chars().next() {
                Some('"') => Format::Jsonl,
                Some(':' | '}') => Format::Edn,
                _ if t.contains("\":") => Format::Jsonl,
                _ => Format::Edn,
            };
        }
        if t.starts_with('[') || t.starts_with('(') || t.starts_with('#') {
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
        Format::Edn => edn::read(reader, source_name),
        Format::JepsenLog => jepsen_log::read(reader, source_name),
    }
}

/// A validation error, placed at the file line of the op it names (`lines[position]`).
pub(crate) fn invalid_at(source_name: &str, lines: &[usize], error: HistoryError) -> ParseError {
    let position = match &error {
        HistoryError::ConcurrentInvoke { index, .. }
        | HistoryError::MismatchedF { index, .. }
        | HistoryError::CompletionWithoutInvoke { index, .. }
        | HistoryError::ReusedAfterInfo { index, .. } => usize::try_from(*index).ok(),
        HistoryError::SparseIndex { position, .. } => Some(*position),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    match position.and_then(|p| lines.get(p)) {
        Some(&line) => ParseError::InvalidOp {
            source_name: source_name.to_string(),
            line,
            error,
        },
        None => ParseError::Invalid {
            source_name: source_name.to_string(),
            error,
        },
    }
}

/// Appends about `want_bytes` from `reader` to `buf`; returns true at end of input.
pub(crate) fn fill(
    reader: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
    want_bytes: usize,
) -> std::io::Result<bool> {
    let target = buf.len() + want_bytes;
    while buf.len() < target {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(true);
        }
        let n = chunk.len().min(target - buf.len());
        buf.extend_from_slice(&chunk[..n]);
        reader.consume(n);
    }
    Ok(false)
}

pub(crate) fn count_newlines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
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
            detect(b"; comment\n#jepsen.history.Op{:type :ok}"),
            Format::Edn
        );
        assert_eq!(detect(b"{:value {\"k\":1}}"), Format::Edn);
        assert_eq!(detect(b"{ \"index\": 0}"), Format::Jsonl);
        assert_eq!(
            detect(b"2024-05-01 10:00:00,000{GMT}\tINFO\t[main] jepsen.core: Running"),
            Format::JepsenLog
        );
        assert_eq!(
            detect(b"INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]"),
            Format::JepsenLog
        );
    }
}
