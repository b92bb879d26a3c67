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
pub(crate) mod json_lex;
mod jsonl;

use crate::history::{History, HistoryError};
use std::fmt;
use std::io::Read;
use thiserror::Error;

pub use import::ImportHints;
pub use jsonl::write_jsonl_line;
pub(crate) use jsonl::{LineWindow, MAX_LINE_BYTES};

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
    /// Nothing in the input is an op: an empty file, or a file of another kind. `why`
    /// says which, and the formats tried.
    #[error(
        "{source_name}: {why}; pass a distest history.jsonl, a Jepsen history.edn or a Jepsen log"
    )]
    NoOps { source_name: String, why: String },
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
    let mut edn_comment = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            continue;
        }
        if t.starts_with(';') {
            edn_comment = true;
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
    // Only blank lines and `;` comments (EDN's) so far.
    if edn_comment {
        Format::Edn
    } else {
        Format::Jsonl
    }
}

/// A reader ready to read a history: buffered, its format known.
struct Opened<R> {
    reader: std::io::BufReader<R>,
    format: Format,
    /// The format was given, not detected.
    forced: bool,
    /// The input holds no byte at all.
    is_empty: bool,
}

/// Buffers `reader` and settles its format (`None`: detected from the first bytes).
fn open<R: Read>(
    reader: R,
    format: Option<Format>,
    source_name: &str,
) -> Result<Opened<R>, ParseError> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let prefix = reader.fill_buf().map_err(|e| ParseError::Io {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })?;
    let is_empty = prefix.is_empty();
    let (format, forced) = match format {
        Some(f) => (f, true),
        None => (detect(&prefix[..prefix.len().min(64 * 1024)]), false),
    };
    Ok(Opened {
        reader,
        format,
        forced,
        is_empty,
    })
}

/// Reads a whole history from `reader`. `format: None` auto-detects.
/// `source_name` (usually the path) is what error messages name.
pub fn read_history(
    reader: impl Read,
    format: Option<Format>,
    source_name: &str,
) -> Result<History, ParseError> {
    read_history_sized(reader, format, source_name, None)
}

/// [`read_history`] of an input whose size is known (a file's length): the ops are
/// then collected in one vector sized from the first window, filled without ever being
/// moved. Growing it by doubling touched about twice its memory in fresh pages and
/// copied it, which was most of the time a whole read took. A wrong size costs only
/// that saving.
pub fn read_history_sized(
    reader: impl Read,
    format: Option<Format>,
    source_name: &str,
    size_bytes: Option<u64>,
) -> Result<History, ParseError> {
    let Opened {
        mut reader,
        format,
        forced,
        is_empty,
    } = open(reader, format, source_name)?;
    let history = match format {
        Format::Jsonl => jsonl::read(&mut reader, source_name, size_bytes),
        Format::Edn => edn::read(&mut reader, source_name, size_bytes),
        Format::JepsenLog => jepsen_log::read(&mut reader, source_name),
    }?;
    if history.is_empty() {
        return Err(no_ops(source_name, format, forced, is_empty));
    }
    Ok(history)
}

/// The error for an input without a single op: what it holds, and the formats tried.
fn no_ops(source_name: &str, format: Format, forced: bool, is_empty: bool) -> ParseError {
    let why = if is_empty {
        "the file is empty, so there is no history to check".to_string()
    } else if forced {
        format!("no line is an op when read as {format} (the format --format asked for)")
    } else if format == Format::JepsenLog {
        "no line is an op: it is not distest JSON Lines or Jepsen EDN (its first bytes are neither), and no line is a Jepsen log op (`process<TAB>:type<TAB>:f<TAB>value`)".to_string()
    } else {
        format!("no line is an op (read as {format}, which its first bytes suggested)")
    };
    ParseError::NoOps {
        source_name: source_name.to_string(),
        why,
    }
}

/// What [`stream_history`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streamed {
    /// Ops handed on, synthetic invocations of an import included.
    pub ops: u64,
    /// The format read (detected or forced).
    pub format: Format,
    /// What a second pass over an imported (Jepsen) history needs to number its ops as
    /// [`read_history`] does.
    pub hints: ImportHints,
}

/// Reads the ops of a history in file order and hands each to `sink`, keeping none:
/// memory stays bounded by one window whatever the size of the file. Ops are numbered
/// as [`read_history`] numbers them, given the `hints` of a first pass for imported
/// histories whose completions lack `:process` (without hints, such ops get other fresh
/// process ids, in the same places). An error of `sink` is placed at the op's line.
pub fn stream_history(
    reader: impl Read,
    format: Option<Format>,
    source_name: &str,
    hints: Option<ImportHints>,
    mut sink: impl FnMut(crate::op::Op) -> Result<(), HistoryError> + Send,
) -> Result<Streamed, ParseError> {
    let Opened {
        mut reader,
        format,
        forced,
        is_empty,
    } = open(reader, format, source_name)?;
    let mut ops = 0u64;
    let mut counted = |op: crate::op::Op, line: usize| -> Result<(), ParseError> {
        ops += 1;
        sink(op).map_err(|error| ParseError::InvalidOp {
            source_name: source_name.to_string(),
            line,
            error,
        })
    };
    let hints = match format {
        Format::Jsonl => {
            jsonl::stream(&mut reader, source_name, &mut counted)?;
            ImportHints::default()
        }
        Format::Edn | Format::JepsenLog => {
            let importer = import::Importer::streaming(source_name, hints, &mut counted)?;
            let importer = match format {
                Format::Edn => edn::read_into(&mut reader, importer, edn::READ_CHUNK_BYTES)?,
                _ => jepsen_log::read_into(&mut reader, importer)?,
            };
            importer.end_stream()?
        }
    };
    if ops == 0 {
        return Err(no_ops(source_name, format, forced, is_empty));
    }
    Ok(Streamed { ops, format, hints })
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

/// Appends `want_bytes` from `reader` to `buf` (fewer at the end of input); returns
/// true at end of input. The bytes go straight into `buf`'s memory, which grows by
/// exactly what is asked (a doubling past a 1 GiB line would touch 2 GiB).
pub(crate) fn fill(
    reader: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
    want_bytes: usize,
) -> std::io::Result<bool> {
    use std::io::Read;
    buf.reserve_exact(want_bytes);
    let got = reader.take(want_bytes as u64).read_to_end(buf)?;
    Ok(got < want_bytes)
}

/// Reserves room in `ops` (which holds the ops of the first `consumed_bytes` of an
/// input of `size_bytes`) for the ops of the whole input, at the same bytes per op plus
/// a margin. Untouched capacity is address space only, and a reservation the system
/// refuses is skipped (the vector then grows as usual).
pub(crate) fn reserve_for_input<T>(ops: &mut Vec<T>, consumed_bytes: usize, size_bytes: u64) {
    if ops.is_empty() || consumed_bytes == 0 {
        return;
    }
    let bytes_per_op = consumed_bytes as f64 / ops.len() as f64;
    let estimate = (size_bytes as f64 / bytes_per_op * 1.1) as usize + 1024;
    if estimate > ops.capacity() {
        let _ = ops.try_reserve_exact(estimate - ops.len());
    }
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
