//! distest's own format: one JSON op per line (`history.jsonl`).

use super::ParseError;
use crate::history::History;
use crate::op::Op;
use std::io::BufRead;

/// Reads JSON Lines; blank lines are skipped. Indices must be dense (distest writes them so).
pub(super) fn read(mut reader: impl BufRead, source_name: &str) -> Result<History, ParseError> {
    let mut ops = Vec::new();
    let mut line = Vec::with_capacity(256);
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| ParseError::Io {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let op: Op = serde_json::from_slice(&line).map_err(|e| ParseError::Syntax {
            source_name: source_name.to_string(),
            line: line_no,
            message: format!("expected one JSON op object per line: {e}"),
        })?;
        ops.push(op);
    }
    History::new(ops).map_err(|error| ParseError::Invalid {
        source_name: source_name.to_string(),
        error,
    })
}

/// Serializes one op as a JSONL line (with the trailing newline) into `out`.
pub fn write_jsonl_line(op: &Op, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, op).expect("an Op always serializes");
    out.push(b'\n');
}
